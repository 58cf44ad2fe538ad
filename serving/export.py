"""Export the recommendation log and the feedback to Parquet for dbt (``python -m serving.export``).

Incremental: each run appends the rows committed since the last run as one new part per table,
``$LINGXI_DATA_DIR/feedback_export/{recommendations,feedback}/part-<watermark>.parquet``, where the
watermark is the store's sequence number the previous run stopped at (``_manifest.json`` keeps it;
rows are taken in commit order up to the store's ``export_horizon``, so none is skipped or repeated).
``--full`` rebuilds everything into one part per table; so does a run that finds no manifest of this
format, another store or time zone, a missing part, or a store behind the watermark (a restore).

- **Atomic steps.** A part is written to a temporary file, fsynced and renamed in, recommendations
  before feedback (a reader never sees feedback whose list is missing); the manifest is replaced
  last and is the commit point. A run that dies before it leaves a part the next run overwrites
  (same name, a superset), never a duplicate.
- **One run at a time.** A lock file (``.export.lock``, ``flock``) serialises runs: a second run waits
  up to ``--wait`` seconds, saying whom it waits for, then exits with status 75 and a message.
- **Retention.** Parts are kept as they are for ``--keep-days`` days (default 7), then folded into
  the base part ``part-000000000000.parquet``; the log itself is never dropped (the warehouse and the
  online aggregates count all of it). A rebuild or a fold replaces the base first and then removes
  the parts it absorbed: a reader that globbed in between could count those rows twice, so readers
  run after the export (``make warehouse`` does).

Timestamps are naive ``timestamp[us]`` in the bank's local time (``LINGXI_TIMEZONE``, default
Asia/Shanghai), the convention of the raw ``events.event_time``; the store itself keeps UTC.
``idempotency_key`` is unique per row: ``<client key>#<product id>``. Columns: ``ml.core.feedback_log``.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

from ml.core.feedback_log import SCHEMAS

from . import config as serving_config
from .store import SqlStore, open_store, redact

TABLES = ("recommendations", "feedback")  # in this order: a list before the answers on it
FORMAT = 3  # 3: recommendations carry ``arm`` (an older export is rebuilt, so every part has it)
MANIFEST = "_manifest.json"
LOCK = ".export.lock"
BUSY_EXIT = 75  # EX_TEMPFAIL: try again later


class ExportBusy(RuntimeError):
    """Another export holds the lock."""


def part_name(after: int) -> str:
    """A part holds the rows after watermark ``after``; the base part starts at 0."""
    return f"part-{after:012d}.parquet"


@contextmanager
def export_lock(out_dir: Path, wait_seconds: float) -> Iterator[None]:
    """The export directory's lock, waiting up to ``wait_seconds`` for another run to finish."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / LOCK, "a+") as handle:
        deadline, said = time.monotonic() + wait_seconds, False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                if time.monotonic() >= deadline:
                    raise ExportBusy(f"another export (pid {holder}) is running in {out_dir}; "
                                     f"waited {wait_seconds:g} s, try again later") from None
                if not said:
                    print(f"waiting for the export running as pid {holder} in {out_dir}", file=sys.stderr)
                    said = True
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_atomically(tmp: Path, final: Path) -> None:
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)


@contextmanager
def _part_writer(folder: Path, table: str, final: Path) -> Iterator[pq.ParquetWriter]:
    """A Parquet writer on a temporary file that becomes ``final`` when the block succeeds."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".part-", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with pq.ParquetWriter(tmp, SCHEMAS[table]) as writer:
            yield writer
        _replace_atomically(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_part(store: SqlStore, cur: Any, table: str, folder: Path, after: int, upto: int, zone: ZoneInfo,
                batch_size: int) -> int:
    schema = SCHEMAS[table]
    ts_index = schema.get_field_index("created_at" if table == "recommendations" else "recorded_at")
    rows = 0
    with _part_writer(folder, table, folder / part_name(after)) as writer:
        for batch in store.export_batches(cur, table, after, upto, batch_size):
            columns = list(zip(*batch))
            columns[ts_index] = [ts.astimezone(zone).replace(tzinfo=None) for ts in columns[ts_index]]
            writer.write_table(pa.Table.from_arrays(
                [pa.array(col, type=field.type) for col, field in zip(columns, schema)], schema=schema))
            rows += len(batch)
        if rows == 0:
            writer.write_table(schema.empty_table())
    return rows


def _fold(folder: Path, table: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge consecutive parts (the first being the base) into a new base part."""
    with _part_writer(folder, table, folder / part_name(0)) as writer:
        for part in parts:
            for batch in pq.ParquetFile(folder / part["file"]).iter_batches():
                writer.write_batch(batch)
    return {"file": part_name(0), "after": 0, "upto": parts[-1]["upto"], "rows": sum(p["rows"] for p in parts),
            "exported_at": parts[-1]["exported_at"]}


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _rebuild_reason(manifest: dict[str, Any] | None, out_dir: Path, source: str, tz: str,
                    horizon: dict[str, int]) -> str | None:
    if manifest is None or manifest.get("format") != FORMAT:
        return "no previous export in this format"
    if manifest.get("source") != source:
        return f"the previous export came from another store ({manifest.get('source')})"
    if manifest.get("timezone") != tz:
        return f"the previous export used time zone {manifest.get('timezone')}"
    for table in TABLES:
        if horizon[table] < manifest["watermarks"][table]:
            return f"the store is behind the export's {table} watermark (restored from a backup?)"
        if any(not (out_dir / table / p["file"]).exists() for p in manifest["parts"][table]):
            return f"a {table} part listed in the manifest is missing"
    return None


