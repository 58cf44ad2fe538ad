"""PostgreSQL backend (psycopg 3): autocommit connections with explicit transactions, one per
thread; ``TIMESTAMPTZ`` columns; schema creation serialised by an advisory lock so several gunicorn
workers can start at once. The export reads in one REPEATABLE READ transaction."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg

from .base import SqlStore, utc

_LOCK_ID = 7_350_001  # arbitrary, constant: "lingxi schema"

DDL = (
    f"SELECT pg_advisory_xact_lock({_LOCK_ID})",
    "CREATE TABLE IF NOT EXISTS lingxi_schema (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS recommendation_lists (
        recommendation_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        manager_id TEXT,
        stage INTEGER NOT NULL CHECK (stage IN (1, 2)),
        parent_recommendation_id TEXT REFERENCES recommendation_lists (recommendation_id),
        model_version TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS recommendation_lists_created ON recommendation_lists (created_at)",
    "CREATE INDEX IF NOT EXISTS recommendation_lists_customer ON recommendation_lists (customer_id)",
    """CREATE TABLE IF NOT EXISTS recommendation_items (
        recommendation_id TEXT NOT NULL REFERENCES recommendation_lists (recommendation_id),
        product_id TEXT NOT NULL,
        rank INTEGER NOT NULL,
        score DOUBLE PRECISION NOT NULL,
        match_score INTEGER NOT NULL,
        reasons TEXT NOT NULL,
        tags TEXT NOT NULL,
        PRIMARY KEY (recommendation_id, product_id))""",
    """CREATE TABLE IF NOT EXISTS feedback_requests (
        idempotency_key TEXT PRIMARY KEY,
        request_hash TEXT NOT NULL,
        recommendation_id TEXT NOT NULL REFERENCES recommendation_lists (recommendation_id),
        manager_id TEXT NOT NULL,
        recorded_at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS feedback (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        feedback_id TEXT NOT NULL UNIQUE,
        recommendation_id TEXT NOT NULL REFERENCES recommendation_lists (recommendation_id),
        customer_id TEXT NOT NULL,
        product_id TEXT NOT NULL,
        manager_id TEXT NOT NULL,
        response TEXT NOT NULL CHECK (response IN ('interested', 'not_interested', 'already_owns')),
        recorded_at TIMESTAMPTZ NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        request_key TEXT NOT NULL REFERENCES feedback_requests (idempotency_key),
        UNIQUE (request_key, product_id))""",
    "CREATE INDEX IF NOT EXISTS feedback_customer ON feedback (customer_id, product_id, recorded_at)",
    "CREATE INDEX IF NOT EXISTS feedback_recommendation ON feedback (recommendation_id, product_id)",
    "CREATE INDEX IF NOT EXISTS feedback_recorded ON feedback (recorded_at)",
)


class PostgresStore(SqlStore):
    backend = "postgresql"
    ddl = DDL

    def __init__(self, url: str, connect_timeout: int = 5) -> None:
        super().__init__()
        self.url = url
        self.connect_timeout = connect_timeout

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=self.connect_timeout)

    def _healthy(self, conn: psycopg.Connection) -> bool:
        return not conn.closed and not conn.broken

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def _ts_in(self, value: datetime) -> datetime:
        return utc(value)

    def _ts_out(self, value: Any) -> datetime:
        return utc(value)

    @contextmanager
    def _write(self, durable: bool = True) -> Iterator[psycopg.Cursor]:
        conn = self._conn()
        try:
            with conn.transaction():
                cur = conn.cursor()
                if not durable:
                    cur.execute("SET LOCAL synchronous_commit = off")
                yield cur
        except psycopg.OperationalError:
            self._discard()
            raise

    @contextmanager
    def read_snapshot(self) -> Iterator[psycopg.Cursor]:
        conn = self._connect()
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                with conn.cursor(name="lingxi_export") as cur:
                    yield cur
        finally:
            conn.close()
