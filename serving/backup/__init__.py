"""Backups of the feedback store: weekly full, daily incremental, restore = the last full plus its
incrementals in order. ``python -m serving.backup {backup,restore,list}`` (``make backup`` / ``make restore``).

A backup taken while the API writes is complete up to its *watermark*: every feedback row with a
``seq`` at or below it is in the backup's chain, and so is every answer acknowledged before the
backup started (acknowledged means committed, and committed rows below the watermark are never
missing). The watermark is read when no feedback write is in flight: SQLite serialises writers;
PostgreSQL waits for them with a brief ``SHARE`` lock on ``feedback`` (new answers wait a few
milliseconds) and reads the backup from a snapshot taken after it.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..store import SqlStore, open_store
from . import fulls, increments
from .catalog import (
    BackupError,
    Manifest,
    chain_until,
    choose_kind,
    latest_chain,
    manifests,
    new_name,
    sha256,
    verify,
    write_manifest,
)

__all__ = ["BackupError", "Manifest", "backup", "restore", "manifests"]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _sqlite_path(store: SqlStore) -> Path:
    return Path(store.path)  # type: ignore[attr-defined]


@contextmanager
def _snapshot(store: SqlStore) -> Iterator[tuple[Any, int]]:
    """A consistent read cursor and the feedback watermark it is complete up to."""
    if store.backend == "sqlite":
        with store.read_snapshot() as cur:  # BEGIN: one snapshot from the first read on
            yield cur, increments.max_seq(cur)
        return
    import psycopg

    watermark = _postgres_quiet_watermark(store)
    with psycopg.connect(store.url, autocommit=True) as conn:  # type: ignore[attr-defined]
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield conn.cursor(), watermark


def _postgres_quiet_watermark(store: SqlStore) -> int:
    """The highest ``seq`` once no feedback insert is in flight: SHARE waits for the writers that hold
    the table and holds off new ones until this short transaction ends. Any lower ``seq`` is then
    committed or never will be, and a snapshot taken afterwards sees every committed one."""
    with store._write() as cur:
        cur.execute("SET LOCAL lock_timeout = '30s'")
        cur.execute("LOCK TABLE feedback IN SHARE MODE")
        return increments.max_seq(cur)


def backup(url: str, directory: Path, kind: str = "auto", now: datetime | None = None) -> Manifest:
    """Take one backup of the store at ``url`` into ``directory``; its manifest."""
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        raise BackupError(f"no feedback store at {url[len('sqlite:///'):]}")
    directory.mkdir(parents=True, exist_ok=True)
    store = open_store(url, create=False)
    try:
        started = now or _now()
        if kind == "auto":
            kind = choose_kind(directory, store.backend, started)
        chain = latest_chain(directory, store.backend)
        if kind == "incremental" and not chain:
            raise BackupError("an incremental backup needs a full one first (--kind full)")
        name = new_name(kind, started, directory)
        if kind == "full":
            manifest = _full(store, url, directory, name, started)
        elif kind == "incremental":
            manifest = _incremental(store, directory, name, started, chain)
        else:
            raise BackupError(f"unknown backup kind {kind!r}")
    finally:
        store.close()
    write_manifest(directory, manifest)
    return manifest


def _full(store: SqlStore, url: str, directory: Path, name: str, started: datetime) -> Manifest:
    if store.backend == "sqlite":
        file = f"{name}.sqlite.gz"
        watermark = fulls.sqlite_full(_sqlite_path(store), directory / file)
    else:
        file = f"{name}.pgdump"
        watermark = _postgres_quiet_watermark(store)  # pg_dump's snapshot starts after it: complete up to it
        fulls.postgres_full(url, directory / file)
    return Manifest(name=name, kind="full", backend=store.backend, file=file, sha256=sha256(directory / file),
                    started_at=started.isoformat(), finished_at=_now().isoformat(), watermark=watermark, base=name)


def _incremental(store: SqlStore, directory: Path, name: str, started: datetime, chain: list[Manifest]) -> Manifest:
    previous = chain[-1]
    file = f"{name}.jsonl.gz"
    with _snapshot(store) as (cur, watermark):
        watermark = max(watermark, previous.watermark)
        rows = increments.extract(store, cur, previous.started, previous.watermark, watermark)
        counts = increments.write(directory / file, rows)
    return Manifest(name=name, kind="incremental", backend=store.backend, file=file,
                    sha256=sha256(directory / file), started_at=started.isoformat(), finished_at=_now().isoformat(),
                    watermark=watermark, base=chain[0].name, previous=previous.name, rows=counts)


def restore(directory: Path, to_url: str, at: str | None = None, force: bool = False) -> list[Manifest]:
    """Restore the chain ending at backup ``at`` (the newest when None) into the store at ``to_url``."""
    chain = chain_until(directory, at)
    paths = [verify(directory, m) for m in chain]  # every file checked before anything is written
    backend = chain[0].backend
    target_backend = "sqlite" if to_url.startswith("sqlite:///") else "postgresql"
    if target_backend != backend:
        raise BackupError(f"the chain is a {backend} backup; restore it into a {backend} store")
    if backend == "sqlite":
        fulls.sqlite_restore(paths[0], Path(to_url[len("sqlite:///"):]), force)
        store = open_store(to_url)
    else:
        store = open_store(to_url, create=False)
        store._schema_ready = True  # look before restoring: the first query must not create an empty schema
        if fulls.postgres_has_store(store) and not force:
            store.close()
            raise BackupError("the target database already holds a feedback store: pass --force to replace it")
        fulls.postgres_restore(paths[0], to_url, force)
    try:
        for path in paths[1:]:
            increments.apply(store, path)
        if len(paths) > 1:
            _derive_after_increments(store)
        if backend == "postgresql":
            fulls.postgres_reset_identity(store)
        store.init_schema()  # no-op on a restored store; creates nothing new
    finally:
        store.close()
    return chain


def _derive_after_increments(store: SqlStore) -> None:
    """Incrementals carry the log (lists, requests, answers), not what is derived from it: give the
    lists they restored their commit order (the export's watermark) and have the dashboard's daily
    counts recounted from the log when the app next starts."""
    with store._write() as cur:
        cur.execute("INSERT INTO recommendation_order (recommendation_id) SELECT l.recommendation_id"
                    " FROM recommendation_lists l LEFT JOIN recommendation_order o"
                    " ON o.recommendation_id = l.recommendation_id WHERE o.recommendation_id IS NULL"
                    " ORDER BY l.created_at, l.recommendation_id")
        cur.execute("DELETE FROM dashboard_state")


def default_directory(env: dict[str, str] | None = None) -> Path:
    """``LINGXI_BACKUP_DIR``, else ``<data dir>/backups``."""
    from ..config import from_env

    env = dict(os.environ) if env is None else env
    if env.get("LINGXI_BACKUP_DIR"):
        return Path(env["LINGXI_BACKUP_DIR"])
    return Path(from_env(env)["LINGXI_DATA_DIR"]) / "backups"
