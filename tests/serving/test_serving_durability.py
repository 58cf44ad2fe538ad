"""Durability under kill -9: gunicorn (2 workers, loopback) takes feedback from several threads, the
whole server is SIGKILLed mid-load and restarted; every acknowledged feedback is then present exactly
once, no request is half-stored, and a client retry of an acknowledged request stores nothing new."""
from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from serving_fakes import make_customer_360, read_books
from serving_live import GUNICORN, free_port, kill9, start, wait_ready

from serving.tokens import add_token


@pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed next to this Python")
def test_acknowledged_feedback_survives_kill_9(tmp_path: Path):
    make_customer_360(tmp_path / "marts", n=200, events=False)
    token = add_token(tmp_path / "tokens.json", "crm-durability", "crm")
    headers = {"Authorization": f"Bearer {token}"}
    port, log = free_port(), tmp_path / "gunicorn.log"
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp_path, port, log)
    try:
        wait_ready(base, proc, log)
        recs = []
        for cid in read_books(tmp_path / "marts")["M001"][:40]:  # the CRM acts for M001, on M001's book
            rec = requests.post(f"{base}/api/v1/recommendations", json={"customer_id": cid, "manager_id": "M001"},
                                headers=headers, timeout=10).json()
            if len(rec["products"]) >= 2:
                recs.append(rec)
        assert len(recs) >= 5

        acked: dict[str, tuple[int, dict]] = {}   # key -> (status, body) of acknowledged requests
        sent: dict[str, int] = {}                 # key -> number of items, for every attempt
        lock, stop = threading.Lock(), threading.Event()

        def client(worker: int) -> None:
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

        threads = [threading.Thread(target=client, args=(w,), daemon=True) for w in range(8)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while len(acked) < 150 and time.monotonic() < deadline:
            time.sleep(0.01)
        kill9(proc)  # mid-load: requests are in flight
        stop.set()
        for t in threads:
            t.join(10)
        assert len(acked) >= 50, f"too little load before the kill ({len(acked)} acks)"
        print(f"DURABILITY sent={len(sent)} acked={len(acked)}")

        proc = start(tmp_path, port, log)
        wait_ready(base, proc, log)

        db = sqlite3.connect(tmp_path / "feedback.db")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        scope = f"token:{token.split('_')[1]}/"  # the CRM token's keys, as stored (scoped to the caller)
        stored = {k.removeprefix(scope): n for k, n in
                  db.execute("SELECT request_key, COUNT(*) FROM feedback GROUP BY request_key").fetchall()}
        requests_rows = {k.removeprefix(scope) for (k,) in db.execute("SELECT idempotency_key FROM feedback_requests")}
        for key, (n, body) in acked.items():
            assert stored.get(key) == n, f"acknowledged {key} stored {stored.get(key)} times, expected {n}"
            ids = {f for (f,) in db.execute("SELECT feedback_id FROM feedback WHERE request_key = ?", (scope + key,))}
            assert ids == {item["feedback_id"] for item in body["items"]}
        for key, count in stored.items():  # unacknowledged requests: all or nothing, never half
            assert key in requests_rows and count == sent[key]
        print(f"DURABILITY stored={len(stored)} unacknowledged_but_stored={len(set(stored) - set(acked))}")
        db.close()

        # a client retry after the crash returns the original result and stores nothing new
        key, (n, body) = next(iter(acked.items()))
        retry = requests.post(f"{base}/api/v1/recommendations/{body['recommendation_id']}/feedback",
                              json={"items": [{"product_id": i["product_id"], "response": i["response"]}
                                              for i in body["items"]], "manager_id": "M001"},
                              headers={**headers, "Idempotency-Key": key}, timeout=10)
        assert retry.status_code == 200 and retry.json() == body
        db = sqlite3.connect(tmp_path / "feedback.db")
        assert db.execute("SELECT COUNT(*) FROM feedback WHERE request_key = ?", (scope + key,)).fetchone()[0] == n
        db.close()
    finally:
        kill9(proc)
