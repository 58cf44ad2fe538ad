"""Incremental backups: the rows added since the previous backup, as gzipped JSON lines, and applying
them to a restored store. The same code for SQLite and PostgreSQL (through the store's connections).

The store is append-only (nothing is updated or deleted), so "added since" is enough:

- ``feedback`` rows with ``seq`` above the previous watermark and at or below this one: exact (the
  watermark is taken when no feedback write is in flight, see ``watermark``);
- the ``feedback_requests`` and ``recommendation_lists`` those rows refer to (the same transaction,
  or earlier), so every feedback row of an incremental can be restored on top of its chain;
- the recommendation log (lists and their items) and requests written since the previous backup
  started, less ``OVERLAP`` for clocks and commit delay (their timestamps are the app's clock).

Rows are applied with ``INSERT ... ON CONFLICT DO NOTHING``: a row already restored is skipped, so
overlaps between backups cost space, never duplicates. ``seq`` is kept (latest-answer-wins order).
"""
from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ..store import SqlStore, utc

OVERLAP = timedelta(hours=1)

# table -> (columns, index of the timestamp column or None); the order restores parents first
TABLES: dict[str, tuple[tuple[str, ...], int | None]] = {
    "recommendation_lists": (("recommendation_id", "customer_id", "manager_id", "stage", "parent_recommendation_id",
                              "model_version", "created_at", "arm"), 6),
    "recommendation_items": (("recommendation_id", "product_id", "rank", "score", "match_score", "reasons",
                              "tags"), None),
    "feedback_requests": (("idempotency_key", "request_hash", "recommendation_id", "manager_id", "recorded_at"), 4),
    "feedback": (("seq", "feedback_id", "recommendation_id", "customer_id", "product_id", "manager_id", "response",
                  "recorded_at", "idempotency_key", "request_key"), 7),
}
_NEW_FEEDBACK = "SELECT {col} FROM feedback WHERE seq > ? AND seq <= ?"
_NEW_LISTS = (f"(created_at >= ? OR recommendation_id IN ({_NEW_FEEDBACK.format(col='recommendation_id')}))")
_WHERE = {  # feedback takes (previous, watermark); the others (since, previous, watermark)
    # stage-two lists refer to their stage-one parent: parents sort first by created_at
    "recommendation_lists": f"WHERE {_NEW_LISTS} ORDER BY created_at, stage",
    "recommendation_items": (f"WHERE recommendation_id IN (SELECT recommendation_id FROM recommendation_lists"
                             f" WHERE {_NEW_LISTS}) ORDER BY recommendation_id, rank"),
    "feedback_requests": (f"WHERE recorded_at >= ? OR idempotency_key IN ({_NEW_FEEDBACK.format(col='request_key')})"
                          " ORDER BY recorded_at"),
    "feedback": "WHERE seq > ? AND seq <= ? ORDER BY seq",
}


def max_seq(cur: Any) -> int:
    cur.execute("SELECT COALESCE(MAX(seq), 0) FROM feedback")
    return int(cur.fetchone()[0])


def _params(table: str, since: Any, previous: int, watermark: int) -> tuple:
    if table == "feedback":
        return previous, watermark
    return since, previous, watermark


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc(value).isoformat()
    return value


def extract(store: SqlStore, cur: Any, since: datetime, previous: int, watermark: int) -> Iterator[tuple[str, list]]:
    """(table, row) pairs of one incremental, read through ``cur`` (one consistent snapshot)."""
    since_db = store._ts_in(since - OVERLAP)
    for table, (columns, ts_index) in TABLES.items():
        cur.execute(store._sql(f"SELECT {', '.join(columns)} FROM {table} {_WHERE[table]}"),
                    _params(table, since_db, previous, watermark))
        while True:
            batch = cur.fetchmany(5000)
            if not batch:
                break
            for row in batch:
                row = list(row)
                if ts_index is not None:
                    row[ts_index] = _encode(store._ts_out(row[ts_index]))
                yield table, row


def write(path: Path, rows: Iterator[tuple[str, list]]) -> dict[str, int]:
    """Write the rows as gzipped JSON lines (``[table, row]``); counts per table."""
    counts = {table: 0 for table in TABLES}
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as handle:
        for table, row in rows:
            handle.write(json.dumps([table, row], ensure_ascii=False, separators=(",", ":")) + "\n")
            counts[table] += 1
    return counts


def read(path: Path) -> Iterator[tuple[str, list]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            table, row = json.loads(line)
            yield table, row


def apply(store: SqlStore, path: Path, batch_size: int = 2000) -> dict[str, int]:
    """Insert an incremental's rows into ``store`` (skipping rows it already has); rows inserted per table."""
    inserted = {table: 0 for table in TABLES}
    pending: dict[str, list[tuple]] = {table: [] for table in TABLES}
    override = " OVERRIDING SYSTEM VALUE" if store.backend == "postgresql" else ""

    def flush(table: str) -> None:
        rows = pending[table]
        if not rows:
            return
        columns, _ = TABLES[table]
        rows[:] = [row + (None,) * (len(columns) - len(row)) for row in rows]  # taken before a column was added
        marks = ", ".join("?" * len(columns))
        sql = store._sql(f"INSERT INTO {table} ({', '.join(columns)}){override if table == 'feedback' else ''}"
                         f" VALUES ({marks}) ON CONFLICT DO NOTHING")
        with store._write() as cur:
            for row in rows:
                cur.execute(sql, row)
                inserted[table] += max(cur.rowcount, 0)
        rows.clear()

    order = list(TABLES)
    for table, row in read(path):
        _, ts_index = TABLES[table]
        if ts_index is not None:
            row[ts_index] = store._ts_in(datetime.fromisoformat(row[ts_index]).astimezone(timezone.utc))
        pending[table].append(tuple(row))
        if len(pending[table]) >= batch_size:
            for earlier in order[: order.index(table) + 1]:  # parents before children
                flush(earlier)
    for table in order:
        flush(table)
    return inserted
