"""Backups of the feedback store, SQLite and PostgreSQL: a full and incrementals taken while writer
threads record feedback; restoring the chain finds every answer acknowledged before the backup
started and every row up to the backup's watermark, exactly as stored (same ids, same ``seq``), and
nothing else; the restored store takes new answers. Plus the weekly/daily choice, the CLI, and a
damaged file refused before anything is written."""
from __future__ import annotations

import gzip
import json
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from serving.backup import BackupError, backup, manifests, restore
from serving.backup.__main__ import main as backup_cli
from serving.backup.catalog import choose_kind
from serving.store import Recommendation, ShownProduct, open_store
from serving.store.records import row_key, scoped_key

RESPONSES = ("interested", "not_interested", "already_owns")
FEEDBACK_SQL = ("SELECT seq, feedback_id, recommendation_id, customer_id, product_id, manager_id, response,"
                " idempotency_key, request_key FROM feedback")


def _recommendation(stage: int = 1, parent: str | None = None) -> Recommendation:
    products = tuple(ShownProduct(p, r + 1, 0.5 - r / 10, 80 - r, ({"code": "T", "text": "t"},), ("tag",))
                     for r, p in enumerate(("SAV_DEMAND", "CRD_CREDIT", "FND_BOND")))
    return Recommendation(uuid.uuid4().hex.upper(), uuid.uuid4().hex.upper(), "M001", stage, parent, "test-1",
                          datetime.now(timezone.utc), products)


