"""The synthetic bank: schema, determinism, rates, planted structure, oracle separation."""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ml.core.config import EXTRACT_DATE, HISTORY_START, HOLDOUT_CUTOFF, PROJECT_ROOT
from ml.datagen import RESPONSES, FeedbackSimulator, books, generate
from ml.datagen.population import REGION_WEIGHTS
from ml.datagen.stats import any_non_savings, book_sizes, product_rates

CUSTOMER_COLUMNS = ["customer_id", "age", "gender", "region_code", "education", "marital_status",
                    "asset_level", "assets_cny", "risk_preference", "card_type", "customer_since"]
EVENT_COLUMNS = ["event_id", "customer_id", "event_time", "event_type", "product_id", "amount", "channel"]
ASSIGNMENT_COLUMNS = ["customer_id", "branch_id", "manager_id", "valid_from", "valid_to", "assignment_reason"]
MANAGER_COLUMNS = ["manager_id", "branch_id", "hired_on", "left_on"]
MANAGER_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")  # the API's manager id pattern (serving/auth.py)
EVENT_TYPES = {"product_open", "product_trade", "product_redeem", "product_close", "channel_bind",
               "salary_credit", "deposit_maturity", "card_replacement"}


@pytest.fixture(scope="module")
def con(raw_data_dir):
    con = duckdb.connect()
    raw = raw_data_dir / "raw"
    con.execute(f"create view customers as select * from read_parquet('{raw}/customers/*.parquet')").fetchall()
    con.execute(f"create view events as select * from read_parquet('{raw}/events/*.parquet')").fetchall()
    con.execute(f"create view assignments as select * from read_parquet('{raw}/customer_assignments/*.parquet')")
    con.execute(f"create view managers as select * from read_parquet('{raw}/account_managers/*.parquet')")
    con.execute(f"create view branches as select * from read_csv('{PROJECT_ROOT}/seeds/branches.csv', all_varchar=true)")
    con.execute(f"create view products as select * from read_csv('{PROJECT_ROOT}/seeds/products.csv')").fetchall()
    con.execute("""create view clean_customers as select * from customers
                   where regexp_full_match(coalesce(customer_id, ''), '[0-9A-F]{32}') and age between 16 and 110""").fetchall()
    con.execute("""create view held as select customer_id, product_id from (
        select customer_id, product_id, sum(case when event_type = 'product_open' then 1 else -1 end) as balance
        from events where event_type in ('product_open', 'product_close') and event_time < timestamp '2025-04-01'
        group by all) where balance > 0""").fetchall()
    return con


def scalar(con, sql, params=None):
    return con.execute(sql, params or []).fetchall()[0][0]


def test_schema_matches_the_data_contract(raw_data_dir):
    customers = pq.read_schema(next((raw_data_dir / "raw" / "customers").glob("*.parquet")))
    events = pq.read_schema(next((raw_data_dir / "raw" / "events").glob("*.parquet")))
    assignments = pq.read_schema(next((raw_data_dir / "raw" / "customer_assignments").glob("*.parquet")))
    managers = pq.read_schema(next((raw_data_dir / "raw" / "account_managers").glob("*.parquet")))
    assert customers.names == CUSTOMER_COLUMNS
    assert events.names == EVENT_COLUMNS
    assert str(events.field("event_time").type).startswith("timestamp")
    assert assignments.names == ASSIGNMENT_COLUMNS and managers.names == MANAGER_COLUMNS
    assert {str(assignments.field(c).type) for c in ("valid_from", "valid_to")} == {"date32[day]"}


def test_ids_are_md5_hex_and_dirty_rows_are_rare(con):
    total = scalar(con, "select count(*) from customers")
    clean = scalar(con, "select count(*) from clean_customers")
    assert clean == 20_000
    assert 0 < total - clean < 0.002 * total, "a real extract has a few malformed rows, not many"
    assert scalar(con, "select count(distinct customer_id) from clean_customers") == clean
    assert scalar(con, "select count(*) from clean_customers where region_code not similar to '[0-9]{6}'") == 0
    wuxi = scalar(con, "select avg((region_code like '3202%')::int) from clean_customers")
    assert wuxi > 0.8


