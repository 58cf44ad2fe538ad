"""The Parquet export of the feedback store: incremental above a watermark, one run at a time,
old parts folded into a base part, and still the dbt source's layout (both backends)."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pyarrow.parquet as pq
import pytest
from serving_fakes import T0, make_rec, record

from serving.export import MANIFEST, SCHEMAS, export, export_lock, main, part_name
from serving.store import open_store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(store_url: str):
    store = open_store(store_url)
    yield store
    store.close()


def _exported(out: Path, table: str) -> list[dict]:
    files = sorted((out / table).glob("*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def _keys(out: Path) -> tuple[list[tuple], list[str]]:
    recs = [(r["recommendation_id"], r["product_id"]) for r in _exported(out, "recommendations")]
    return recs, [f["idempotency_key"] for f in _exported(out, "feedback")]


def _log(store, n: int, prefix: str, at=T0) -> list:
    recs = []
    for i in range(n):
        rec = make_rec(at=at)
        store.log_recommendation(rec)
        record(store, rec, f"{prefix}-{i:04d}", [("SAV_TIME", "interested"), ("PRO_LIFE", "not_interested")], at=at)
        recs.append(rec)
    return recs


def _store_keys(store) -> tuple[set, set]:
    recs = {(r, p) for r, p in store._query("SELECT recommendation_id, product_id FROM recommendation_items")}
    return recs, {k for (k,) in store._query("SELECT idempotency_key FROM feedback")}


def test_empty_store_exports_the_schema(store, tmp_path: Path):
    manifest = export(store, tmp_path)
    assert manifest["rows"] == {"recommendations": 0, "feedback": 0}
    for table in ("recommendations", "feedback"):
        assert pq.read_schema(tmp_path / table / part_name(0)).equals(SCHEMAS[table], check_metadata=False)


def test_two_exports_in_a_row_append_only_the_new_rows(store, tmp_path: Path):
    first = _log(store, 3, "a")
    m1 = export(store, tmp_path, batch_size=2)
    assert m1["appended"] == {"recommendations": 9, "feedback": 6} and m1["rebuilt"]
    second = _log(store, 2, "b", at=T0 + timedelta(hours=1))
    m2 = export(store, tmp_path)
    assert m2["appended"] == {"recommendations": 6, "feedback": 4} and m2["rebuilt"] is None
    new_part = tmp_path / "feedback" / part_name(m1["watermarks"]["feedback"])
    assert {r["recommendation_id"] for r in pq.read_table(new_part).to_pylist()} == {r.recommendation_id for r in second}
    m3 = export(store, tmp_path)  # nothing new: no part, same watermarks
    assert m3["appended"] == {"recommendations": 0, "feedback": 0} and m3["watermarks"] == m2["watermarks"]
    recs, keys = _keys(tmp_path)
    assert len(recs) == len(set(recs)) == 15 and len(keys) == len(set(keys)) == 10  # each row once
    assert (set(recs), set(keys)) == _store_keys(store)
    assert {r for r, _ in recs} == {r.recommendation_id for r in first + second}
    local = T0.astimezone(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)  # naive bank-local time
    assert _exported(tmp_path, "recommendations")[0]["created_at"] == local
    assert sorted(p.name for p in (tmp_path / "feedback").iterdir()) == [part_name(0), new_part.name]  # no temp


def test_a_run_that_died_before_its_manifest_is_overwritten_not_duplicated(store, tmp_path: Path):
    _log(store, 2, "a")
    export(store, tmp_path)
    saved = (tmp_path / MANIFEST).read_text()
    _log(store, 1, "b")
    export(store, tmp_path)
    (tmp_path / MANIFEST).write_text(saved)  # as if the run had died before replacing the manifest
    _log(store, 1, "c")
    manifest = export(store, tmp_path)
    assert manifest["appended"]["feedback"] == 4  # b and c, into the part b's run had written
    recs, keys = _keys(tmp_path)
    assert len(keys) == len(set(keys)) == 8 and len(recs) == len(set(recs)) == 12


def test_full_rebuild_and_automatic_rebuilds(store, tmp_path: Path):
    _log(store, 2, "a")
    export(store, tmp_path)
    _log(store, 2, "b")
    export(store, tmp_path)
    full = export(store, tmp_path, full=True)
    assert full["rebuilt"] == "requested" and full["appended"]["feedback"] == 8
    assert sorted(p.name for p in (tmp_path / "feedback").glob("*.parquet")) == [part_name(0)]
    (tmp_path / "feedback" / "part-00000.parquet").write_bytes(b"left by an older export")
    moved = export(store, tmp_path, tz="UTC")
    assert "time zone" in moved["rebuilt"] and not (tmp_path / "feedback" / "part-00000.parquet").exists()
    assert _exported(tmp_path, "recommendations")[0]["created_at"] == T0.replace(tzinfo=None)
    assert "another store" in export(store, tmp_path, tz="UTC", source="elsewhere")["rebuilt"]
    recs, keys = _keys(tmp_path)
    assert (set(recs), set(keys)) == _store_keys(store) and len(keys) == 8


def test_a_store_behind_the_watermark_is_exported_again(store_url: str, tmp_path: Path):
    """After a restore from an older backup the sequence numbers are reused: a rebuild, not a skip."""
    store = open_store(store_url)
    _log(store, 3, "a")
    export(store, tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    manifest["watermarks"]["feedback"] += 100
    (tmp_path / "out" / MANIFEST).write_text(json.dumps(manifest))
    again = export(store, tmp_path / "out")
    store.close()
    assert "behind" in again["rebuilt"] and again["rows"]["feedback"] == 6


def test_retention_folds_old_parts_into_the_base(store, tmp_path: Path):
    now = T0
    for day in range(10):
        _log(store, 1, f"d{day}")
        export(store, tmp_path, keep_days=3, now=now + timedelta(days=day))
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    files = sorted(p.name for p in (tmp_path / "feedback").glob("*.parquet"))
    assert files == [p["file"] for p in manifest["parts"]["feedback"]]
    assert len(files) == 5  # the base (days 0-5) and the parts of the last four days (within 3 days of day 9)
    base = manifest["parts"]["feedback"][0]
    assert base["after"] == 0 and base["rows"] == 12
    recs, keys = _keys(tmp_path)
    assert len(keys) == len(set(keys)) == 20 and (set(recs), set(keys)) == _store_keys(store)


def test_export_waits_for_commits_in_flight(postgres_url: str, tmp_path: Path):
    """PostgreSQL takes identity values at insert, so a list can commit after one with a higher
    number. The export's horizon waits for it: no row is ever left below the watermark."""
    import psycopg

    store = open_store(postgres_url)
    slow = make_rec()
    conn = psycopg.connect(postgres_url)  # a writer in the middle of its transaction
    conn.execute("INSERT INTO recommendation_lists (recommendation_id, customer_id, manager_id, stage, model_version,"
                 " created_at) VALUES (%s, %s, 'M001', 1, 'm-1', now())", (slow.recommendation_id, slow.customer_id))
    conn.execute("INSERT INTO recommendation_items VALUES (%s, 'SAV_TIME', 1, 0.5, 50, '[]', '[]')",
                 (slow.recommendation_id,))
    conn.execute("INSERT INTO recommendation_order (recommendation_id) VALUES (%s)", (slow.recommendation_id,))
    fast = _log(store, 1, "fast")[0]  # a higher number, committed first
    done: dict = {}
    thread = threading.Thread(target=lambda: done.update(export(store, tmp_path)))
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive()  # the export waits for the writer
    conn.commit()
    conn.close()
    thread.join(30)
    export(store, tmp_path)
    store.close()
    exported = {r for r, _ in _keys(tmp_path)[0]}
    assert exported == {slow.recommendation_id, fast.recommendation_id}
    assert done["appended"]["recommendations"] == 4


