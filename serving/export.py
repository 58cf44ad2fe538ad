"""Export the recommendation log and the feedback to Parquet for dbt (``python -m serving.export``).

Writes ``$LINGXI_DATA_DIR/feedback_export/recommendations/part-00000.parquet`` and
``.../feedback/part-00000.parquet`` (a full export each run, read in one consistent transaction),
each written to a temporary file, fsynced and renamed over the old part, recommendations first so
that a reader never sees feedback whose recommendation is missing. A ``_manifest.json`` with row
counts is replaced last. dbt declares both folders as sources (``read_parquet('.../*.parquet')``).

Timestamps are naive ``timestamp[us]`` in the bank's local time (``LINGXI_TIMEZONE``, default
Asia/Shanghai), the convention of the raw ``events.event_time``; the store itself keeps UTC.
``idempotency_key`` is unique per row: ``<client key>#<product id>``.

Columns:

- recommendations: recommendation_id, customer_id, manager_id, stage (int32),
  parent_recommendation_id (nullable), product_id, rank (int32), score (double),
  match_score (int32), model_version, created_at
- feedback: feedback_id, recommendation_id, customer_id, product_id, manager_id, response,
  recorded_at, idempotency_key
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

from ml.core.feedback_log import PART, SCHEMAS

from . import config as serving_config
from .store import SqlStore, open_store, redact


def _replace_atomically(tmp: Path, final: Path) -> None:
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _write_table(store: SqlStore, cur, table: str, folder: Path, batch_size: int, zone: ZoneInfo) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    schema = SCHEMAS[table]
    ts_index = schema.get_field_index("created_at" if table == "recommendations" else "recorded_at")
    fd, tmp_name = tempfile.mkstemp(prefix=".part-", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    rows = 0
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for batch in store.export_batches(cur, table, batch_size):
                columns = list(zip(*batch))
                columns[ts_index] = [ts.astimezone(zone).replace(tzinfo=None) for ts in columns[ts_index]]
                writer.write_table(pa.Table.from_arrays(
                    [pa.array(col, type=field.type) for col, field in zip(columns, schema)], schema=schema))
                rows += len(batch)
            if rows == 0:
                writer.write_table(schema.empty_table())
        _replace_atomically(tmp, folder / PART)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    for stale in folder.glob("part-*.parquet"):
        if stale.name != PART:
            stale.unlink(missing_ok=True)
    return rows


def export(store: SqlStore, out_dir: Path, batch_size: int = 50_000, tz: str = "Asia/Shanghai") -> dict[str, int]:
    """Write both tables from one consistent read; returns row counts."""
    counts = {}
    zone = ZoneInfo(tz)
    with store.read_snapshot() as cur:
        for table in ("recommendations", "feedback"):
            counts[table] = _write_table(store, cur, table, out_dir / table, batch_size, zone)
    manifest = {"exported_at": datetime.now(timezone.utc).isoformat(), "rows": counts, "store": store.backend,
                "timezone": tz}
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=out_dir)
    with os.fdopen(fd, "w") as handle:
        json.dump(manifest, handle, indent=2)
    _replace_atomically(Path(tmp), out_dir / "_manifest.json")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.export", description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", default=None, help="feedback store URL (default: LINGXI_FEEDBACK_DB_URL)")
    parser.add_argument("--out", type=Path, default=None, help="default: $LINGXI_DATA_DIR/feedback_export")
    args = parser.parse_args(argv)
    cfg = serving_config.finalise(serving_config.from_env())
    url = args.db_url or cfg["LINGXI_FEEDBACK_DB_URL"]
    out = args.out or Path(cfg["LINGXI_DATA_DIR"]) / "feedback_export"
    out.mkdir(parents=True, exist_ok=True)
    store = open_store(url)
    try:
        counts = export(store, out, tz=cfg["LINGXI_TIMEZONE"])
    finally:
        store.close()
    print(json.dumps({"store": redact(url), "out": str(out), "rows": counts}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