class Writers:
    """Threads that log recommendations and record feedback until stopped; each acknowledged
    request's key, rows and the monotonic time its call returned."""

    def __init__(self, url: str, threads: int = 3) -> None:
        self.store = open_store(url)
        self.acked: dict[str, tuple[float, tuple]] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, worker: int) -> None:
        try:
            i = 0
            while not self.stop.is_set():
                rec = _recommendation()
                self.store.log_recommendation(rec)
                if i % 3 == 0:  # a stage-two list too, referring to its parent
                    self.store.log_recommendation(_recommendation(2, rec.recommendation_id))
                key = f"bk-{worker}-{i}"
                items = [(p.product_id, RESPONSES[(i + j) % 3]) for j, p in enumerate(rec.products[: 1 + i % 2])]
                result = self.store.record_feedback(idempotency_key=key, request_hash=key, recommendation=rec,
                                                    manager_id="M001", items=items,
                                                    recorded_at=datetime.now(timezone.utc), caller="manager:M001")
                assert result.status == "created"
                with self.lock:
                    self.acked[key] = (time.monotonic(), result.rows)
                i += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)

    def __enter__(self) -> Writers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)
        self.store.close()

    def wait_for(self, n: int, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while len(self.acked) < n and time.monotonic() < deadline and not self.errors:
            time.sleep(0.01)
        assert not self.errors, self.errors
        assert len(self.acked) >= n, f"only {len(self.acked)} answers in {seconds}s"


def _rows(url: str) -> dict[int, tuple]:
    store = open_store(url, create=False)
    try:
        return {row[0]: tuple(row) for row in store._query(FEEDBACK_SQL)}
    finally:
        store.close()


@pytest.fixture
def target_url(store_url: str, tmp_path: Path, request) -> str:
    """An empty store of the same backend to restore into."""
    if store_url.startswith("sqlite:///"):
        return f"sqlite:///{tmp_path / 'restored.db'}"
    import psycopg

    server = request.getfixturevalue("postgres_server")
    name = f"restored_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.rsplit("/", 1)[0] + f"/{name}"


def _check_restored(source: dict[int, tuple], restored_url: str, acked: dict[str, tuple[float, tuple]],
                    started: float, watermark: int) -> int:
    restored = _rows(restored_url)
    by_key = {row[7]: row for row in restored.values()}
    must = [rows for at, rows in acked.values() if at < started]
    assert must, "nothing was acknowledged before the backup"
    for rows in must:  # every answer acknowledged before the backup started
        for row in rows:
            assert row.idempotency_key in by_key, f"acknowledged {row.idempotency_key} missing"
            assert by_key[row.idempotency_key][1] == row.feedback_id
            assert by_key[row.idempotency_key][6] == row.response
    for seq, row in source.items():  # every row up to the watermark, as stored
        if seq <= watermark:
            assert restored.get(seq) == row, f"seq {seq} not restored as stored"
    for seq, row in restored.items():  # and nothing the source does not hold
        assert source.get(seq) == row
    return len(must)


def test_backup_during_writes_restores_every_acknowledged_answer(store_url, target_url, tmp_path):
    directory = tmp_path / "backups"
    open_store(store_url).close()
    windows: list[tuple[float, float]] = []
    taken: list[tuple[float, object]] = []
    with Writers(store_url) as writers:
        writers.wait_for(60)
        for i, kind in enumerate(("full", "incremental", "incremental", "incremental")):
            started = time.monotonic()
            manifest = backup(store_url, directory, "auto")
            windows.append((started, time.monotonic()))
            taken.append((started, manifest))
            assert manifest.kind == kind  # auto: the first is full, then incrementals within the week
            writers.wait_for(len(writers.acked) + 20)
    acked = writers.acked  # the threads have stopped
    assert not writers.errors, writers.errors
    during = sum(1 for at, _ in acked.values() if any(lo < at < hi for lo, hi in windows))
    print(f"BACKUP {store_url.split(':')[0]} answers={len(acked)} acknowledged_during_backups={during} "
          f"rows={[m.rows for _, m in taken]} watermarks={[m.watermark for _, m in taken]}")
    source = _rows(store_url)
    assert len(source) == sum(len(rows) for _, rows in acked.values())

    started, last = taken[-1]
    chain = restore(directory, target_url)
    assert [m.name for m in chain] == [m.name for _, m in taken]
    checked = _check_restored(source, target_url, acked, started, last.watermark)
    print(f"BACKUP restored chain of {len(chain)}: {checked} answers acknowledged before the last backup found")

    # the restored store takes new answers: its seq continues above the restored rows
    restored = open_store(target_url)
    try:
        rec = _recommendation()
        restored.log_recommendation(rec)
        result = restored.record_feedback(idempotency_key="after-restore", request_hash="h", recommendation=rec,
                                          manager_id="M001", items=[("SAV_DEMAND", "interested")],
                                          recorded_at=datetime.now(timezone.utc), caller="manager:M001")
        assert result.status == "created"
        (seq,) = restored._query("SELECT seq FROM feedback WHERE idempotency_key = ?",
                                 (row_key(scoped_key("manager:M001", "after-restore"), "SAV_DEMAND"),))[0]
        assert seq == max(_rows(target_url)) and seq > last.watermark
    finally:
        restored.close()

    # the full alone, restored elsewhere (--force replaces the store restored above)
    full_started, full = taken[0]
    restore(directory, target_url, at=full.name, force=True)
    _check_restored(source, target_url, acked, full_started, full.watermark)


def test_schedule_cli_and_damaged_files(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    directory = tmp_path / "backups"
    store = open_store(url)
    rec = _recommendation()
    store.log_recommendation(rec)
    store.record_feedback(idempotency_key="k1", request_hash="h", recommendation=rec, manager_id="M001",
                          items=[("SAV_DEMAND", "interested")], recorded_at=datetime.now(timezone.utc),
                          caller="manager:M001")
    store.close()

    with pytest.raises(BackupError, match="needs a full"):
        backup(url, directory, "incremental")
    assert backup_cli(["backup", "--url", url, "--dir", str(directory)]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "full"
    assert backup_cli(["backup", "--url", url, "--dir", str(directory), "--kind", "incremental"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "incremental"
    now = datetime.now(timezone.utc)
    assert choose_kind(directory, "sqlite", now) == "incremental"
    assert choose_kind(directory, "sqlite", now + timedelta(days=7)) == "full"  # weekly full
    assert backup_cli(["list", "--dir", str(directory)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2

    target = tmp_path / "restored.db"
    assert backup_cli(["restore", "--dir", str(directory), "--to", f"sqlite:///{target}"]) == 0
    assert len(_rows(f"sqlite:///{target}")) == 1
    assert backup_cli(["restore", "--dir", str(directory), "--to", f"sqlite:///{target}"]) == 1  # exists
    assert "--force" in capsys.readouterr().err

    incremental = [m for m in manifests(directory) if m.kind == "incremental"][0]
    with gzip.open(directory / incremental.file, "at") as handle:  # damaged after it was taken
        handle.write("[]\n")
    other = tmp_path / "other.db"
    with pytest.raises(BackupError, match="checksum"):
        restore(directory, f"sqlite:///{other}")
    assert not other.exists()  # refused before anything was written
