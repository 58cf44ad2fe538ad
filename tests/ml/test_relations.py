"""Product relations: planted structure is recovered, rare products stay neutral, CSV and Parquet
in and out, the CLI end to end, and the graph API the re-ranker uses."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ml.core.catalogue import load_catalogue
from ml.core.config import PROJECT_ROOT
from ml.relations import (
    LABELS,
    RelationGraph,
    compute_relations,
    holdings_from_events,
    load_holdings,
    read_table,
)

CAT = load_catalogue()
N_CUSTOMERS = 30_000


def planted_holdings(seed: int = 7, n: int = N_CUSTOMERS) -> pd.DataFrame:
    """Independent products plus planted structure:

    * complement: a mortgage makes life insurance ~10x likelier, opened 1-30 days after it;
    * substitute: index-fund holders almost never also hold the stock fund;
    * rare: 6 annuity holders, all with a mortgage (a huge but unsupported lift);
    * near-universal: demand savings (98%);
    * outside the catalogue: BANK_GOLD goes with the time deposit.
    """
    rng = np.random.default_rng(seed)
    rates = {pid: 0.04 for pid in CAT.ids} | {"SAV_DEMAND": 0.98, "SAV_TIME": 0.2, "PRO_LIFE": 0.03,
                                              "CRD_MORTGAGE": 0.06, "PRO_ANNUITY": 0.0}
    held = {pid: rng.random(n) < rate for pid, rate in rates.items()}
    held["PRO_LIFE"] |= held["CRD_MORTGAGE"] & (rng.random(n) < 0.3)
    held["WLT_STOCK_FUND"] &= ~held["WLT_INDEX_FUND"] | (rng.random(n) < 0.05)
    annuity = rng.choice(np.flatnonzero(held["CRD_MORTGAGE"]), size=6, replace=False)
    held["PRO_ANNUITY"][annuity] = True
    held["BANK_GOLD"] = (held["SAV_TIME"] & (rng.random(n) < 0.2)) | (rng.random(n) < 0.01)
    start = np.datetime64("2020-01-01")
    opened = {pid: start + rng.integers(0, 5 * 365, n).astype("timedelta64[D]") for pid in held}
    late_life = held["CRD_MORTGAGE"] & held["PRO_LIFE"]
    opened["PRO_LIFE"] = np.where(late_life, opened["CRD_MORTGAGE"] + rng.integers(1, 31, n).astype("timedelta64[D]"),
                                  opened["PRO_LIFE"])
    ids = np.array([f"{i:032X}" for i in range(n)])
    frames = [pd.DataFrame({"customer_id": ids[mask], "product_id": pid, "opened_at": opened[pid][mask]})
              for pid, mask in held.items()]
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def holdings() -> pd.DataFrame:
    return planted_holdings()


@pytest.fixture(scope="module")
def table(holdings) -> pd.DataFrame:
    return compute_relations(holdings)


def pair(table: pd.DataFrame, a: str, b: str) -> pd.Series:
    rows = table[((table.product_a == a) & (table.product_b == b)) | ((table.product_a == b) & (table.product_b == a))]
    assert len(rows) == 1
    return rows.iloc[0]


# -- planted structure --------------------------------------------------------------------------
def test_planted_complement_is_found_with_its_direction(table):
    row = pair(table, "CRD_MORTGAGE", "PRO_LIFE")
    assert row.relation == "complement" and row.strength > 0.5
    assert (row.product_a, row.product_b) == ("PRO_LIFE", "CRD_MORTGAGE")  # catalogue order
    assert row.direction == "b->a"                                         # mortgage first
    assert row.coadopt_lift_ba > 5 and row.time_order_asymmetry < -0.5


def test_planted_substitute_is_found(table):
    row = pair(table, "WLT_STOCK_FUND", "WLT_INDEX_FUND")
    assert row.relation == "substitute" and row.strength > 0.5
    assert row.lift < 0.2 and row.same_category == 1


def test_rare_and_universal_products_stay_neutral(table):
    rare = table[(table.product_a == "PRO_ANNUITY") | (table.product_b == "PRO_ANNUITY")]
    assert (rare.relation == "neutral").all()
    assert set(rare.evidence) == {"low support", "near-universal product"}  # the latter: with SAV_DEMAND
    assert pair(table, "PRO_ANNUITY", "CRD_MORTGAGE").lift > 10  # huge lift, still neutral
    universal = table[(table.product_a == "SAV_DEMAND") | (table.product_b == "SAV_DEMAND")]
    assert (universal.relation == "neutral").all()


def test_product_outside_the_catalogue_is_judged_by_co_holding(table):
    row = pair(table, "SAV_TIME", "BANK_GOLD")
    assert row.relation == "complement" and np.isnan(row.attribute_similarity)
    assert table.product_b.iloc[-1] == "BANK_GOLD"  # appended after the catalogue products


def test_nothing_else_is_labelled(table):
    planted = {("PRO_LIFE", "CRD_MORTGAGE"), ("WLT_STOCK_FUND", "WLT_INDEX_FUND"), ("SAV_TIME", "BANK_GOLD")}
    labelled = table[table.relation != "neutral"]
    assert set(zip(labelled.product_a, labelled.product_b)) == planted


def test_one_row_per_unordered_pair_with_consistent_statistics(table):
    p = len(CAT) + 1
    assert len(table) == p * (p - 1) // 2
    assert not table.duplicated(["product_a", "product_b"]).any()
    row = pair(table, "CRD_MORTGAGE", "PRO_LIFE")
    assert row.p_b_given_a == pytest.approx(row.n_ab / row.n_a)
    assert row.lift == pytest.approx(row.n_ab * row.n_customers / (row.n_a * row.n_b))
    assert row.jaccard == pytest.approx(row.n_ab / (row.n_a + row.n_b - row.n_ab))
    assert set(table.relation) <= {"complement", "substitute", "neutral"}
    assert table.strength.between(0, 1).all()
    assert (table.loc[table.relation == "neutral", "strength"] == 0).all()


def test_deterministic_whatever_the_row_order(holdings, table):
    shuffled = holdings.sample(frac=1.0, random_state=3).reset_index(drop=True)
    pd.testing.assert_frame_equal(compute_relations(shuffled), table)


def test_works_without_opening_times(holdings):
    plain = compute_relations(holdings[["customer_id", "product_id"]].drop_duplicates())
    assert pair(plain, "CRD_MORTGAGE", "PRO_LIFE").relation == "complement"
    assert pair(plain, "WLT_STOCK_FUND", "WLT_INDEX_FUND").relation == "substitute"
    assert plain.coadopt_n_ab.isna().all() and (plain.direction == "").all()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_unrelated_products_label_nothing(seed):
    rng = np.random.default_rng(seed)
    n = 5_000
    rates = rng.uniform(0.002, 0.2, len(CAT))  # some products far too rare to judge
    held = rng.random((n, len(CAT))) < rates
    customers, products = np.nonzero(held)
    opened = np.datetime64("2022-01-01") + rng.integers(0, 900, len(customers)).astype("timedelta64[D]")
    frame = pd.DataFrame({"customer_id": customers.astype(str), "product_id": np.asarray(CAT.ids)[products],
                          "opened_at": opened})
    assert (compute_relations(frame).relation == "neutral").all()


# -- holdings from raw events -------------------------------------------------------------------
def test_holdings_from_events(tmp_path):
    t = pd.Timestamp
    events = pd.DataFrame({
        "customer_id": ["A", "A", "A", "B", "B", "B", "C"],
        "event_time": [t("2024-01-01"), t("2024-02-01"), t("2024-03-01"), t("2024-01-05"),
                       t("2024-04-01"), t("2024-01-01"), t("2024-01-01")],
        "event_type": ["product_open", "product_close", "product_open", "product_open",
                       "product_close", "product_trade", "salary_credit"],
        "product_id": ["CRD_CARD", "CRD_CARD", "CRD_CARD", "WLT_WMP", "WLT_WMP", "SAV_DEMAND", None],
    })
    events.to_parquet(tmp_path / "part-0.parquet")
    held = holdings_from_events(tmp_path)
    assert held[["customer_id", "product_id"]].values.tolist() == [["A", "CRD_CARD"]]  # reopened
    assert held.opened_at.iloc[0] == t("2024-03-01")
    as_of = holdings_from_events(tmp_path, before="2024-02-01")  # point in time: no leakage
    assert as_of[["customer_id", "product_id"]].values.tolist() == [["A", "CRD_CARD"], ["B", "WLT_WMP"]]


# -- files and CLI ------------------------------------------------------------------------------
def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ml.relations", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_csv_to_parquet_and_parquet_to_csv(holdings, table, tmp_path):
    holdings.to_csv(tmp_path / "holdings.csv", index=False)
    holdings.rename(columns={"customer_id": "cust", "product_id": "prod"}).to_parquet(tmp_path / "h.parquet")
    done = run_cli("--holdings", str(tmp_path / "holdings.csv"), "--out", str(tmp_path / "rel.parquet"))
    assert done.returncode == 0, done.stderr
    assert "complement PRO_LIFE ~ CRD_MORTGAGE" in " ".join(done.stderr.split())
    done = run_cli("--holdings", str(tmp_path / "h.parquet"), "--format", "parquet", "--customer-col", "cust",
                   "--product-col", "prod", "--out", str(tmp_path / "out" / "rel.csv"), "--quiet")
    assert done.returncode == 0, done.stderr
    from_parquet = RelationGraph.load(tmp_path / "rel.parquet")
    from_csv = RelationGraph.load(tmp_path / "out" / "rel.csv")
    for kind in ("relation", "lift", "p_given", "coadopt_rate", "time_order"):
        np.testing.assert_allclose(from_csv.matrix(kind), from_parquet.matrix(kind), rtol=1e-12)
    assert (from_csv.pairs.relation.values == table.relation.values).all()


def test_the_banks_relation_table_from_the_warehouse(warehouse_data_dir, tmp_path):
    """`make relations`: the table over the test bank's current holdings (Parquet mart and a CSV copy).
    At 20k customers few pairs have enough co-holders to stand out: nothing labelled is a fine result."""
    mart = warehouse_data_dir / "marts" / "holdings_current.parquet"
    done = run_cli("--holdings", str(mart), "--time-col", "held_since", "--out", str(tmp_path / "rel.parquet"))
    assert done.returncode == 0, done.stderr
    pd.read_parquet(mart, columns=["customer_id", "product_id", "held_since"]).to_csv(tmp_path / "h.csv", index=False)
    done = run_cli("--holdings", str(tmp_path / "h.csv"), "--format", "csv", "--time-col", "held_since",
                   "--out", str(tmp_path / "rel.csv"), "--quiet")
    assert done.returncode == 0, done.stderr
    from_parquet, from_csv = read_table(tmp_path / "rel.parquet"), read_table(tmp_path / "rel.csv")
    assert len(from_parquet) == len(CAT) * (len(CAT) - 1) // 2 == len(from_csv)
    assert set(from_parquet.relation) <= set(LABELS) and (from_parquet.n_customers > 15_000).all()
    assert (from_parquet.relation.values == from_csv.relation.values).all()


def test_cli_reports_bad_input(tmp_path):
    pd.DataFrame({"id": ["A"], "product_id": ["SAV_TIME"]}).to_csv(tmp_path / "bad.csv", index=False)
    done = run_cli("--holdings", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "x.parquet"))
    assert done.returncode == 2 and "lacks column" in done.stderr
    done = run_cli("--holdings", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "x.json"))
    assert done.returncode == 2 and "format" in done.stderr


def test_load_holdings_optional_time_column(holdings, tmp_path):
    holdings[["customer_id", "product_id"]].to_csv(tmp_path / "h.csv", index=False)
    loaded = load_holdings(tmp_path / "h.csv")
    assert list(loaded.columns) == ["customer_id", "product_id"]
    with pytest.raises(ValueError, match="format"):
        load_holdings(tmp_path / "h.txt")


# -- the graph API ------------------------------------------------------------------------------
def test_matrices_follow_catalogue_order(table):
    graph = RelationGraph.from_pairs(table)
    life, mortgage = CAT.index("PRO_LIFE"), CAT.index("CRD_MORTGAGE")
    stock, index = CAT.index("WLT_STOCK_FUND"), CAT.index("WLT_INDEX_FUND")
    comp, sub, signed = graph.matrix("complement"), graph.matrix("substitute"), graph.matrix("relation")
    assert comp.shape == (len(CAT), len(CAT))                         # BANK_GOLD is not in it
    assert np.array_equal(comp, comp.T) and np.all(np.diag(comp) == 0)
    assert comp[mortgage, life] == pair(table, "PRO_LIFE", "CRD_MORTGAGE").strength
    assert sub[stock, index] > 0.5 and signed[stock, index] == -sub[stock, index]
    given = graph.matrix("p_given")
    row = pair(table, "PRO_LIFE", "CRD_MORTGAGE")
    assert given[mortgage, life] == pytest.approx(row.p_a_given_b)  # P(life | mortgage)
    order = graph.matrix("time_order")
    assert order[mortgage, life] == -order[life, mortgage] > 0.5
    with pytest.raises(KeyError):
        graph.matrix("no_such_kind")


def test_graph_features(table):
    graph = RelationGraph.from_pairs(table)
    held = np.zeros((3, len(CAT)), dtype=bool)
    held[0, CAT.index("CRD_MORTGAGE")] = True
    held[1, CAT.index("WLT_STOCK_FUND")] = True
    feats = graph.features(held, kinds=("complement_score", "complement_sum", "substitute_held"))
    assert feats.shape == (3, 3 * len(CAT)) and (feats.dtypes == np.float32).all()
    strength = pair(table, "PRO_LIFE", "CRD_MORTGAGE").strength
    assert feats.loc[0, "complement_score_PRO_LIFE"] == pytest.approx(strength)
    assert feats.loc[1, "substitute_held_WLT_INDEX_FUND"] > 0.5
    assert (feats.loc[2] == 0).all()
    np.testing.assert_allclose(feats.filter(like="complement_sum_").to_numpy(),
                               held @ graph.matrix("complement"), rtol=1e-6)
    with pytest.raises(ValueError):
        graph.features(held[:, :5])


def test_related_lists_a_products_relations(table):
    related = RelationGraph.from_pairs(table).related("CRD_MORTGAGE")
    assert related.iloc[0].other == "PRO_LIFE" and len(related) == len(CAT)
    assert RelationGraph.from_pairs(table).related("WLT_INDEX_FUND", "substitute").other.tolist() == ["WLT_STOCK_FUND"]
