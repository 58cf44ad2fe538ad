"""The Feast feature store: build its sources from the warehouse, apply the repo, materialise online."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from ml.core.config import EXTRACT_DATE, PROJECT_ROOT, Paths
from ml.core.logs import step_log, working
from ml.features.layout import (
    FEEDBACK_CATEGORIES,
    FEEDBACK_COLUMNS,
    FEEDBACK_RESPONSES,
    LAST_ANSWERS_FEATURE,
    STAGE_ONE_FEATURES,
    VECTOR_FEATURE,
)
from ml.features.quiet import silence_known_warnings

FEATURE_REPO = PROJECT_ROOT / "feature_repo"

CURRENT_SNAPSHOT = datetime(EXTRACT_DATE.year, EXTRACT_DATE.month, EXTRACT_DATE.day)


_log = step_log("features")


def feature_store_config() -> Path:
    """The feature_store.yaml in use (LINGXI_FEAST_CONFIG picks another file in feature_repo/)."""
    return FEATURE_REPO / os.environ.get("LINGXI_FEAST_CONFIG", "feature_store.yaml")


def get_store(paths: Paths | None = None):
    """A FeatureStore over feature_repo/ with LINGXI_DATA_DIR pointing at ``paths.data``."""
    from feast import FeatureStore

    silence_known_warnings()
    paths = paths or Paths.from_env()
    os.environ["LINGXI_DATA_DIR"] = str(paths.data)
    return FeatureStore(repo_path=str(FEATURE_REPO), fs_yaml_file=feature_store_config())


def build_vector_source(paths: Paths) -> int:
    """marts/customer_features_monthly.parquet -> feast/sources/customer_feature_vectors.parquet."""
    source = paths.marts / "customer_features_monthly.parquet"
    target = paths.feast / "sources" / "customer_feature_vectors.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    vector = ", ".join(f"cast({name} as float)" for name in STAGE_ONE_FEATURES)
    tmp = target.with_suffix(".tmp")
    con = duckdb.connect()
    con.execute(f"""copy (select customer_id, cast(snapshot_ts as timestamp) as snapshot_ts,
                                 [{vector}] as {VECTOR_FEATURE}
                          from read_parquet('{source}'))
                    to '{tmp}' (format parquet, compression zstd)""").fetchall()
    tmp.replace(target)  # atomic: Feast never reads a half-written file
    return con.execute(f"select count(*) from read_parquet('{target}')").fetchall()[0][0]


def build_feedback_source(paths: Paths) -> int:
    """Feedback export -> per-customer running aggregates at each answer (for history and push)."""
    target = paths.feast / "sources" / "customer_feedback.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    export = paths.data / "feedback_export" / "feedback"
    con = duckdb.connect()
    counts = ", ".join(
        f"sum(case when response = '{r}' and category = '{c}' then 1 else 0 end) over w as fb_{r}_{c}"
        for r in FEEDBACK_RESPONSES for c in FEEDBACK_CATEGORIES)
    if list(export.glob("*.parquet")):
        con.execute(f"""create view products as select * from read_csv('{PROJECT_ROOT}/seeds/products.csv')""").fetchall()
        # the latest answer per product as of each answer: a self-join within the customer, who has
        # few answers; ties on time go to the greater response (as ml.features.layout.last_answers)
        query = f"""
            with answers as (
                select f.customer_id, f.product_id, p.category, f.response, f.recorded_at
                from read_parquet('{export}/*.parquet') f join products p using (product_id)),
            counted as (
                select customer_id, recorded_at as event_timestamp, {counts}, recorded_at as fb_last_response_ts
                from answers
                window w as (partition by customer_id order by recorded_at
                             rows between unbounded preceding and current row)),
            latest as (
                select e.customer_id, e.recorded_at as event_timestamp, a.product_id, a.response
                from (select distinct customer_id, recorded_at from answers) e
                join answers a on a.customer_id = e.customer_id and a.recorded_at <= e.recorded_at
                qualify row_number() over (partition by e.customer_id, e.recorded_at, a.product_id
                                           order by a.recorded_at desc, a.response desc) = 1),
            listed as (
                select customer_id, event_timestamp,
                       list(product_id || '=' || response order by product_id) as {LAST_ANSWERS_FEATURE}
                from latest group by customer_id, event_timestamp)
            select c.*, l.{LAST_ANSWERS_FEATURE}
            from counted c join listed l using (customer_id, event_timestamp)"""
    else:
        zeros = ", ".join(f"0::bigint as {c}" for c in FEEDBACK_COLUMNS)
        query = f"""select ''::varchar as customer_id, timestamp '2000-01-01' as event_timestamp, {zeros},
                           timestamp '2000-01-01' as fb_last_response_ts, []::varchar[] as {LAST_ANSWERS_FEATURE}
                    limit 0"""
    table = con.sql(query).to_arrow_table()
    pq.write_table(table, target.with_suffix(".tmp"))
    target.with_suffix(".tmp").replace(target)
    return table.num_rows


def apply(paths: Paths) -> None:
    env = {**os.environ, "LINGXI_DATA_DIR": str(paths.data)}
    (paths.feast).mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "ml.features.feast_cli", "--chdir", str(FEATURE_REPO), "--feature-store-yaml",
                    str(feature_store_config()), "apply"], check=True, env=env, stdout=subprocess.DEVNULL)


def materialize(paths: Paths, until: datetime = CURRENT_SNAPSHOT) -> tuple[datetime, datetime]:
    """Incremental materialisation on the data's clock, up to and including the ``until`` snapshot.

    Feast's ``materialize_incremental`` starts at wall-clock ``now - ttl``, which lies after a
    historical extract; so the window starts where the registry says the last run ended (or
    just before ``until`` on the first run, so only the current snapshot goes online).
    """
    store = get_store(paths)
    ends = [end for view in store.list_feature_views() if view.online
            for _, end in view.materialization_intervals]
    start = max(ends).replace(tzinfo=None) if ends else until - timedelta(days=1)
    end = until + timedelta(seconds=1)
    if start < end:
        store.materialize(start_date=start, end_date=end)
    return start, end


def online_store_bytes(paths: Paths) -> int | None:
    path = paths.feast / "online_store.db"
    return path.stat().st_size if path.exists() else None


def run(paths: Paths) -> dict:
    timings = {}
    started = time.perf_counter()
    rows = build_vector_source(paths)
    timings["build_sources_s"] = round(time.perf_counter() - started, 1)
    _log(f"{rows:,} snapshot rows -> {VECTOR_FEATURE} ({timings['build_sources_s']} s)")
    feedback_rows = build_feedback_source(paths)
    t = time.perf_counter()
    with working("feast apply"):
        apply(paths)
    timings["apply_s"] = round(time.perf_counter() - t, 1)
    _log(f"feast apply ({timings['apply_s']} s)")
    t = time.perf_counter()
    with working("materialising the online store"):
        window = materialize(paths)
    timings["materialize_s"] = round(time.perf_counter() - t, 1)
    size = online_store_bytes(paths)
    _log(f"materialised ({window[0]:%Y-%m-%d %H:%M}, {window[1]:%Y-%m-%d %H:%M}] in {timings['materialize_s']} s, online store "
         f"{'n/a' if size is None else f'{size / 1e6:.0f} MB'})")
    return {"snapshot_rows": rows, "feedback_rows": feedback_rows, "online_store_bytes": size, **timings}
