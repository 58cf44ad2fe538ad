"""PostgreSQL backend (psycopg 3): autocommit connections with explicit transactions, one per
thread; ``TIMESTAMPTZ`` columns; schema creation serialised by an advisory lock so several gunicorn
workers can start at once. The export reads in one REPEATABLE READ transaction."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg

from .base import SqlStore, StoreUnavailable, utc
from .schema import POSTGRES, ddl

_LOCK_ID = 7_350_001  # arbitrary, constant: "lingxi schema"

DDL = (f"SELECT pg_advisory_xact_lock({_LOCK_ID})", *ddl(POSTGRES))


class PostgresStore(SqlStore):
    backend = "postgresql"
    ddl = DDL

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
    def _write(self, durable: bool = True) -> Iterator[psycopg.Cursor]:
        conn = self._conn()
        try:
            with conn.transaction():
                cur = conn.cursor()
                if not durable:
                    cur.execute("SET LOCAL synchronous_commit = off")
                yield cur
        except psycopg.OperationalError as exc:
            self._discard()
            raise StoreUnavailable(f"the postgresql feedback store did not answer ({type(exc).__name__})") from exc

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