def export(store: SqlStore, out_dir: Path, *, full: bool = False, keep_days: float = 7, batch_size: int = 50_000,
           tz: str = "Asia/Shanghai", source: str | None = None, wait_seconds: float = 900,
           now: datetime | None = None) -> dict[str, Any]:
    """Append the rows committed since the last export (or rebuild), fold old parts; the new manifest."""
    source = source or store.backend
    now = now or datetime.now(timezone.utc)
    zone = ZoneInfo(tz)
    with export_lock(out_dir, wait_seconds):
        previous = read_manifest(out_dir)
        horizon = store.export_horizon()
        reason = "requested" if full else _rebuild_reason(previous, out_dir, source, tz, horizon)
        parts = {t: [] if reason else list(previous["parts"][t]) for t in TABLES}
        start = {t: 0 if reason else previous["watermarks"][t] for t in TABLES}
        appended = {}
        with store.read_snapshot() as cur:
            for table in TABLES:
                appended[table] = 0
                if horizon[table] > start[table] or not parts[table]:
                    appended[table] = _write_part(store, cur, table, out_dir / table, start[table], horizon[table],
                                                  zone, batch_size)
                    parts[table] = [p for p in parts[table] if p["after"] != start[table]]  # an empty base
                    parts[table].append({"file": part_name(start[table]), "after": start[table],
                                         "upto": horizon[table], "rows": appended[table],
                                         "exported_at": now.isoformat()})
        cutoff = now - timedelta(days=keep_days)
        for table in TABLES:
            old = [p for p in parts[table] if datetime.fromisoformat(p["exported_at"]) < cutoff]
            if len(old) >= 2:  # parts are in watermark order, so the old ones lead
                parts[table] = [_fold(out_dir / table, table, old)] + parts[table][len(old):]
        manifest = {"format": FORMAT, "exported_at": now.isoformat(), "source": source, "store": store.backend,
                    "timezone": tz, "watermarks": {t: parts[t][-1]["upto"] for t in TABLES},
                    "rows": {t: sum(p["rows"] for p in parts[t]) for t in TABLES}, "appended": appended,
                    "rebuilt": reason, "parts": parts}
        fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=out_dir)
        with os.fdopen(fd, "w") as handle:
            json.dump(manifest, handle, indent=2)
        _replace_atomically(Path(tmp), out_dir / MANIFEST)
        for table in TABLES:  # parts absorbed by a fold or a rebuild, and leftovers of older formats
            keep = {p["file"] for p in parts[table]}
            for stale in (out_dir / table).glob("part-*.parquet"):
                if stale.name not in keep:
                    stale.unlink(missing_ok=True)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.export", description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", default=None, help="feedback store URL (default: LINGXI_FEEDBACK_DB_URL)")
    parser.add_argument("--out", type=Path, default=None, help="default: $LINGXI_DATA_DIR/feedback_export")
    parser.add_argument("--full", action="store_true", help="rebuild every part instead of appending")
    parser.add_argument("--keep-days", type=float, default=7, help="fold parts older than this into the base part")
    parser.add_argument("--wait", type=float, default=900, help="seconds to wait for a running export (then exit 75)")
    args = parser.parse_args(argv)
    cfg = serving_config.finalise(serving_config.from_env())
    url = args.db_url or cfg["LINGXI_FEEDBACK_DB_URL"]
    out = args.out or Path(cfg["LINGXI_DATA_DIR"]) / "feedback_export"
    out.mkdir(parents=True, exist_ok=True)
    store = open_store(url)
    try:
        manifest = export(store, out, full=args.full, keep_days=args.keep_days, tz=cfg["LINGXI_TIMEZONE"],
                          source=redact(url), wait_seconds=args.wait)
    except ExportBusy as exc:
        print(f"serving.export: {exc}", file=sys.stderr)
        return BUSY_EXIT
    finally:
        store.close()
    print(json.dumps({"store": redact(url), "out": str(out), "rows": manifest["rows"],
                      "appended": manifest["appended"], "rebuilt": manifest["rebuilt"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
