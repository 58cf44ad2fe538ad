"""The warehouse (dbt) on the test-scale bank: build, exports, labels, no leakage, quarantine.

Uses the shared session fixture ``warehouse_data_dir`` (tests/conftest.py): the 20k-customer
bank after one ``dbt build``. Every check reads the Parquet exports or the raw Parquet with a
fresh in-memory DuckDB; none opens warehouse.duckdb for writing except the feedback test, which
works on a copy.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from ml.core.config import CUTOFFS, EXTRACT_DATE, LABEL_WINDOW_MONTHS, PROJECT_ROOT

pytestmark = pytest.mark.slow

CATEGORIES = {
    "savings": ["SAV_DEMAND", "SAV_TIME", "SAV_EDU", "SAV_LCD"],
    "protection": ["PRO_LIFE", "PRO_ACCIDENT", "PRO_CAR", "PRO_ANNUITY", "PRO_CRITICAL"],
    "credit": ["CRD_MORTGAGE", "CRD_CONSUMER", "CRD_BUSINESS", "CRD_CARD"],
    "wealth": ["WLT_STOCK_FUND", "WLT_INDEX_FUND", "WLT_MIXED_FUND", "WLT_BOND_FUND", "WLT_WMP", "WLT_PENSION"],
}
PRODUCTS = [p for products in CATEGORIES.values() for p in products]
CHANNELS = ["mobile_banking", "wechat", "online_banking"]

# The contract with Feast / ml.features.layout: keys, then the features in this order.
FEATURE_COLUMNS = (
    ["age", "gender_male", "is_wuxi", "urbanisation_code", "education_level", "marital_status_code",
     "asset_level", "log_assets", "risk_tolerance", "card_tier", "tenure_years"]
    + [f"holds_{p.lower()}" for p in PRODUCTS]
    + [f"n_held_{c}" for c in CATEGORIES] + ["n_products_held"]
    + [name for c in CATEGORIES for name in (f"n_{c}_events_30d", f"n_{c}_events_90d", f"n_{c}_events_180d",
                                              f"amount_{c}_180d", f"days_since_{c}_event")]
    + ["n_opens_180d", "n_redeems_180d", "n_closes_180d"]
    + [f"has_{ch}" for ch in CHANNELS] + ["n_channels_bound"]
    + ["n_everyday_txn_30d", "n_everyday_txn_90d", "n_everyday_txn_prev_90d", "amount_everyday_90d",
       "activity_trend", "days_since_everyday_txn"]
    + ["days_since_salary_credit", "n_salary_credits_90d", "avg_salary_amount_180d",
       "days_since_first_salary_credit", "days_since_deposit_maturity", "last_deposit_maturity_amount",
       "days_since_card_replacement"]
)
SNAPSHOTS = [*CUTOFFS, EXTRACT_DATE]
EXPORTS = ("customer_features_monthly", "labels_adoption", "customer_360", "holdings_current",
           "customer_recent_events", "recommendation_feedback", "manager_books")


@pytest.fixture(scope="module")
def con(warehouse_data_dir):
    """In-memory DuckDB with views over the exports and the raw tables (never the warehouse file)."""
    connection = duckdb.connect()
    marts, raw = warehouse_data_dir / "marts", warehouse_data_dir / "raw"
    for name in EXPORTS:
        connection.execute(f"create view {name} as select * from read_parquet('{marts / name}.parquet')")
    connection.execute(f"create view raw_events as select * from read_parquet('{raw}/events/*.parquet')")
    connection.execute(f"create view raw_assignments as select * from read_parquet('{raw}/customer_assignments/*.parquet')")
    connection.execute(f"create view raw_customers as select * from read_parquet('{raw}/customers/*.parquet')")
    yield connection
    connection.close()


def _run_results(data_dir: Path) -> list[dict]:
    return json.loads((data_dir / "dbt_target" / "run_results.json").read_text())["results"]


def test_build_ran_every_node_successfully(warehouse_data_dir):
    results = _run_results(warehouse_data_dir)
    failed = [(r["unique_id"], r["status"]) for r in results if r["status"] not in ("success", "pass", "no-op")]
    assert not failed
    ids = {r["unique_id"] for r in results}
    unit_tests = [i for i in ids if i.startswith("unit_test.")]
    assert len(unit_tests) >= 6, unit_tests
    for singular in ("assert_features_point_in_time", "assert_labels_consistent_with_holdings",
                     "assert_product_var_matches_seed", "assert_assignments_within_manager_tenure"):
        assert f"test.lingxi.{singular}" in ids
    assert any("quarantine_share_below_base_bank__events" in i for i in ids)
    assert "unit_test.lingxi.int_customer_books_snapshotted.books_point_in_time_across_a_reassignment" in ids
    assert any(i.startswith("test.lingxi.periods_do_not_overlap_stg_bank__customer_assignments") for i in ids)


def test_parquet_exports_exist_with_the_contract_columns(warehouse_data_dir, con):
    marts = warehouse_data_dir / "marts"
    for name in EXPORTS:
        assert (marts / f"{name}.parquet").is_file(), name
    columns = [r[0] for r in con.execute("describe customer_features_monthly").fetchall()]
    assert columns == ["customer_id", "snapshot_ts", *FEATURE_COLUMNS]
    labels = [r[0] for r in con.execute("describe labels_adoption").fetchall()]
    assert labels == ["customer_id", "snapshot_ts", "label_window_end_ts",
                      *[f"label_{p.lower()}" for p in PRODUCTS], "n_adopted", "n_candidate_products"]
    c360 = {r[0] for r in con.execute("describe customer_360").fetchall()}
    assert {"customer_id", "age", "asset_level", "assets_cny", "risk_preference", "region_code",
            "life_stage", "value_tier", "age_band", "as_of_ts", "days_since_salary_credit",
            "days_since_deposit_maturity", "days_since_card_replacement"} <= c360
    assert {f"holds_{p.lower()}" for p in PRODUCTS} <= c360
    types = dict(con.execute("select column_name, column_type from (describe customer_features_monthly)").fetchall())
    assert types["snapshot_ts"] == "TIMESTAMP"
    assert all(types[c] in ("BIGINT", "DOUBLE") for c in FEATURE_COLUMNS), types


def test_one_feature_row_per_customer_and_snapshot(con):
    n_customers = con.execute("select count(*) from customer_360").fetchone()[0]
    rows = con.execute("""
        select snapshot_ts, count(*), count(distinct customer_id)
        from customer_features_monthly group by 1 order by 1""").fetchall()
    assert [r[0].date() for r in rows] == SNAPSHOTS
    assert all(r[1] == r[2] == n_customers for r in rows)
    label_snapshots = con.execute("select distinct snapshot_ts from labels_adoption order by 1").fetchall()
    assert [r[0].date() for r in label_snapshots] == list(CUTOFFS)


def test_labels_are_null_exactly_when_held_at_the_cutoff(con):
    held_but_labelled = " or ".join(
        f"(f.holds_{p.lower()} = 1 and l.label_{p.lower()} is not null)"
        f" or (f.holds_{p.lower()} = 0 and l.label_{p.lower()} is null)" for p in PRODUCTS)
    bad = con.execute(f"""
        select count(*) from labels_adoption l
        join customer_features_monthly f using (customer_id, snapshot_ts)
        where {held_but_labelled}""").fetchone()[0]
    assert bad == 0
    values = con.execute(" union ".join(
        f"select distinct label_{p.lower()} from labels_adoption" for p in PRODUCTS)).fetchall()
    assert {v[0] for v in values} <= {0, 1, None}
    totals = " + ".join(f"coalesce(label_{p.lower()}, 0)" for p in PRODUCTS)
    assert con.execute(f"select count(*) from labels_adoption where n_adopted <> {totals}").fetchone()[0] == 0
    assert con.execute("select sum(n_adopted) from labels_adoption").fetchone()[0] > 0


def test_positive_labels_are_real_opens_in_the_window(con):
    """Recompute the labels of one product from the raw events, ignoring the warehouse."""
    months = LABEL_WINDOW_MONTHS
    mismatches = con.execute(f"""
        with cutoffs as (
            select distinct snapshot_ts as cutoff from labels_adoption
        ),
        opens as (
            select customer_id, event_time from raw_events
            where event_type = 'product_open' and product_id = 'WLT_WMP'
        ),
        recomputed as (
            select l.customer_id, l.snapshot_ts, l.label_wlt_wmp,
                   exists (select 1 from opens o where o.customer_id = l.customer_id
                           and o.event_time >= l.snapshot_ts
                           and o.event_time < l.snapshot_ts + interval {months} month) as opened
            from labels_adoption l
            where l.label_wlt_wmp is not null
        )
        select count(*) from recomputed where (label_wlt_wmp = 1) <> opened""").fetchone()[0]
    assert mismatches == 0


def test_no_leakage_features_recomputed_from_raw_events(con):
    """For a sample of customers, recompute features from the raw Parquet with plain SQL that
    drops every event at or after the cut-off, and compare exactly with the mart."""
    con.execute("""
        create or replace temp table sample as
        select customer_id from customer_360 order by hash(customer_id) limit 300""")
    con.execute(f"""
        create or replace temp table events as
        select e.* from raw_events e join sample using (customer_id)
        where e.event_type in ('product_open', 'product_trade', 'product_redeem', 'product_close',
                               'channel_bind', 'salary_credit', 'deposit_maturity', 'card_replacement')
          and (e.product_id is null or e.product_id in ({", ".join(f"'{p}'" for p in PRODUCTS)}))
          and (e.amount is null or e.amount >= 0)""")
    con.execute("create or replace temp table snaps as select distinct snapshot_ts as s from customer_features_monthly")

    def window(days: int, to_days: int = 0) -> str:
        return f"e.event_time >= s - interval {days} day and e.event_time < s - interval {to_days} day"

    category_of = "case " + " ".join(f"when e.product_id in ({', '.join(repr(p) for p in ps)}) then '{c}'"
                                     for c, ps in CATEGORIES.items()) + " end"
    everyday = "e.event_type = 'product_trade' and e.product_id = 'SAV_DEMAND'"
    rfm = "e.event_type in ('product_open', 'product_trade', 'product_redeem') and e.product_id <> 'SAV_DEMAND'"
    holds = ",\n".join(
        f"coalesce((select max_by(e.event_type = 'product_open', e.event_time) from events e "
        f"where e.customer_id = c.customer_id and e.product_id = '{p}' "
        f"and e.event_type in ('product_open', 'product_close') and e.event_time < s), false)::int "
        f"as holds_{p.lower()}" for p in PRODUCTS)
    recomputed = con.execute(f"""
        select c.customer_id, s as snapshot_ts,
          (select count(*) from events e where e.customer_id = c.customer_id and {everyday} and {window(30)}) as n_everyday_txn_30d,
          (select count(*) from events e where e.customer_id = c.customer_id and {everyday} and {window(90)}) as n_everyday_txn_90d,
          (select count(*) from events e where e.customer_id = c.customer_id and {everyday} and {window(180, 90)}) as n_everyday_txn_prev_90d,
          (select count(*) from events e where e.customer_id = c.customer_id and e.event_type = 'salary_credit' and {window(90)}) as n_salary_credits_90d,
          (select date_diff('day', max(e.event_time), s) from events e where e.customer_id = c.customer_id
             and e.event_type = 'salary_credit' and {window(180)}) as days_since_salary_credit,
          (select date_diff('day', max(e.event_time), s) from events e where e.customer_id = c.customer_id
             and e.event_type = 'card_replacement' and {window(180)}) as days_since_card_replacement,
          (select count(*) from events e where e.customer_id = c.customer_id and {rfm}
             and {category_of} = 'wealth' and {window(90)}) as n_wealth_events_90d,
          (select count(*) from events e where e.customer_id = c.customer_id and {rfm}
             and {category_of} = 'credit' and {window(180)}) as n_credit_events_180d,
          {", ".join(f"(select count(*) > 0 from events e where e.customer_id = c.customer_id and e.event_type = 'channel_bind' and e.channel = '{ch}' and e.event_time < s)::int as has_{ch}" for ch in CHANNELS)},
          {holds}
        from sample c cross join snaps
        order by 1, 2""").fetch_df()
    columns = [c for c in recomputed.columns if c not in ("customer_id", "snapshot_ts")]
    mart = con.execute(f"""
        select customer_id, snapshot_ts, {", ".join(columns)}
        from customer_features_monthly join sample using (customer_id)
        order by 1, 2""").fetch_df()
    assert len(mart) == len(recomputed) == 300 * len(SNAPSHOTS)
    for column in columns:
        left = recomputed[column].astype("Float64")
        right = mart[column].astype("Float64")
        differ = ~((left == right).fillna(False) | (left.isna() & right.isna()))
        assert not differ.any(), (column, recomputed.loc[differ, ["customer_id", "snapshot_ts", column]].head(),
                                  mart.loc[differ, column].head())
    # the sample is not trivial
    assert recomputed["n_everyday_txn_90d"].sum() > 0 and recomputed["holds_sav_time"].sum() > 0
    assert recomputed["days_since_salary_credit"].notna().any()


def test_customer_360_matches_the_current_snapshot(con):
    bad = con.execute("""
        select count(*) from customer_360 c
        join customer_features_monthly f
          on c.customer_id = f.customer_id and f.snapshot_ts = c.as_of_ts
        where c.n_everyday_txn_90d <> f.n_everyday_txn_90d
           or c.days_since_salary_credit is distinct from f.days_since_salary_credit
           or c.holds_wlt_wmp < f.holds_wlt_wmp""").fetchone()[0]
    assert bad == 0
    assert con.execute("select count(*) - count(distinct customer_id) from customer_360").fetchone()[0] == 0


def test_manager_books_hold_every_customer_once_as_the_raw_current_assignment(con):
    columns = [r[0] for r in con.execute("describe manager_books").fetchall()]
    assert columns == ["customer_id", "branch_id", "manager_id", "branch_name_zh", "branch_name_en",
                       "branch_region_code", "assigned_since", "assignment_reason", "as_of_ts"]
    n_customers = con.execute("select count(*) from customer_360").fetchone()[0]
    rows, distinct, in_360 = con.execute("""
        select count(*), count(distinct customer_id),
               count(*) filter (where customer_id in (select customer_id from customer_360))
        from manager_books""").fetchone()
    assert rows == distinct == in_360 == n_customers
    # recomputed from the raw extract: the period with no end is the one the mart publishes
    mismatches = con.execute("""
        select count(*) from manager_books b
        full join (select * from raw_assignments where valid_to is null) r using (customer_id)
        where coalesce(b.customer_id, r.customer_id) in (select customer_id from customer_360)
          and (r.customer_id is null or b.manager_id <> r.manager_id or b.branch_id <> r.branch_id
               or b.assigned_since <> r.valid_from)""").fetchone()[0]
    assert mismatches == 0
    managers = con.execute("select count(distinct manager_id), count(*) filter (where branch_name_zh is null) "
                           "from manager_books").fetchone()
    assert managers == (250, 0)
    # sorted by manager, so a manager's book is contiguous in the file
    unsorted = con.execute("""select count(*) from (select manager_id < lag(manager_id) over () as out_of_order
                              from manager_books) where out_of_order""").fetchone()[0]
    assert unsorted == 0


def test_manager_books_monthly_adds_up_to_every_customer(warehouse_data_dir, con):
    connection = duckdb.connect(str(warehouse_data_dir / "warehouse.duckdb"), read_only=True)
    try:
        per_snapshot = connection.execute("""
            select snapshot_ts, sum(n_customers), count(*), sum(n_joined_last_month)
            from marts.manager_books_monthly group by 1 order by 1""").fetchall()
        current = dict(connection.execute("""select manager_id, n_customers from marts.manager_books_monthly
            where snapshot_ts = (select max(snapshot_ts) from marts.manager_books_monthly)""").fetchall())
    finally:
        connection.close()
    n_customers = con.execute("select count(*) from customer_360").fetchone()[0]
    assert [r[0].date() for r in per_snapshot] == SNAPSHOTS
    assert all(r[1] == n_customers and r[2] == 250 for r in per_snapshot)
    assert sum(r[3] for r in per_snapshot) > 0  # reassignments reach the monthly books
    assert current == dict(con.execute("select manager_id, count(*) from manager_books group by 1").fetchall())


def test_bad_raw_rows_are_quarantined_with_a_reason(warehouse_data_dir):
    connection = duckdb.connect(str(warehouse_data_dir / "warehouse.duckdb"), read_only=True)
    try:
        reasons = dict(connection.execute("""
            select source_table || ':' || quarantine_reason, count(*)
            from staging.stg_bank__quarantined_rows group by 1""").fetchall())
        n_raw_customers = connection.execute("select count(*) from staging.base_bank__customers").fetchone()[0]
        n_valid = connection.execute("select count(*) from staging.stg_bank__customers").fetchone()[0]
    finally:
        connection.close()
    for reason in ("customers:malformed_customer_id", "customers:missing_customer_id",
                   "customers:age_out_of_range", "events:unknown_product_id", "events:unknown_event_type",
                   "events:negative_amount", "events:unknown_customer"):
        assert reasons.get(reason, 0) > 0, (reason, reasons)
    quarantined_customers = sum(v for k, v in reasons.items() if k.startswith("customers:"))
    assert n_valid + quarantined_customers == n_raw_customers
    assert quarantined_customers < 0.01 * n_raw_customers


def test_recent_events_are_recent_and_sorted_by_customer(con):
    oldest = con.execute("select min(event_time) from customer_recent_events").fetchone()[0]
    assert (EXTRACT_DATE - oldest.date()).days <= 60
    unsorted = con.execute("""
        select count(*) from (
            select customer_id < lag(customer_id) over () as out_of_order from customer_recent_events)
        where out_of_order""").fetchone()[0]
    assert unsorted == 0


def _dbt(args: list[str], data_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LINGXI_DATA_DIR": str(data_dir), "DBT_PROFILES_DIR": str(PROJECT_ROOT)}
    dbt = Path(sys.executable).with_name("dbt")
    return subprocess.run([str(dbt), *args, "--target-path", str(data_dir / "dbt_target"),
                           "--log-path", str(data_dir / "dbt_logs")],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)


def _write_feedback_export(data_dir: Path, customer_ids: list[str]) -> None:
    out = data_dir / "feedback_export"
    (out / "recommendations").mkdir(parents=True)
    (out / "feedback").mkdir(parents=True)
    connection = duckdb.connect()
    ids = ", ".join(f"('{c}')" for c in customer_ids)
    connection.execute(f"""
        create table recs as
        select 'r1-' || c.id || '-' || p.product_id as recommendation_id, c.id as customer_id, 'M001' as manager_id,
               1 as stage, cast(null as varchar) as parent_recommendation_id, p.product_id,
               cast(p.rank as integer) as rank, 0.5 as score, 60 as match_score, 'test' as model_version,
               timestamp '2025-03-10 10:00:00' as created_at
        from (values {ids}) c(id),
             (values ('WLT_WMP', 1), ('CRD_CARD', 2), ('PRO_CAR', 3)) p(product_id, rank)
        union all
        select 'r2-' || c.id || '-CRD_CARD', c.id, 'M001', 2, 'r1-' || c.id || '-CRD_CARD', 'CRD_CARD', 1, 0.6, 70,
               'test', timestamp '2025-03-10 11:00:00'
        from (values {ids}) c(id)""")
    connection.execute("""
        create table fb as
        select 'f-' || recommendation_id as feedback_id, recommendation_id, customer_id, product_id, manager_id,
               case when product_id = 'PRO_CAR' then 'already_owns'
                    when stage = 2 then 'interested' else 'not_interested' end as response,
               created_at + interval 5 minute as recorded_at, 'k-' || recommendation_id as idempotency_key
        from recs""")
    connection.execute(f"copy recs to '{out}/recommendations/part-00000.parquet' (format parquet)")
    connection.execute(f"copy fb to '{out}/feedback/part-00000.parquet' (format parquet)")
    connection.close()


def test_feedback_export_flows_into_the_marts(warehouse_data_dir, tmp_path):
    """On a copy of the warehouse: once serving exports feedback, the feedback marts fill up
    and `already_owns` answers become reported holdings."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "raw").symlink_to(warehouse_data_dir / "raw")
    shutil.copy(warehouse_data_dir / "warehouse.duckdb", data_dir / "warehouse.duckdb")
    with duckdb.connect() as connection:
        customers = [r[0] for r in connection.execute(f"""
            select customer_id from read_parquet('{warehouse_data_dir}/marts/customer_360.parquet')
            where holds_pro_car = 0 order by customer_id limit 40""").fetchall()]
    _write_feedback_export(data_dir, customers)
    result = _dbt(["build", "--select", "stg_feedback__recommendations+", "stg_feedback__responses+"], data_dir)
    assert result.returncode == 0, result.stdout[-4000:]
    with duckdb.connect() as connection:
        marts = data_dir / "marts"
        feedback = connection.execute(f"""
            select stage, count(*), sum(is_hit) from read_parquet('{marts}/recommendation_feedback.parquet')
            group by 1 order by 1""").fetchall()
        arms = connection.execute(f"""
            select distinct arm from read_parquet('{marts}/recommendation_feedback.parquet')""").fetchall()
        reported = connection.execute(f"""
            select count(*) from read_parquet('{marts}/holdings_current.parquet')
            where product_id = 'PRO_CAR' and is_reported_held = 1""").fetchone()[0]
        c360 = connection.execute(f"""
            select sum(holds_pro_car) from read_parquet('{marts}/customer_360.parquet')
            where customer_id in ({", ".join(repr(c) for c in customers)})""").fetchone()[0]
    assert feedback == [(1, 120, 0), (2, 40, 40)]
    assert arms == [(None,)]  # an export written before lists carried their arm still builds
    assert reported == 40 and c360 == 40


def test_docs_generate(warehouse_data_dir, tmp_path):
    data_dir = tmp_path / "docs"
    data_dir.mkdir()
    (data_dir / "raw").symlink_to(warehouse_data_dir / "raw")
    shutil.copy(warehouse_data_dir / "warehouse.duckdb", data_dir / "warehouse.duckdb")
    result = _dbt(["docs", "generate"], data_dir)
    assert result.returncode == 0, result.stdout[-4000:]
    catalog = json.loads((data_dir / "dbt_target" / "catalog.json").read_text())
    assert "model.lingxi.customer_360" in catalog["nodes"]
