"""The walkthrough ``make demo`` prints, end to end: the test-scale bank's real model, a learned
re-ranker and a published version under gunicorn (two workers), the printed bash script run as a
user runs it, and every step's answer checked."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from serving_live import GUNICORN, HERE, ROOT, free_port, kill9, wait_ready

FALLBACK_RULE = "rule-up2-down0.5"


@pytest.fixture
def demo_dir(trained_data_dir, tmp_path: Path) -> Path:
    """A private data dir over the trained test bank, as ``make demo`` leaves it: a re-ranker learned
    from simulated sessions, the nightly table, one published version."""
    from ml.core.config import CUTOFFS, Paths
    from ml.engine.publish import publish, repoint_sources
    from ml.evaluation.simulated_logs import simulate_logs
    from ml.features.snapshot import feature_store
    from ml.recommendation.batch import batch_score
    from ml.recommendation.rerank_training import train as train_reranker

    root = tmp_path / "data"
    for name in ("raw", "marts", "oracle"):  # the oracle only feeds the simulated answers
        (root / name).mkdir(parents=True)
        for item in (trained_data_dir / name).iterdir():
            (root / name / item.name).symlink_to(item)
    (root / "feast").mkdir()
    for name in ("registry.db", "online_store.db"):
        shutil.copy(trained_data_dir / "feast" / name, root / "feast" / name)
    shutil.copytree(trained_data_dir / "models", root / "models", symlinks=True,
                    ignore=shutil.ignore_patterns("strategies", "reranker*.json"))
    paths = Paths(data=root, reports=tmp_path / "reports")
    repoint_sources(feature_store(paths), trained_data_dir, root)
    simulate_logs(paths, [c for c in CUTOFFS if c.isoformat() in ("2025-02-01", "2025-03-01")], limit=1500)
    train_reranker(paths)
    batch_score(paths, k=5, sample=3000, check=False)
    publish(paths)
    return root


def steps(output: str) -> dict[int, list]:
    """The script's output split at its ``== n. title`` lines: every JSON answer of each step."""
    out: dict[int, list] = {}
    current = None
    for line in output.splitlines():
        heading = re.match(r"== (\d+)\. ", line)
        if heading:
            current = int(heading[1])
            out[current] = []
        elif line.startswith("{") and current is not None:
            out[current].append(json.loads(line))
    return out


@pytest.mark.slow
def test_the_printed_walkthrough_works_end_to_end(demo_dir: Path, tmp_path: Path, monkeypatch, capsys):
    from benchmarks.examples import main

    monkeypatch.setenv("LINGXI_DATA_DIR", str(demo_dir))
    for name in ("LINGXI_TOKENS_FILE", "LINGXI_TOKENS", "LINGXI_FEEDBACK_DB_URL", "LINGXI_ENGINE"):
        monkeypatch.delenv(name, raising=False)
    port, log = free_port(), tmp_path / "gunicorn.log"
    assert main(["--host", "127.0.0.1", "--port", str(port)]) == 0
    script = capsys.readouterr().out
    env = {**os.environ, "LINGXI_DATA_DIR": str(demo_dir), "LINGXI_REPORTS_DIR": str(tmp_path / "reports"),
           "LINGXI_RATE_LIMITS": "off", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
           "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for name in ("LINGXI_FEEDBACK_DB_URL", "LINGXI_TOKENS_FILE", "LINGXI_TOKENS", "LINGXI_ENGINE", "LINGXI_FEAST_CONFIG"):
        env.pop(name, None)
    with open(log, "ab") as handle:
        proc = subprocess.Popen([str(GUNICORN), "-c", str(ROOT / "serving" / "gunicorn.conf.py"), "--workers", "2",
                                 "--bind", f"127.0.0.1:{port}", "serving:create_app()"], cwd=ROOT, env=env,
                                stdout=handle, stderr=handle, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, log, seconds=240)
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=180)
    finally:
        kill9(proc)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    answers = steps(done.stdout)
    assert sorted(answers) == list(range(8)), done.stdout[-3000:]
    customer = re.search(r"^CUSTOMER=(\S+)", script, re.M)[1]
    manager = re.search(r"^MANAGER_ID=(\S+)", script, re.M)[1]

    engine = answers[0][0]["checks"]["engine"]
    assert engine["ok"] and engine["versions"]["stage_two"].startswith("learned-")
    assert engine["versions"]["stage_two"] != FALLBACK_RULE

    assert json.dumps(answers[1][0]).upper().count(customer.upper()) >= 1          # the lookup
    segment = answers[2][0]
    assert segment["count"] >= 1                                                    # the customer's own band

    first = answers[3][0]
    shown = [p["product_id"] for p in first["products"]]
    assert first["stage"] == 1 and len(shown) == 5 and first["customer_id"].upper() == customer.upper()
    assert first["manager_id"] == manager                                           # the CRM named the manager

    stored = answers[4][0]
    assert stored["manager_id"] == manager
    assert {(i["product_id"], i["response"]) for i in stored["items"]} == {
        (shown[0], "interested"), (shown[1], "not_interested"), (shown[2], "already_owns")}

    second = answers[5][0]
    again = [p["product_id"] for p in second["products"]]
    assert second["stage"] == 2 and second["parent_recommendation_id"] == first["recommendation_id"] and again
    assert not set(again) & set(shown[1:3]), "declined and owned products never come back"

    assert isinstance(answers[6][0], dict) and answers[6][0]                       # the dashboard
    cold = answers[7][0]
    assert "conflicts" in cold and len(cold["targets"]) >= 1
