"""PostgreSQL backend (psycopg 3): autocommit connections with explicit transactions, one per
thread; ``TIMESTAMPTZ`` columns; schema creation serialised by an advisory lock so several gunicorn
workers can start at once. Every write transaction sets ``synchronous_commit = on`` itself: a
server or database configured with ``off`` would otherwise acknowledge commits that a crash loses.
The export reads in one REPEATABLE READ transaction, after a fence (``_fence``) that makes its
watermark exact: identity values are taken at insert, so they need not commit in order."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg

from .base import SqlStore, StoreUnavailable, utc
from .schema import POSTGRES, ddl
from .schema import migrations as schema_migrations

_LOCK_ID = 7_350_001  # arbitrary, constant: "lingxi schema"
_PUSH_LOCK_ID = 7_350_002  # "lingxi online-store push"

DDL = (f"SELECT pg_advisory_xact_lock({_LOCK_ID})", *ddl(POSTGRES))


class PostgresStore(SqlStore):
    backend = "postgresql"
    ddl = DDL
    migrations = schema_migrations(POSTGRES)

    unavailable_errors = (psycopg.OperationalError,)  # connection lost, statement timeout, server shutting down

    def __init__(self, url: str, connect_timeout: int = 5, statement_timeout_ms: int = 10_000) -> None:
        super().__init__()
        self.url = url
        self.connect_timeout = connect_timeout
        self.statement_timeout_ms = statement_timeout_ms

    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=self.connect_timeout)
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(int(self.statement_timeout_ms)),))
        return conn

    def _healthy(self, conn: psycopg.Connection) -> bool:
        return not conn.closed and not conn.broken

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def _ts_in(self, value: datetime) -> datetime:
        return utc(value)

    def _ts_out(self, value: Any) -> datetime:
        return utc(value)

    @contextmanager
    def _write(self) -> Iterator[psycopg.Cursor]:
        conn = self._conn()
        try:
            with conn.transaction():
                cur = conn.cursor()
                cur.execute("SET LOCAL synchronous_commit = on")
                yield cur
        except psycopg.OperationalError as exc:
            self._discard()
            raise StoreUnavailable(f"the postgresql feedback store did not answer ({type(exc).__name__})") from exc

    def _lock_list(self, cur: psycopg.Cursor, recommendation_id: str) -> None:
        # NO KEY UPDATE: serialises feedback on the list without blocking a stage-two list that
        # references it (a foreign key takes KEY SHARE)
        cur.execute("SELECT 1 FROM recommendation_lists WHERE recommendation_id = %s FOR NO KEY UPDATE",
                    (recommendation_id,))

    def _day_sql(self, column: str, timezone: str) -> str:
        return f"to_char({column} AT TIME ZONE '{timezone}', 'YYYY-MM-DD')"

    @contextmanager
    def push_lock(self, timeout: float = 5.0) -> Iterator[None]:
        # a session advisory lock: every worker of every machine on this database takes the same one
        conn = self._conn()
        deadline = time.monotonic() + timeout
        while not conn.execute("SELECT pg_try_advisory_lock(%s)", (_PUSH_LOCK_ID,)).fetchone()[0]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"online-store push lock busy for {timeout:g} s")
            time.sleep(0.005)
        try:
            yield
        finally:
            try:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_PUSH_LOCK_ID,))
            except psycopg.Error:  # a broken connection has released it
                self._discard()

    @contextmanager
    def _fence(self) -> Iterator[None]:
        # SHARE mode waits for every transaction that has inserted into these tables to end and
        # holds new inserts for the instant the caller reads the highest sequence numbers
        conn = self._conn()
        with conn.transaction():
            conn.execute("LOCK TABLE recommendation_order, feedback IN SHARE MODE")
            yield

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
