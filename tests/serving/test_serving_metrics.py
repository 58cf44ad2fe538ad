"""``/metrics``: Prometheus text with route templates (never raw ids), status counts, latency
histograms, feedback answers by type, stage-one source, versions and snapshot age; an optional
token; and under real gunicorn with 2 workers, counts that sum both workers' requests and survive a
worker's death.

In-process counts are compared before and after: once Feast is imported (by other tests in the same
run) this process keeps its metrics in Feast's multiprocess directory, shared by every app it makes.
"""
from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from serving_fakes import FakeEngine, make_customer_360
from serving_live import GUNICORN, free_port, kill9, start, wait_ready

from serving import create_app
from serving.tokens import add_token

V1 = "/api/v1"
MANAGER_ID = "M001"  # the manager token of tests/serving/conftest.py
STAGE_ONE = f"{V1}/recommendations"
FEEDBACK = f"{V1}/recommendations/<recommendation_id>/feedback"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(parsed: dict, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in parsed.items() if n == name and want <= ls)


def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return samples(response.get_data(as_text=True))


def test_metrics_in_process(client, auth, customer_ids, manager_of, books):
    before = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(parsed, name, **labels) - value(before, name, **labels)

    for cid in customer_ids[:6]:  # the CRM acts for each customer's manager
        assert client.post(STAGE_ONE, json={"customer_id": cid, "manager_id": manager_of[cid]},
                           headers=auth("crm")).status_code == 201
    own = books[MANAGER_ID][0]  # the manager token answers for a customer of its own book
    rec = client.post(STAGE_ONE, json={"customer_id": own}, headers=auth("manager")).json
    products = [p["product_id"] for p in rec["products"]]
    assert len(products) >= 2
    items = [{"product_id": products[0], "response": "interested"},
             {"product_id": products[1], "response": "not_interested"}]
    url = f"{STAGE_ONE}/{rec['recommendation_id']}/feedback"
    headers = {**auth("manager"), "Idempotency-Key": "metrics-1"}
    assert client.post(url, json={"items": items}, headers=headers).status_code == 201
    assert client.post(url, json={"items": items}, headers=headers).status_code == 200  # a replay: not counted
    assert client.get(f"{V1}/customers/{'0' * 32}", headers=auth("admin")).status_code == 404
    assert client.get("/no/such/path").status_code == 404

    response = client.get("/metrics")
    assert response.status_code == 200 and response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    parsed = samples(text)
    assert delta("lingxi_http_requests_total", route=STAGE_ONE, method="POST", status="201") == 7
    assert delta("lingxi_http_requests_total", route=FEEDBACK, status="201") == 1
    assert delta("lingxi_http_requests_total", route=FEEDBACK, status="200") == 1
    assert delta("lingxi_http_requests_total", route=f"{V1}/customers/<customer_id>", status="404") == 1
    assert delta("lingxi_http_requests_total", route="<unmatched>", status="404") == 1
    assert delta("lingxi_http_request_duration_seconds_count", route=STAGE_ONE) == 7
    assert delta("lingxi_http_request_duration_seconds_bucket", route=STAGE_ONE, le="+Inf") == 7
    assert delta("lingxi_feedback_answers_total", stage="1", response="interested") == 1
    assert delta("lingxi_feedback_answers_total", stage="1", response="not_interested") == 1
    assert delta("lingxi_feedback_answers_total", response="already_owns") == 0
    assert delta("lingxi_stage_one_total", source="unknown") == 7  # the fake engine does not say
    assert value(parsed, "lingxi_model_info", model="fake-1") == 1
    snapshot = client.get("/readyz").json["checks"]["snapshot"]["version"]
    assert value(parsed, "lingxi_snapshot_info", version=snapshot) == 1
    assert 0 <= value(parsed, "lingxi_snapshot_age_seconds") < 3600  # the fixture wrote it just now
    assert own not in text and rec["recommendation_id"] not in text  # templates, never ids
    assert "/metrics" not in {dict(ls).get("route") for (_, ls) in parsed}
    assert all(name.startswith("lingxi_") for name, _ in parsed)  # only this app's families


class LiveEngine(FakeEngine):
    """An engine without a nightly table: every stage-one list is scored live."""

    def versions(self):
        return {**super().versions(), "stage_one_table": "none (live scoring)"}


class TableEngine(FakeEngine):
    """An engine that says where each list's scores came from."""

    def versions(self):
        return {**super().versions(), "stage_one_table": "table-1"}

    def stage_one(self, customer_id, k, **kwargs):
        ranking = super().stage_one(customer_id, k, **kwargs)
        object.__setattr__(ranking, "source", "nightly")  # Ranking is frozen; a future field
        return ranking


