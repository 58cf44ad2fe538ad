"""SQLite backend: WAL journal, ``synchronous=FULL`` for feedback (on disk before the API answers;
``NORMAL`` for the recommendation log, see ``base``),
``busy_timeout`` for the other gunicorn workers, ``BEGIN IMMEDIATE`` for writes, one connection per
thread. Timestamps are stored as fixed-width UTC text (``YYYY-MM-DD HH:MM:SS.ffffff``), which sorts
and compares correctly as text."""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .base import SqlStore, StoreUnavailable, utc
from .schema import SQLITE, ddl

_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

DDL = ddl(SQLITE)


class SqliteStore(SqlStore):
    backend = "sqlite"
    ddl = DDL

    def __init__(self, path: Path, busy_timeout_ms: int = 10_000) -> None:
        super().__init__()
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout_ms / 1000,
                               check_same_thread=True)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        mode = self._enable_wal(conn)
        if mode.lower() != "wal":
            raise RuntimeError(f"SQLite refused WAL mode ({mode}) for {self.path}")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> str:
        """Switch to WAL, retrying: two processes switching a new database at once can deadlock on
        the lock upgrade, and SQLite then fails one at once instead of calling the busy handler
        (gunicorn workers starting together on a fresh data dir)."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _conn(self) -> sqlite3.Connection:
        conn = super()._conn()
        if getattr(self._local, "sync_conn", None) is not conn:  # a new connection starts at FULL
            self._local.sync_conn, self._local.sync = conn, "FULL"
        return conn

    def _ts_in(self, value: datetime) -> str:
        return utc(value).strftime(_FORMAT)

    def _ts_out(self, value: Any) -> datetime:
        return datetime.strptime(value, _FORMAT).replace(tzinfo=timezone.utc)

    @contextmanager
    def _write(self, durable: bool = True) -> Iterator[sqlite3.Cursor]:
        conn = self._conn()
        try:
            level = "FULL" if durable else "NORMAL"
            if getattr(self._local, "sync", None) != level:  # a per-connection setting, outside transactions
                conn.execute(f"PRAGMA synchronous = {level}")
                self._local.sync = level
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            self._discard()
            if "locked" in str(exc) or "busy" in str(exc):  # another writer held it past busy_timeout
                raise StoreUnavailable("the sqlite feedback store is busy") from exc
            raise
        except sqlite3.Error:
            self._discard()
            raise
        try:
            yield conn.cursor()
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                self._discard()
            raise

    @contextmanager
    def read_snapshot(self) -> Iterator[sqlite3.Cursor]:
        conn = self._connect()  # a dedicated connection: a long export must not hold a request's
        try:
            conn.execute("BEGIN")  # in WAL mode a read transaction sees one consistent snapshot
            yield conn.cursor()
            conn.execute("COMMIT")
        finally:
            conn.close()
