"""The sample Prometheus alert rules (``deploy/prometheus``): valid YAML with the alerts the bank asked
for, every metric they use is one ``/metrics`` exports, and promtool accepts the rules and the scrape
config and passes the rules' unit tests (each alert fires on its series, none on a healthy API)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml
from real_services import unavailable

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = DEPLOY / "alerts.yml"
REQUIRED = {"LingxiLatencyP95AboveTarget", "LingxiErrorRatioHigh", "LingxiSnapshotStale", "LingxiScrapeFailing",
            "LingxiScrapeAbsent"}


def _rules() -> list[dict]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_rules_structure():
    rules = _rules()
    names = [rule["alert"] for rule in rules]
    assert REQUIRED <= set(names) and len(names) == len(set(names))
    for rule in rules:
        assert rule["expr"].strip() and re.fullmatch(r"\d+[smh]", rule["for"])
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    by_name = {rule["alert"]: rule for rule in rules}
    latency = by_name["LingxiLatencyP95AboveTarget"]["expr"]
    assert "histogram_quantile(0.95" in latency and "[5m]" in latency and "> 0.1" in latency  # the 100 ms target
    assert "36 * 3600" in by_name["LingxiSnapshotStale"]["expr"]


def test_rules_use_exported_metrics(client, auth, customer_ids):
    """Every ``lingxi_*`` name in the rules appears in a real scrape (histogram buckets included)."""
    client.post("/api/v1/recommendations", json={"customer_id": customer_ids[0]}, headers=auth("crm"))
    exported = client.get("/metrics").get_data(as_text=True)
    used = {name for rule in _rules() for name in re.findall(r"\blingxi_[a-z_]+", rule["expr"])}
    assert used
    for name in used:
        assert re.search(rf"^{name}[{{ ]", exported, re.MULTILINE), f"{name} is not exported by /metrics"


def test_promtool_checks_and_unit_tests():
    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("promtool is not installed (Debian: prometheus)")
    for args in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"],
                 ["test", "rules", "alerts.test.yml"]):
        result = subprocess.run([promtool, *args], cwd=DEPLOY, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
