"""The nightly publication while requests flow, end to end: the real engine under gunicorn (two
workers), the real ``ml.engine.publish``; the second night is a new model version (the trained
model re-registered under another version id: a stub of ``make train``) scored by the real batch.
No request fails, every answer comes from one version, and the workers switch without a restart."""
from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from night_steps import night, working_dir
from serving_live import GUNICORN, HERE, ROOT, free_port, kill9

from ml.recommendation.control import CONTROL_VERSION
from serving.release import VERSION_HEADER
from serving.tokens import add_token

V1 = "/api/v1"


@pytest.fixture
def night_dir(trained_data_dir, tmp_path: Path) -> Path:
    return working_dir(trained_data_dir, tmp_path)


@pytest.mark.slow
def test_nightly_publication_while_requests_flow(night_dir: Path, tmp_path: Path):
    from ml.core.config import Paths
    from ml.recommendation.stage_one_table import StageOneTable

    paths = Paths(data=night_dir, reports=tmp_path / "reports")
    first = night(paths, sample=3000, retrain=False)
    ids = [i.decode() for i in StageOneTable.load(night_dir / "scores").ids[:200:4]]
    import pandas as pd

    books = pd.read_parquet(night_dir / "marts" / "manager_books.parquet", columns=["customer_id", "manager_id"])
    manager_of = dict(zip(books["customer_id"], books["manager_id"]))  # each request acts for the customer's manager
    token = add_token(night_dir / "tokens.json", "crm-night", "crm")
    headers = {"Authorization": f"Bearer {token}"}
    port, log = free_port(), tmp_path / "gunicorn.log"
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LINGXI_DATA_DIR": str(night_dir), "LINGXI_REPORTS_DIR": str(tmp_path / "reports"),
           "LINGXI_SNAPSHOT_CHECK_SECONDS": "0.5", "LINGXI_LOG_LEVEL": "INFO", "LINGXI_PUSH_INTERVAL_SECONDS": "0.5",
           "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for name in ("LINGXI_FEEDBACK_DB_URL", "LINGXI_TOKENS_FILE", "LINGXI_TOKENS", "LINGXI_ENGINE", "LINGXI_FEAST_CONFIG"):
        env.pop(name, None)
    import subprocess

    with open(log, "ab") as handle:
        proc = subprocess.Popen([str(GUNICORN), "-c", str(ROOT / "serving" / "gunicorn.conf.py"), "--workers", "2",
                                 "--bind", f"127.0.0.1:{port}", "serving:create_app()"], cwd=ROOT, env=env,
                                stdout=handle, stderr=handle, start_new_session=True)
    seen: list[tuple] = []
    stop = threading.Event()

    def client(worker: int) -> None:
        session = requests.Session()
        i = worker
        while not stop.is_set():
            cid = ids[i % len(ids)]
            i += 3
            try:
                r = session.get(f"{base}{V1}/customers/{cid}", headers=headers, timeout=30,
                                params={"manager_id": manager_of[cid]})
                seen.append(("lookup", r.status_code, r.headers.get(VERSION_HEADER), r.json().get("snapshot")))
                r = session.post(f"{base}{V1}/recommendations", json={"customer_id": cid, "manager_id": manager_of[cid]},
                                 headers=headers, timeout=30)
                seen.append(("stage_one", r.status_code, r.headers.get(VERSION_HEADER), r.json().get("model_version")))
                rec = r.json()
                if r.status_code == 201 and rec["products"]:
                    r = session.post(f"{base}{V1}/recommendations/{rec['recommendation_id']}/feedback",
                                     json={"manager_id": manager_of[cid],
                                           "items": [{"product_id": rec["products"][0]["product_id"],
                                                      "response": "interested"}]},
                                     headers={**headers, "Idempotency-Key": f"night-{worker}-{i:06d}"}, timeout=30)
                    seen.append(("feedback", r.status_code, r.headers.get(VERSION_HEADER), None))
            except (requests.RequestException, ValueError) as exc:
                seen.append(("error", None, None, type(exc).__name__))

    threads = [threading.Thread(target=client, args=(w,)) for w in range(3)]
    try:
        deadline = time.monotonic() + 300  # both workers loaded (a busy machine loads Feast slowly)
        streak = 0
        while streak < 20:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                streak = streak + 1 if requests.get(f"{base}/readyz", timeout=5).status_code == 200 else 0
            except requests.RequestException:
                streak = 0
            time.sleep(0.1)
        for t in threads:
            t.start()
        time.sleep(3)
        second = night(paths, sample=3000, retrain=True)  # while requests flow
        deadline = time.monotonic() + 240
        while [s[2] for s in seen[-30:]] != [second["version"]] * 30:
            assert time.monotonic() < deadline, Counter(s[2] for s in seen[-60:])
            time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        kill9(proc)
    model_of = {first["version"]: first["model_version"], second["version"]: second["model_version"]}
    assert first["model_version"] != second["model_version"]
    statuses = Counter((s[0], s[1]) for s in seen)
    assert all(status is not None and status < 500 for _, status in statuses), statuses
    assert statuses[("stage_one", 201)] > 0 and statuses[("feedback", 201)] > 0
    for kind, status, header, value in seen:
        assert header in model_of, (kind, header)
        if kind == "lookup":
            assert value == header, (kind, header, value)
        elif kind == "stage_one":  # the engine of the header's version (or the control group's rule ranking)
            assert value in (model_of[header], CONTROL_VERSION), (kind, header, value)
    versions_seen = Counter(s[2] for s in seen)
    assert versions_seen[first["version"]] > 0 and versions_seen[second["version"]] >= 30
    text = log.read_text()
    assert text.count("Booting worker") == 2 and "WORKER TIMEOUT" not in text  # switched without a restart
    assert text.count(f"version {second['version']} loaded") == 2  # both workers
    import re

    loads = [int(ms) for ms in re.findall(r"version \S+ loaded in (\d+) ms", text)]
    print(f"version loads (ms): {loads}; answers: {dict(versions_seen)}; statuses: {dict(statuses)}")