@pytest.mark.parametrize("engine_class, source", [(LiveEngine, "live"), (TableEngine, "nightly")])
def test_stage_one_source(app_config, auth, customer_ids, data_dir, engine_class, source, manager_of):
    app = create_app({**app_config, "LINGXI_ENGINE": engine_class(data_dir)})
    client = app.test_client()
    before = scrape(client)
    for cid in customer_ids[:3]:
        assert client.post(STAGE_ONE, json={"customer_id": cid, "manager_id": manager_of[cid]},
                           headers=auth("crm")).status_code == 201
    parsed = scrape(client)
    assert value(parsed, "lingxi_stage_one_total", source=source) - value(before, "lingxi_stage_one_total",
                                                                          source=source) == 3
    assert value(parsed, "lingxi_stage_one_total") - value(before, "lingxi_stage_one_total") == 3
    app.extensions["lingxi"].store.close()


def test_metrics_token(app_config):
    app = create_app({**app_config, "LINGXI_METRICS_TOKEN": "scrape-secret"})
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}).status_code == 200
    app.extensions["lingxi"].store.close()


def _per_worker(metrics_dir: Path, tmp_path: Path, route: str) -> dict[int, float]:
    """Stage-one 201 counts per worker pid, read from each worker's own counter file."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    out = {}
    for path in metrics_dir.glob("counter_*.db"):
        alone = tmp_path / f"alone-{path.stem}"
        alone.mkdir(parents=True)
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        from prometheus_client.exposition import generate_latest

        parsed = samples(generate_latest(registry).decode())
        out[int(path.stem.split("_")[1])] = value(parsed, "lingxi_http_requests_total", route=route, status="201")
    return out


@pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed next to this Python")
def test_metrics_sum_over_gunicorn_workers(tmp_path: Path):
    make_customer_360(tmp_path / "marts", n=120, events=False)
    token = add_token(tmp_path / "tokens.json", "crm-metrics", "crm")
    headers = {"Authorization": f"Bearer {token}", "Connection": "close"}  # new connection: either worker
    port, log = free_port(), tmp_path / "gunicorn.log"
    metrics_dir = log.with_suffix(".metrics")
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp_path, port, log, workers=2)
    try:
        wait_ready(base, proc, log)
        books = pd.read_parquet(tmp_path / "marts" / "manager_books.parquet", columns=["customer_id", "manager_id"])
        ids, managers = books["customer_id"].tolist(), books["manager_id"].tolist()
        n_threads, per_thread = 6, 25
        statuses: list[int] = []
        lock = threading.Lock()

        def client(worker: int) -> None:
            for i in range(per_thread):
                j = (worker * per_thread + i) % len(ids)
                r = requests.post(f"{base}{STAGE_ONE}", json={"customer_id": ids[j], "manager_id": managers[j]},
                                  headers=headers, timeout=10)
                with lock:
                    statuses.append(r.status_code)

        threads = [threading.Thread(target=client, args=(w,)) for w in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        sent = n_threads * per_thread
        assert statuses.count(201) == sent

        per_worker = _per_worker(metrics_dir, tmp_path / "split", STAGE_ONE)
        busy = {pid: n for pid, n in per_worker.items() if n > 0}
        print(f"METRICS stage-one requests per worker: {per_worker}")
        assert len(busy) == 2, f"both workers should have served stage one: {per_worker}"
        assert sum(busy.values()) == sent

        scrape = requests.get(f"{base}/metrics", timeout=10)
        assert scrape.status_code == 200
        parsed = samples(scrape.text)
        assert value(parsed, "lingxi_http_requests_total", route=STAGE_ONE, status="201") == sent
        assert value(parsed, "lingxi_http_request_duration_seconds_count", route=STAGE_ONE) == sent
        assert value(parsed, "lingxi_stage_one_total") == sent
        assert value(parsed, "lingxi_model_info", model="fake-1") == 1
        assert value(parsed, "lingxi_snapshot_age_seconds") >= 0

        # a worker dies: the master replaces it, its counts stay in the sum, its live gauges go
        victim = next(iter(busy))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(list(metrics_dir.glob("counter_*.db"))) < 3:
            requests.get(f"{base}/healthz", headers={"Connection": "close"}, timeout=5)
            time.sleep(0.1)
        assert not list(metrics_dir.glob(f"gauge_live*_{victim}.db")), "the dead worker was not marked dead"
        parsed = samples(requests.get(f"{base}/metrics", timeout=10).text)
        assert value(parsed, "lingxi_http_requests_total", route=STAGE_ONE, status="201") == sent
    finally:
        kill9(proc)