def test_concurrent_exports_never_interleave(store_url: str, tmp_path: Path):
    """Writers and three exporters at once: each run holds the lock, every row lands exactly once."""
    writer = open_store(store_url)
    stop, errors = threading.Event(), []

    def write():
        i = 0
        while not stop.is_set():
            _log(writer, 1, f"w{i}")
            i += 1

    def run():
        store = open_store(store_url, create=False)
        try:
            for _ in range(3):
                export(store, tmp_path, batch_size=3)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=write)] + [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join(120)
    stop.set()
    threads[0].join(30)
    export(writer, tmp_path)
    assert not errors
    recs, keys = _keys(tmp_path)
    assert len(recs) == len(set(recs)) and len(keys) == len(set(keys))
    assert (set(recs), set(keys)) == _store_keys(writer) and keys
    writer.close()


def test_a_second_run_waits_or_exits_with_a_message(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("LINGXI_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LINGXI_FEEDBACK_DB_URL", raising=False)
    open_store(f"sqlite:///{tmp_path / 'feedback.db'}").close()
    out = tmp_path / "feedback_export"
    with export_lock(out, 0):
        assert main(["--wait", "0"]) == 75
        err = capsys.readouterr().err
        assert "another export" in err and "is running" in err
    # a separate process: flock is per open file, so the lock holds between processes too
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from serving.export import export_lock\n"
        f"with export_lock(Path({str(out)!r}), 0):\n    print('held', flush=True); time.sleep(1.5)")],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    assert main(["--wait", "30"]) == 0  # waits for the holder, then runs
    assert time.monotonic() - started > 0.5
    holder.wait(10)
    captured = capsys.readouterr()
    assert "waiting for the export" in captured.err and '"appended"' in captured.out


def test_export_cli(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("LINGXI_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LINGXI_FEEDBACK_DB_URL", raising=False)
    open_store(f"sqlite:///{tmp_path / 'feedback.db'}").close()
    assert main([]) == 0
    assert (tmp_path / "feedback_export" / "feedback" / part_name(0)).exists()
    assert '"rows"' in capsys.readouterr().out
    assert main(["--full", "--keep-days", "1"]) == 0


def test_parts_read_as_the_dbt_source(store, tmp_path: Path):
    """dbt reads ``feedback_export/<table>/*.parquet``; stg_feedback__responses keeps one row per key."""
    rec = make_rec()
    store.log_recommendation(rec)
    record(store, rec, "duck-key-1", [("SAV_TIME", "interested")])
    export(store, tmp_path)
    record(store, rec, "duck-key-2", [("PRO_LIFE", "not_interested"), ("WLT_WMP", "already_owns")])
    record(store, rec, "duck-key-2", [("PRO_LIFE", "not_interested"), ("WLT_WMP", "already_owns")])  # a retry
    export(store, tmp_path)
    con = duckdb.connect()
    rows = con.execute(
        "select f.response, r.rank from read_parquet(?, union_by_name = true) f"
        " join read_parquet(?, union_by_name = true) r using (recommendation_id, product_id) order by r.rank",
        [str(tmp_path / "feedback" / "*.parquet"), str(tmp_path / "recommendations" / "*.parquet")]).fetchall()
    assert rows == [("interested", 1), ("not_interested", 2), ("already_owns", 3)]
