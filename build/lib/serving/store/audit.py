"""The audit log's rows in the feedback store (table ``customer_reads``, DDL in ``schema``).

Appended with the recommendation log's relaxed flush (it survives a killed process; the last rows
may be lost with the machine's power) - for stage one and stage two in the very transaction that
logs the list (one commit per request on the hot path) - and read back in recording order.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import astuple, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import SqlStore

COLUMNS = ("read_at", "token_id", "token_name", "role", "acting_manager_id", "customer_id", "method",
           "endpoint", "status", "request_id")


@dataclass(frozen=True)
class CustomerRead:
    """One customer read by one request: who, in which role, for which manager, when, what, how it ended."""

    read_at: datetime
    token_id: str
    token_name: str
    role: str
    acting_manager_id: str | None
    customer_id: str
    method: str
    endpoint: str
    status: int
    request_id: str | None


def insert_reads(store: SqlStore, cur: Any, reads: Sequence[CustomerRead]) -> None:
    """Add the rows inside the caller's write transaction."""
    if reads:
        placeholders = ", ".join("?" * len(COLUMNS))
        cur.executemany(store._sql(f"INSERT INTO customer_reads ({', '.join(COLUMNS)}) VALUES ({placeholders})"),
                        [(store._ts_in(r.read_at), *astuple(r)[1:]) for r in reads])


def record_reads(store: SqlStore, reads: Sequence[CustomerRead]) -> None:
    if reads:
        with store._write() as cur:
            insert_reads(store, cur, reads)


def iter_reads(store: SqlStore, since: datetime, until: datetime | None = None,
               batch_size: int = 10_000) -> Iterator[list[CustomerRead]]:
    """Reads recorded in [since, until), oldest first, in batches, from one consistent view."""
    sql = f"SELECT {', '.join(COLUMNS)} FROM customer_reads WHERE read_at >= ?"
    params: list = [store._ts_in(since)]
    if until is not None:
        sql += " AND read_at < ?"
        params.append(store._ts_in(until))
    with store.read_snapshot() as cur:
        cur.execute(store._sql(sql + " ORDER BY seq"), tuple(params))
        while True:
            rows = cur.fetchmany(batch_size)
            if not rows:
                return
            yield [CustomerRead(store._ts_out(row[0]), *row[1:8], int(row[8]), row[9]) for row in rows]
