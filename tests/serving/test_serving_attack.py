"""The scripted attack (``make attack``) end to end against the production front door (nginx in front of
gunicorn) with the fake engine: every class is tried and refused (slow clients cut off by nginx while
/healthz keeps answering), no 5xx, no cross-book success, a 429 burst, and the report's keys."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from serving_fakes import make_customer_360
from real_services import unavailable
from serving_live import HERE

from benchmarks.attack import missing_parts, run_attack, write_report
from benchmarks.attack_client import CLASSES
from benchmarks.server import GUNICORN
from serving.proxy import nginx_binary


@pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed next to this Python")
def test_attack_finds_no_way_in(tmp_path: Path, monkeypatch):
    if nginx_binary() is None:
        unavailable("nginx is not installed (`make nginx`)")
    monkeypatch.setenv("LINGXI_ENGINE", "serving_fakes:FakeEngine")
    monkeypatch.setenv("LINGXI_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    bank = tmp_path / "bank"
    make_customer_360(bank / "marts", n=300, events=False)
    assert "models" in missing_parts(bank)  # the real app's parts: `make attack` builds them first
    before = sorted(p.relative_to(bank) for p in bank.rglob("*"))

    result = run_attack(bank, workers=2, max_requests=2000, seconds=240, slow_seconds=11, front="nginx")

    assert result["server_errors"] == 0 and result["cross_book_successes"] == 0, result["not_refused"]
    assert set(result["by_class"]) == set(CLASSES)
    for name, counts in result["by_class"].items():
        assert counts["tried"] > 0 and counts["refused"] == counts["tried"], (name, result["not_refused"])
    slow = result["slow_client"]
    assert slow["healthz_probes"] > 10 and slow["healthz_ok_during"] == slow["healthz_probes"]  # never blocked
    assert result["requests"] >= sum(c["tried"] for c in result["by_class"].values())
    burst = result["rate_limit"]
    assert burst["limited_429"] > 0 and burst["retry_after_on_every_429"] and burst["json_error_on_every_429"]
    assert burst["ok"] <= burst["allowed_at_most"] + 2
    checks = result["checks"]
    assert checks["ready_after"] and checks["integrity_check"] == "ok" and checks["tables_intact"]
    assert checks["audit_rows_of_a_by_status"].get("404", 0) > 0  # the refused probing is in the audit log
    path = write_report(tmp_path / "reports", result)
    assert json.loads(path.read_text())["requests"] == result["requests"]
    assert sorted(p.relative_to(bank) for p in bank.rglob("*")) == before  # the bank is never written
