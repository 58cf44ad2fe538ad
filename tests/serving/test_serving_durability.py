"""Durability of what the API acknowledged, on both store backends.

- ``kill -9`` of gunicorn (2 workers, loopback) mid-load — stage-one lists and feedback from several
  threads — then a restart: every acknowledged list is there with its products and every
  acknowledged feedback request exactly once; no request is half-stored; a client retry of an
  acknowledged request stores nothing new.
- A crash of the PostgreSQL server itself (immediate stop: no shutdown checkpoint, WAL buffers not
  written) mid-load, with the server's default ``synchronous_commit = off`` and a WAL writer that
  flushes only every 10 s: every acknowledged list and answer is there after recovery, because the
  store commits them with ``synchronous_commit = on`` itself. (The SQLite counterpart, a power loss,
  is simulated in ``test_serving_power_loss``.)
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from serving_fakes import make_customer_360, make_rec, read_books, record
from serving_live import GUNICORN, free_port, kill9, start, wait_ready

from serving.store import open_store
from serving.tokens import add_token


def _load(base: str, headers: dict, recs: list[dict], acked: dict, acked_lists: dict, sent: dict,
          customers: list[str], stop: threading.Event, lock: threading.Lock) -> list[threading.Thread]:
    def answers(worker: int) -> None:
        session = requests.Session()
        for i in range(10_000):
            if stop.is_set():
                return
            rec = recs[(worker + i) % len(recs)]
            n = 1 + (i % 2)
            items = [{"product_id": p["product_id"], "response": "interested" if (i + j) % 2 else "not_interested"}
                     for j, p in enumerate(rec["products"][:n])]
            key = f"dur-{worker}-{i}-{uuid.uuid4().hex[:8]}"
            with lock:
                sent[key] = n
            try:
                r = session.post(f"{base}/api/v1/recommendations/{rec['recommendation_id']}/feedback",
                                 json={"items": items, "manager_id": "M001"},
                                 headers={**headers, "Idempotency-Key": key}, timeout=5)
            except requests.RequestException:
                continue  # not acknowledged (the server died under us)
            if r.status_code == 201:
                with lock:
                    acked[key] = (n, r.json())

    def lists(worker: int) -> None:
        session = requests.Session()
        for i in range(10_000):
            if stop.is_set():
                return
            try:
                r = session.post(f"{base}/api/v1/recommendations", headers=headers, timeout=5,
                                 json={"customer_id": customers[(worker * 7 + i) % len(customers)], "manager_id": "M001"})
            except requests.RequestException:
                continue
            if r.status_code == 201:
                with lock:
                    acked_lists[r.json()["recommendation_id"]] = [p["product_id"] for p in r.json()["products"]]

    threads = ([threading.Thread(target=answers, args=(w,), daemon=True) for w in range(6)]
               + [threading.Thread(target=lists, args=(w,), daemon=True) for w in range(2)])
    for t in threads:
        t.start()
    return threads


@pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed next to this Python")
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_acknowledged_answers_survive_kill_9(backend, request, tmp_path: Path):
    db_url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    url = db_url or f"sqlite:///{tmp_path / 'feedback.db'}"
    make_customer_360(tmp_path / "marts", n=200, events=False)
    customers = read_books(tmp_path / "marts")["M001"]  # the CRM acts for M001, on M001's book
    token = add_token(tmp_path / "tokens.json", "crm-durability", "crm")
    scope = f"token:{token.split('_')[1]}/"  # the CRM token's idempotency keys, as stored (scoped to the caller)
    headers = {"Authorization": f"Bearer {token}"}
    port, log = free_port(), tmp_path / "gunicorn.log"
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp_path, port, log, db_url=db_url)
    try:
        wait_ready(base, proc, log)
        recs = []
        for cid in customers[:40]:
            rec = requests.post(f"{base}/api/v1/recommendations", json={"customer_id": cid, "manager_id": "M001"},
                                headers=headers, timeout=10).json()
            if len(rec["products"]) >= 2:
                recs.append(rec)
        assert len(recs) >= 5

        acked: dict[str, tuple[int, dict]] = {}   # key -> (items, body) of acknowledged feedback
        acked_lists: dict[str, list[str]] = {}    # recommendation id -> products of acknowledged lists
        sent: dict[str, int] = {}                 # key -> number of items, for every attempt
        lock, stop = threading.Lock(), threading.Event()
        threads = _load(base, headers, recs, acked, acked_lists, sent, customers, stop, lock)
        deadline = time.monotonic() + 30
        while (len(acked) < 150 or len(acked_lists) < 20) and time.monotonic() < deadline:
            time.sleep(0.01)
        kill9(proc)  # mid-load: requests are in flight
        stop.set()
        for t in threads:
            t.join(10)
        assert len(acked) >= 50 and len(acked_lists) >= 10, f"too little load before the kill ({len(acked)} acks)"
        print(f"DURABILITY {backend} sent={len(sent)} acked={len(acked)} lists={len(acked_lists)}")

        proc = start(tmp_path, port, log, db_url=db_url)
        wait_ready(base, proc, log)

        store = open_store(url, create=False)
        if backend == "sqlite":
            assert store._query("PRAGMA integrity_check") == [("ok",)]
        for rid, products in acked_lists.items():
            rec = store.get_recommendation(rid)
            assert rec is not None and [p.product_id for p in rec.products] == products, rid
        stored = {k.removeprefix(scope): n for k, n in
                  store._query("SELECT request_key, COUNT(*) FROM feedback GROUP BY request_key")}
        requests_rows = {k.removeprefix(scope) for (k,) in store._query("SELECT idempotency_key FROM feedback_requests")}
        ids = {}
        for key, feedback_id in store._query("SELECT request_key, feedback_id FROM feedback"):
            ids.setdefault(key.removeprefix(scope), set()).add(feedback_id)
        for key, (n, body) in acked.items():
            assert stored.get(key) == n, f"acknowledged {key} stored {stored.get(key)} times, expected {n}"
            assert ids[key] == {item["feedback_id"] for item in body["items"]}
        for key, count in stored.items():  # unacknowledged requests: all or nothing, never half
            assert key in requests_rows and count == sent[key]
        print(f"DURABILITY {backend} stored={len(stored)} unacknowledged_but_stored={len(set(stored) - set(acked))}")

        # a client retry after the crash returns the original result and stores nothing new
        key, (n, body) = next(iter(acked.items()))
        retry = requests.post(f"{base}/api/v1/recommendations/{body['recommendation_id']}/feedback",
                              json={"items": [{"product_id": i["product_id"], "response": i["response"]}
                                              for i in body["items"]], "manager_id": "M001"},
                              headers={**headers, "Idempotency-Key": key}, timeout=10)
        assert retry.status_code == 200 and retry.json() == body
        assert store._query("SELECT COUNT(*) FROM feedback WHERE request_key = ?", (scope + key,))[0][0] == n
        store.close()
    finally:
        kill9(proc)


# -- a crash of the PostgreSQL server --------------------------------------------------------------
class Cluster:
    """A private PostgreSQL cluster on loopback that a test may crash (the shared one stays up)."""

    def __init__(self, options: str) -> None:
        import glob

        initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb") or ""]
        if not initdb[-1]:
            pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql)")
        self.bin = Path(initdb[-1]).parent
        self.base = Path(tempfile.mkdtemp(prefix="lingxi-pgcrash-"))
        self.run_as: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            import pwd

            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no 'postgres' user to run initdb as")
            os.chown(self.base, user.pw_uid, user.pw_gid)
            self.run_as = ["runuser", "-u", "postgres", "--"]
        with __import__("socket").socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.data = self.base / "data"
        self.options = f"-h 127.0.0.1 -p {self.port} -k {self.base} {options}"
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "lingxi", "--no-sync")
        self.start()
        self.url = f"postgresql://lingxi@127.0.0.1:{self.port}/postgres"

    def _pg(self, tool: str, *args: str) -> None:
        subprocess.run(self.run_as + [str(self.bin / tool), *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"), "-w", "-t", "90",
                 "-o", self.options, "start")

    def crash(self) -> None:
        """Immediate stop: every server process quits at once, as in a crash; the next start recovers."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def close(self) -> None:
        subprocess.run(self.run_as + [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                       check=False, capture_output=True, timeout=60)
        shutil.rmtree(self.base, ignore_errors=True)


def test_postgres_crash_keeps_every_acknowledged_answer():
    cluster = Cluster("-F -c synchronous_commit=off -c wal_writer_delay=10000ms")
    try:
        store = open_store(cluster.url)
        assert store._query("SHOW synchronous_commit") == [("off",)]  # the server's default
        lists: list[str] = []
        keys: list[str] = []
        lock, stop, failures = threading.Lock(), threading.Event(), []

        def write(worker: int) -> None:
            i = 0
            while not stop.is_set():
                rec = make_rec(customer=f"{worker * 1000 + i:032X}")
                try:
                    store.log_recommendation(rec)
                    with lock:
                        lists.append(rec.recommendation_id)
                    key = f"crash-{worker}-{i}"
                    record(store, rec, key, [("SAV_TIME", "interested"), ("WLT_WMP", "not_interested")])
                    with lock:
                        keys.append(key)
                except Exception as exc:  # noqa: BLE001 - the server went away: not acknowledged
                    failures.append(type(exc).__name__)
                    return
                i += 1

        threads = [threading.Thread(target=write, args=(w,), daemon=True) for w in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(keys) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        cluster.crash()
        stop.set()
        for t in threads:
            t.join(30)
        store.close()
        with lock:
            acked_lists, acked_keys = set(lists), set(keys)
        assert len(acked_keys) >= 50, f"too little load before the crash ({len(acked_keys)})"
        cluster.start()
        store = open_store(cluster.url, create=False)
        present_lists = {r for (r,) in store._query("SELECT recommendation_id FROM recommendation_lists")}
        scope = "manager:M001/"  # record() answers as M001's token: keys are stored in its scope
        present_keys = {k.removeprefix(scope) for (k,) in store._query("SELECT idempotency_key FROM feedback_requests")}
        rows = {k.removeprefix(scope): n
                for k, n in store._query("SELECT request_key, COUNT(*) FROM feedback GROUP BY request_key")}
        store.close()
        print(f"PG-CRASH acked_lists={len(acked_lists)} acked_answers={len(acked_keys)} "
              f"lost_lists={len(acked_lists - present_lists)} lost_answers={len(acked_keys - present_keys)}")
        assert acked_lists <= present_lists
        assert acked_keys <= present_keys and all(rows[k] == 2 for k in acked_keys)
    finally:
        cluster.close()