def test_event_types_and_time_range(con):
    types = {r[0] for r in con.execute("select distinct event_type from events").fetchall()}
    assert EVENT_TYPES <= types and len(types - EVENT_TYPES) == 1  # plus one junk type for quarantine
    first_2024 = scalar(con, "select min(event_time) from events where event_type = 'salary_credit'")
    last = scalar(con, "select max(event_time) from events")
    assert str(first_2024) >= "2024-01-01" and str(last) < "2025-07-01"
    # opening positions carry their original, pre-2024 dates
    assert scalar(con, "select count(*) from events where event_time < '2024-01-01' and event_type = 'product_open'") > 0


def _digests(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.parquet"))}


def test_deterministic_for_a_seed(tmp_path, monkeypatch):
    tables = []
    for run, seed in (("a", 3), ("b", 3), ("c", 4)):
        # run b without the posterior oracle: it only watches, so the raw tables cannot change
        generate(1_500, seed, tmp_path / run / "raw", tmp_path / run / "oracle", progress=False,
                 posterior_oracle=run != "b")
        tables.append({t: pd.read_parquet(tmp_path / run / "raw" / t) for t in ("events", "customer_assignments")})
    for table in ("events", "customer_assignments"):
        pd.testing.assert_frame_equal(tables[0][table], tables[1][table])
        assert not tables[0][table].equals(tables[2][table])
    assert _digests(tmp_path / "a" / "raw") == _digests(tmp_path / "b" / "raw")
    with_posterior, without = _digests(tmp_path / "a" / "oracle"), _digests(tmp_path / "b" / "oracle")
    assert {k: v for k, v in with_posterior.items() if not k.startswith("posterior/")} == without
    assert any(k.startswith("posterior/cutoff=") for k in with_posterior)
    # the books draw from a stream of their own: another books stream changes the books and
    # not one byte of the other raw tables or the oracle (the workers are forked: they see the patch)
    monkeypatch.setattr(books, "BOOKS_STREAM", books.BOOKS_STREAM + 1)
    generate(1_500, 3, tmp_path / "d" / "raw", tmp_path / "d" / "oracle", progress=False)
    before, after = (_digests(tmp_path / run) for run in ("a", "d"))
    own = [k for k in before if k.startswith(("raw/customer_assignments", "raw/account_managers"))]
    assert len(own) == 2 and all(before[k] != after[k] for k in own)
    assert {k: v for k, v in before.items() if k not in own} == {k: v for k, v in after.items() if k not in own}


def test_imbalance_like_the_bank(raw_data_dir):
    rates = product_rates(raw_data_dir / "raw")
    non_savings = rates[rates.category != "savings"]
    assert non_savings.holding_pct.between(0.1, 3.0).all(), non_savings
    assert rates.set_index("product_id").loc["SAV_DEMAND", "holding_pct"] > 95
    overall = any_non_savings(raw_data_dir / "raw")
    assert 1.0 <= overall["any_non_savings_adoption_3m_pct"] <= 3.0


def lift(con, a, b):
    n = scalar(con, "select count(distinct customer_id) from events")
    na = scalar(con, "select count(*) from held where product_id = ?", [a])
    nb = scalar(con, "select count(*) from held where product_id = ?", [b])
    both = scalar(con, "select count(*) from held x join held y using (customer_id) "
                       "where x.product_id = ? and y.product_id = ?", [a, b])
    return both * n / (na * nb)


def test_complements_co_held_and_substitutes_not(con):
    assert lift(con, "CRD_MORTGAGE", "PRO_LIFE") > 1.5
    assert lift(con, "CRD_MORTGAGE", "PRO_CRITICAL") > 1.5
    assert lift(con, "SAV_LCD", "WLT_WMP") > 1.5
    assert lift(con, "WLT_STOCK_FUND", "WLT_INDEX_FUND") < 1.0
    assert lift(con, "CRD_CONSUMER", "CRD_BUSINESS") < 1.0


@pytest.mark.parametrize("trigger, products", [
    ("card_replacement", "product_id not like 'SAV%'"),
    ("deposit_maturity", "(product_id like 'WLT%' or product_id = 'SAV_LCD')"),
])
def test_triggers_raise_adoption(con, trigger, products):
    """The same customers adopt more in the two months after a trigger than in the two before."""
    after, before = con.execute(f"""
        with trig as (select customer_id, min(event_time) as t from events
                      where event_type = '{trigger}' and event_time between '2024-05-01' and '2025-03-01' group by 1),
             opens as (select customer_id, event_time from events
                       where event_type = 'product_open' and {products} and event_time >= '2024-01-01')
        select count(distinct case when o.event_time > r.t and o.event_time <= r.t + interval 61 day then r.customer_id end),
               count(distinct case when o.event_time <= r.t and o.event_time > r.t - interval 61 day then r.customer_id end)
        from trig r left join opens o using (customer_id)""").fetchall()[0]
    assert after > 1.3 * before


def test_suitability_holds_in_the_data(con):
    violations = scalar(con, """
        select count(*) from events e join clean_customers c using (customer_id) join products p using (product_id)
        where e.event_type = 'product_open'
          and cast(right(p.risk_level, 1) as int) >
              list_position(['conservative', 'cautious', 'balanced', 'growth', 'aggressive'], c.risk_preference)""")
    assert violations == 0
    elderly_r5 = scalar(con, """select count(*) from held h join clean_customers c using (customer_id)
        join products p using (product_id) where p.risk_level = 'R5' and c.age > 70""")
    assert elderly_r5 == 0


def test_oracle_is_separate_and_calibrated(raw_data_dir, con):
    raw_columns = set(pq.read_schema(next((raw_data_dir / "raw" / "customers").glob("*.parquet"))).names) | set(
        pq.read_schema(next((raw_data_dir / "raw" / "events").glob("*.parquet"))).names)
    assert not any(c.startswith(("p_true", "p_observable", "interest", "held_elsewhere", "latent")) for c in raw_columns)
    assert not list((raw_data_dir / "raw").rglob("*oracle*"))
    oracle = pd.read_parquet(raw_data_dir / "oracle" / f"cutoff={HOLDOUT_CUTOFF.isoformat()}")
    true_cols = [c for c in oracle.columns if c.startswith("p_true__")]
    assert len(true_cols) == 15  # the non-savings products
    adopted = scalar(con, """select count(*) from (select distinct e.customer_id, e.product_id from events e
        join clean_customers using (customer_id)
        where e.event_type = 'product_open' and e.product_id not like 'SAV%'
          and e.event_time >= '2025-04-01' and e.event_time < '2025-07-01'
          and not exists (select 1 from held h where h.customer_id = e.customer_id and h.product_id = e.product_id))""")
    expected = oracle[true_cols].sum().sum()
    assert abs(adopted - expected) < 0.2 * expected
    world = json.loads((raw_data_dir / "oracle" / "world.json").read_text())
    assert world["latent_variance_share"][HOLDOUT_CUTOFF.isoformat()] >= 0.25


def test_feedback_simulator(raw_data_dir):
    sim = FeedbackSimulator(raw_data_dir / "oracle", seed=5)
    customers = sim.customers()[:500]
    answers = [a for c in customers for a in sim.respond(c, sim.products)]
    assert set(answers) <= set(RESPONSES) and {"interested", "already_owns"} <= set(answers)
    again = FeedbackSimulator(raw_data_dir / "oracle", seed=5)
    assert [a for c in customers for a in again.respond(c, again.products)] == answers
    row = sim.held_elsewhere.any(axis=1).nonzero()[0][0]
    owner = sim.customers()[row]
    owned = [p for j, p in enumerate(sim.products) if sim.held_elsewhere[row, j]]
    assert sim.respond(owner, owned) == ["already_owns"] * len(owned)


def test_category_interest_model(raw_data_dir):
    """The default interest model: the re-drawn latents are the generator's, a closed category gets no
    'interested' at all, and the mean interest is the additive model's (the calibration)."""
    import numpy as np

    from ml.datagen import world
    from ml.datagen.feedback import LatentFactors, observable_logit

    oracle = raw_data_dir / "oracle"
    additive = FeedbackSimulator(oracle, seed=5, interest_model="additive")
    sim = FeedbackSimulator(oracle, seed=5)
    assert sim.interest_model == "category" and sim.customers() == additive.customers()
    frame = pd.read_parquet(oracle / f"cutoff={HOLDOUT_CUTOFF.isoformat()}")
    np.testing.assert_array_equal(np.nan_to_num(additive.interest, nan=-1),
                                  np.nan_to_num(frame[[f"interest__{p}" for p in sim.products]].to_numpy(), nan=-1))
    # right latents: observable + latent log-odds explain the true adoption probability; shuffled ones do not
    latents = LatentFactors.redraw(oracle, np.asarray(sim.customers(), dtype=object))
    observable, latent = observable_logit(additive.interest, latents, sim.products), latents.total(sim.products)
    total = observable + latent
    p_true = frame[[f"p_true__{p}" for p in sim.products]].to_numpy()
    ok = (p_true > 0) & (p_true < 1)
    logit = np.log(p_true[ok]) - np.log1p(-p_true[ok])
    assert np.corrcoef(logit, total[ok])[0, 1] > 0.99
    shuffled = observable + latent[np.random.default_rng(0).permutation(len(latent))]
    assert np.corrcoef(logit, shuffled[ok])[0, 1] < 0.9
    # a closed category: every product of it "not interested" (unless owned)
    category = np.array([world.CATEGORIES.index(latents.catalogue.categories[latents.catalogue.ids.index(p)])
                         for p in sim.products])
    closed = ~sim.open[:, category]
    assert closed.mean() > 0.3 and np.all(np.nan_to_num(sim.interest[closed]) == 0)
    customers = sim.customers()[:400]
    for row, cid in enumerate(customers):
        for product, answer in zip(sim.products, sim.respond(cid, sim.products)):
            if closed[row, sim.products.index(product)]:
                assert answer in ("not_interested", "already_owns")
    mean_category, mean_additive = np.nanmean(sim.interest), np.nanmean(additive.interest)
    assert abs(mean_category / mean_additive - 1) < 0.1
    again = FeedbackSimulator(oracle, seed=5)
    assert again.respond(customers[0], sim.products) == sim.respond(customers[0], sim.products)
    with pytest.raises(ValueError):
        FeedbackSimulator(oracle, interest_model="telepathy")


def test_cli_reuses_matching_output(raw_data_dir):
    out = subprocess.run([sys.executable, "-m", "ml.datagen", "--customers", "20000", "--seed", "42",
                          "--out", str(raw_data_dir / "raw"), "--oracle-out", str(raw_data_dir / "oracle"),
                          "--reuse"], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True)
    assert "reusing" in out.stderr


def test_every_customer_has_exactly_one_assignment_on_every_day(con):
    """On any day of the history window each valid customer belongs to exactly one branch and
    manager; nobody else has one; a Wuxi customer's current branch is in their district."""
    days = pd.date_range(HISTORY_START, EXTRACT_DATE, freq="37D").date.tolist() + [EXTRACT_DATE]
    for day in days:
        counts = con.execute("""
            select count(*), count(distinct customer_id), count(*) filter (where customer_id not in
                   (select customer_id from clean_customers))
            from assignments where valid_from <= $1 and (valid_to is null or valid_to > $1)""", [day]).fetchall()[0]
        assert counts == (20_000, 20_000, 0), (day, counts)
    assert scalar(con, "select count(*) from assignments where valid_to <= valid_from") == 0
    misplaced = scalar(con, """select count(*) from assignments a join clean_customers c using (customer_id)
        join branches b using (branch_id) where a.valid_to is null and c.region_code like '3202%'
        and b.region_code <> c.region_code""")
    assert misplaced == 0


def test_managers_and_skewed_books(con, raw_data_dir):
    stats = book_sizes(raw_data_dir / "raw")
    assert stats["managers_with_book"] == books.N_MANAGERS
    assert stats["managers_on_roster"] == books.N_MANAGERS + stats["managers_left"] and stats["managers_left"] > 0
    assert stats["book_size_max"] > 4 * stats["book_size_median"] > 0  # skewed, not uniform
    assert stats["book_size_p90"] > 4 * stats["book_size_p10"]
    ids = [r[0] for r in con.execute("select manager_id from managers").fetchall()]
    assert all(MANAGER_ID.fullmatch(i) for i in ids) and len(set(ids)) == len(ids)
    # a manager holds customers only while in post and only at their own branch
    outside = scalar(con, """select count(*) from assignments a join managers m using (manager_id)
        where a.branch_id <> m.branch_id or a.valid_from < m.hired_on
           or (m.left_on is not null and coalesce(a.valid_to, date '9999-12-31') > m.left_on)""")
    assert outside == 0


def test_reassignments_happen_in_the_window(con, raw_data_dir):
    reasons = book_sizes(raw_data_dir / "raw")["reassignments_in_window"]
    assert set(reasons) == {"manager_departure", "customer_relocation", "rebalancing"}
    moved = sum(reasons.values()) / 20_000
    assert 0.05 < moved < 0.3, reasons
    first, last = con.execute("""select min(valid_from), max(valid_from) from assignments
                                 where assignment_reason <> 'initial'""").fetchall()[0]
    assert first > HISTORY_START and last < EXTRACT_DATE
    # a relocated customer changed district; a rebalanced one stayed in the branch
    changed = con.execute("""
        select a.assignment_reason, bool_and(b.region_code <> p.region_code), bool_and(a.branch_id = prev.branch_id)
        from assignments a
        join assignments prev on prev.customer_id = a.customer_id and prev.valid_to = a.valid_from
        join branches b on b.branch_id = a.branch_id join branches p on p.branch_id = prev.branch_id
        where a.assignment_reason in ('customer_relocation', 'rebalancing') group by 1 order by 1""").fetchall()
    assert changed == [("customer_relocation", True, False), ("rebalancing", False, True)]


@pytest.mark.parametrize("seed", [7, 42])
def test_roster_at_full_scale(seed):
    """The roster does not depend on the scale: 250 managers in post, every branch staffed after
    every departure; on a full-size chunk's worth of customers every manager has a skewed book."""
    roster = books.draw_roster(seed)
    in_post = roster.left_on == books.NEVER
    assert in_post.sum() == books.N_MANAGERS
    assert np.bincount(roster.manager_branch[in_post], minlength=len(roster.branches)).min() >= 3
    rng = np.random.default_rng(seed)
    n = 200_000
    codes, weights = np.array(list(REGION_WEIGHTS)), np.array(list(REGION_WEIGHTS.values()))
    table = books.assign_chunk(roster, seed, 0, np.array([f"{i:032X}" for i in range(n)], dtype=object),
                               rng.choice(codes, n, p=weights / weights.sum()),
                               np.datetime64("2023-12-31") - rng.integers(0, 9000, n).astype("timedelta64[D]"))
    current = table.filter(table["valid_to"].is_null()).to_pandas()
    assert len(current) == n and current.customer_id.is_unique
    sizes = current.manager_id.value_counts()
    assert len(sizes) == books.N_MANAGERS
    assert sizes.max() > 4 * sizes.median() and sizes.quantile(0.9) > 4 * sizes.quantile(0.1)
