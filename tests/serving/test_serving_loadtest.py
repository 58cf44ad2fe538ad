"""The load test (``python -m benchmarks.loadtest``, part of ``make bench``) at tiny scale: it runs end
to end against a real gunicorn, writes the bench.json keys the issue asks for without clobbering
the others, leaves the bank's data dir untouched, and its kill -9 count is exact. No timing is
asserted: the figures are only meaningful from the full-scale run on an idle machine."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from real_services import unavailable
from serving_fakes import make_customer_360, read_books
from serving_live import HERE, free_port, kill9, start, wait_ready

from benchmarks import loadgen
from benchmarks.loadtest import Plan, main
from benchmarks.server import GUNICORN
from serving.tokens import add_token

needs_gunicorn = pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed next to this Python")


@pytest.fixture
def fake_engine_env(monkeypatch):
    monkeypatch.setenv("LINGXI_ENGINE", "serving_fakes:FakeEngine")
    monkeypatch.setenv("LINGXI_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))


@needs_gunicorn
def test_load_test_writes_the_bench_keys(tmp_path: Path, fake_engine_env, monkeypatch):
    bank = tmp_path / "bank"
    make_customer_360(bank / "marts", n=300, events=False)
    before = sorted(p.relative_to(bank) for p in bank.rglob("*"))
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "bench.json").write_text(json.dumps({"pipeline": {"kept": True}}))
    monkeypatch.setenv("LINGXI_REPORTS_DIR", str(reports))

    assert main(["--data-dir", str(bank), "--quick"]) == 0

    bench = json.loads((reports / "bench.json").read_text())
    assert bench["pipeline"] == {"kept": True}                      # merged, not overwritten
    for key in ("rps", "p50_ms", "p95_ms", "p99_ms", "errors", "duration_s"):
        assert key in bench["stage_one"]
    assert bench["stage_one"]["requests"] == Plan.quick().rate * Plan.quick().seconds
    assert bench["stage_one"]["ok"] + bench["stage_one"]["errors"] == bench["stage_one"]["requests"]
    assert {"rps", "p95_ms", "errors"} <= set(bench["feedback"]) and bench["feedback"]["ok"] > 0
    assert "p95_ms" in bench["segment_filter"] and bench["segment_filter"]["ok"] > 0
    assert "max_rps_p95_under_100ms" in bench
    assert bench["n_customers"] == 300 and bench["workers"] == 2
    durability = bench["durability"]
    assert durability["acknowledged"] > 0
    assert durability["present_after_restart"] == durability["acknowledged"]
    assert durability["missing"] == 0 and durability["duplicates"] == 0
    assert durability["integrity_check"] == "ok"
    assert durability["retry_after_restart"] == {"status": 200, "replayed": True}
    assert sorted(p.relative_to(bank) for p in bank.rglob("*")) == before  # the bank is never written


@needs_gunicorn
@pytest.mark.parametrize("generator", ["wrk", "asyncio"])
def test_open_loop_generators_time_every_scheduled_request(tmp_path: Path, generator: str):
    if generator == "wrk" and loadgen.wrk_path() is None:
        unavailable("wrk is not installed (Debian: wrk)")
    make_customer_360(tmp_path / "marts", n=100, events=False)
    token = add_token(tmp_path / "tokens.json", "crm-load", "crm")
    port, log = free_port(), tmp_path / "gunicorn.log"
    proc = start(tmp_path, port, log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, proc, log)
        ids = read_books(tmp_path / "marts")["M001"][:5]
        requests = [loadgen.Request("/api/v1/recommendations", json.dumps({"customer_id": c, "manager_id": "M001"}))
                    for c in ids]
        requests.append(loadgen.Request("/api/v1/recommendations", json.dumps({"customer_id": "not-an-id"})))
        result = loadgen.run(base, token, requests, rate=40, seconds=1.5, generator=generator, connections=8)
    finally:
        kill9(proc)
    assert len(result.due) == 60 and np.all(np.diff(result.due) > 0)  # one slot every 25 ms
    sent = ~np.isnan(result.sent)
    assert sent.all() and set(result.kind.tolist()) <= set(range(len(requests)))
    statuses = result.status[sent]
    assert set(statuses.tolist()) <= {201, 400}
    assert np.array_equal(statuses == 400, result.kind == len(requests) - 1)  # answers matched to their slot
    assert np.all(result.latency_ms[sent] > 0)
    summary = result.summary((201,))
    assert summary["ok"] == int((statuses == 201).sum()) and summary["errors"] == 60 - summary["ok"]
