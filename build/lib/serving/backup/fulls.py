"""Full backups: a consistent copy of the whole store, and putting one back.

- SQLite: the online backup API (``sqlite3.Connection.backup``) copies the live database in one step
  under a read transaction (WAL mode: the app keeps writing meanwhile), then the copy is gzipped.
- PostgreSQL: ``pg_dump --format=custom`` (compressed, one consistent snapshot) of the store's tables;
  ``pg_restore`` puts it back.

Each returns the feedback watermark the copy is complete up to (see ``increments``).
"""
from __future__ import annotations

import glob
import gzip
import os
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

from ..store import SqlStore
from ..store.schema import TABLES
from .catalog import BackupError

STORE_TABLES = TABLES  # every table of the store: a full backup is the whole store


# -- SQLite ---------------------------------------------------------------------------------------
def sqlite_full(db_path: Path, out: Path) -> int:
    """Copy the live database to ``out`` (gzip); the copy's highest feedback ``seq``."""
    with tempfile.TemporaryDirectory(prefix="lingxi-backup-", dir=out.parent) as tmp:
        copy = Path(tmp) / "copy.db"
        source = sqlite3.connect(db_path, timeout=30)  # only read; WAL: the app's writers go on
        target = sqlite3.connect(copy)
        try:
            source.backup(target)  # pages=-1: one step, one consistent snapshot
        finally:
            source.close()
        try:
            target.execute("PRAGMA journal_mode = DELETE")  # a single self-contained file
            (watermark,) = target.execute("SELECT COALESCE(MAX(seq), 0) FROM feedback").fetchone()
        finally:
            target.close()
        with open(copy, "rb") as src, gzip.open(out, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return int(watermark)


def sqlite_restore(archive: Path, db_path: Path, force: bool) -> None:
    """Put a full copy at ``db_path`` (replacing what is there only with ``force``)."""
    if db_path.exists() and not force:
        raise BackupError(f"{db_path} exists: restore into a new path, or pass --force to replace it")
    db_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = db_path.with_name(db_path.name + ".restoring")
    with gzip.open(archive, "rb") as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())
    check = sqlite3.connect(tmp)
    try:
        result = check.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        check.close()
    if result != "ok":
        tmp.unlink()
        raise BackupError(f"{archive.name}: the restored database fails its integrity check ({result})")
    for suffix in ("-wal", "-shm"):  # the replaced database's journal must not be replayed onto the copy
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    os.replace(tmp, db_path)


# -- PostgreSQL -----------------------------------------------------------------------------------
def pg_tool(name: str) -> str:
    """``pg_dump`` / ``pg_restore``: on PATH (Debian's wrapper), else the newest server's bin dir."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not candidates:
        raise BackupError(f"{name} is not installed (Debian: postgresql-client)")
    return candidates[-1]


def _run(args: list[str], what: str) -> None:
    env = {**os.environ, "PGCONNECT_TIMEOUT": os.environ.get("PGCONNECT_TIMEOUT", "10")}
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise BackupError(f"{what} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")


def postgres_full(url: str, out: Path) -> None:
    """``pg_dump`` the store's tables (custom format: compressed, restorable table by table)."""
    tables = [f"--table={t}" for t in STORE_TABLES]
    _run([pg_tool("pg_dump"), "--format=custom", "--compress=6", "--no-owner", "--no-privileges", *tables,
          f"--file={out}", f"--dbname={url}"], "pg_dump")


def postgres_has_store(store: SqlStore) -> bool:
    rows = store._query("SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'feedback'"
                        " AND table_schema = current_schema()")
    return bool(rows and rows[0][0])


def postgres_restore(archive: Path, url: str, force: bool) -> None:
    clean = ["--clean", "--if-exists"] if force else []
    _run([pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error", *clean,
          f"--dbname={url}", str(archive)], "pg_restore")


def postgres_reset_identity(store: SqlStore) -> None:
    """After rows were inserted with their own ``seq``: the next one continues above the highest."""
    with store._write() as cur:
        cur.execute("SELECT setval(pg_get_serial_sequence('feedback', 'seq'), COALESCE(MAX(seq), 1),"
                    " MAX(seq) IS NOT NULL) FROM feedback")
