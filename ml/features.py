"""The feature store step of the nightly job: build Feast's sources, apply, materialise.

    python -m ml.features            # make features

1. Turn the dbt mart ``customer_features_monthly`` into ``stage_one_vector`` rows (streamed,
   so memory stays flat at full scale) and the feedback export into per-customer aggregates.
2. ``feast apply`` the repo in ``feature_repo/``.
3. Feast's incremental materialisation up to the current snapshot: on the first run only the
   current snapshot goes online (older snapshots are outside the views' TTL), later runs add
   what is new since the last one.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow.parquet as pq

from ml.config import EXTRACT_DATE, PROJECT_ROOT, Paths
from ml.feature_layout import (FEEDBACK_CATEGORIES, FEEDBACK_COLUMNS, FEEDBACK_RESPONSES, LAST_ANSWERS_FEATURE,
                               STAGE_ONE_FEATURES, VECTOR_FEATURE)

if TYPE_CHECKING:
    import pandas as pd

FEATURE_REPO = PROJECT_ROOT / "feature_repo"
CURRENT_SNAPSHOT = datetime(EXTRACT_DATE.year, EXTRACT_DATE.month, EXTRACT_DATE.day)


def _log(message: str) -> None:
    print(f"[features] {message}", file=sys.stderr, flush=True)


def feature_store_config() -> Path:
    """The feature_store.yaml in use (LINGXI_FEAST_CONFIG picks another file in feature_repo/)."""
    return FEATURE_REPO / os.environ.get("LINGXI_FEAST_CONFIG", "feature_store.yaml")


def get_store(paths: Paths | None = None):
    """A FeatureStore over feature_repo/ with LINGXI_DATA_DIR pointing at ``paths.data``."""
    from feast import FeatureStore

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
        # few answers; ties on time go to the greater response (as ml.feature_layout.last_answers)
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
    subprocess.run([sys.executable, "-m", "feast.cli.cli", "--chdir", str(FEATURE_REPO), "--feature-store-yaml",
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


class CustomerNotFound(LookupError):
    """The online store has no snapshot for this customer (never a row of nulls)."""


class OnlineFeatures:
    """Serving's view of the feature store: one customer's ``stage_one_v1`` features, and push."""

    PUSH_SOURCE = "customer_feedback_push"

    def __init__(self, store, service: str = "stage_one_v1"):
        self.store = store
        self.service = store.get_feature_service(service)

    def get(self, customer_id: str, contact_ts: datetime | None = None) -> dict:
        contact_ts = contact_ts or datetime.now(timezone.utc)
        row = self.store.get_online_features(
            features=self.service, entity_rows=[{"customer_id": customer_id, "contact_ts": contact_ts}]).to_dict()
        values = {name: column[0] for name, column in row.items()}
        if not values.get(VECTOR_FEATURE):
            raise CustomerNotFound(customer_id)
        return values

    def push_feedback(self, aggregates: "pd.DataFrame") -> None:
        """Write customers' new feedback aggregates (columns as customer_feedback) to the online store."""
        from feast.data_source import PushMode

        self.store.push(self.PUSH_SOURCE, aggregates, to=PushMode.ONLINE)


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
    apply(paths)
    timings["apply_s"] = round(time.perf_counter() - t, 1)
    _log(f"feast apply ({timings['apply_s']} s)")
    t = time.perf_counter()
    window = materialize(paths)
    timings["materialize_s"] = round(time.perf_counter() - t, 1)
    size = online_store_bytes(paths)
    _log(f"materialised ({window[0]:%Y-%m-%d %H:%M}, {window[1]:%Y-%m-%d %H:%M}] in {timings['materialize_s']} s, online store "
         f"{'n/a' if size is None else f'{size / 1e6:.0f} MB'})")
    return {"snapshot_rows": rows, "feedback_rows": feedback_rows, "online_store_bytes": size, **timings}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.features", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    print(json.dumps(run(Paths.from_env()), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
