"""One version for the whole night: a worker answers from one published version per request, picks a
new version up without a restart, keeps the previous one while a new one fails to load, and retries
a failed engine load with backoff, saying why meanwhile (``serving.release``)."""
from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from serving_fakes import FakeEngine, make_customer_360, make_version
from serving_live import free_port, kill9, start, wait_ready

from ml.core import versions
from serving import create_app
from serving.release import VERSION_HEADER

V1 = "/api/v1"
FIRST, SECOND, THIRD = "20250701T021500000001Z", "20250702T021500000002Z", "20250703T021500000003Z"


@pytest.fixture
def published(tmp_path: Path, tokens) -> Path:
    """A data dir whose first version is published (the working marts hold something else)."""
    make_version(tmp_path, FIRST, n=400)
    return tmp_path


def config(data_dir: Path, **extra) -> dict:
    return {"LINGXI_DATA_DIR": data_dir, "LINGXI_TOKENS_FILE": data_dir / "tokens.json",
            "LINGXI_ENGINE": "serving_fakes:FakeEngine", "LINGXI_SNAPSHOT_BACKGROUND_RELOAD": False,
            "LINGXI_SNAPSHOT_CHECK_SECONDS": 0, "LINGXI_LOG_LEVEL": "WARNING", "LINGXI_PUSH_INTERVAL_SECONDS": 0,
            **extra}


def crm_body(customer_id: str, manager_of: dict[str, str]) -> dict:
    """Stage one as the CRM asks for it: for the manager whose book holds the customer."""
    return {"customer_id": customer_id, "manager_id": manager_of[customer_id]}


def lookup(client, headers, customer_id, manager_of):
    response = client.get(f"{V1}/customers/{customer_id}", headers=headers,
                          query_string={"manager_id": manager_of[customer_id], "include": "features"})
    assert response.status_code == 200, response.json
    return response


def test_the_engine_follows_the_published_version_without_a_restart(published, auth, customer_ids, manager_of):
    """After the nightly switch, the next request answers from the new snapshot *and* the new engine
    (before: the model, table and Feast store stayed those of the worker's boot)."""
    app = create_app(config(published))
    client = app.test_client()
    cid = customer_ids[3]
    first = lookup(client, auth("crm"), cid, manager_of)
    assert first.headers[VERSION_HEADER] == FIRST
    assert first.json["snapshot"] == FIRST and first.json["features"]["model"] == f"fake-{FIRST}"
    rec = client.post(f"{V1}/recommendations", json={"customer_id": cid, "manager_id": manager_of[cid]},
                      headers=auth("crm"))
    assert rec.json["model_version"] == f"fake-{FIRST}-stage1" and rec.headers[VERSION_HEADER] == FIRST

    make_version(published, SECOND, n=420)
    second = lookup(client, auth("crm"), cid, manager_of)
    assert second.headers[VERSION_HEADER] == SECOND
    assert second.json["snapshot"] == SECOND and second.json["features"]["model"] == f"fake-{SECOND}"
    rec = client.post(f"{V1}/recommendations", json={"customer_id": cid, "manager_id": manager_of[cid]},
                      headers=auth("crm"))
    assert rec.json["model_version"] == f"fake-{SECOND}-stage1" and rec.headers[VERSION_HEADER] == SECOND
    ready = client.get("/readyz").json
    assert ready["version"] == SECOND and ready["checks"]["snapshot"]["rows"] == 420
    assert ready["checks"]["engine"]["versions"]["model"] == f"fake-{SECOND}"


def test_a_request_keeps_the_version_it_started_with(published, customer_ids):
    app = create_app(config(published))
    services = app.extensions["lingxi"]
    with app.test_request_context("/readyz"):
        app.preprocess_request()  # pins the release, as for every request
        make_version(published, SECOND, n=420)
        assert services.releases.current().version == SECOND  # the worker has moved on ...
        assert services.snapshot().version == FIRST            # ... this request has not
        assert services.engine.versions()["model"] == f"fake-{FIRST}"
        assert services.snapshot().rows == 400


def test_every_response_names_its_version(published, auth):
    client = create_app(config(published)).test_client()
    for method, path in (("GET", "/healthz"), ("GET", "/readyz"), ("GET", f"{V1}/products"),
                         ("GET", f"{V1}/nowhere"), ("POST", f"{V1}/recommendations")):
        response = client.open(path, method=method, headers=auth("crm"), json={} if method == "POST" else None)
        assert response.headers[VERSION_HEADER] == FIRST, path


def test_a_version_that_fails_to_load_leaves_the_previous_one_answering(published, auth, customer_ids, monkeypatch,
                                                                         manager_of):
    import sys
    import types

    module = types.ModuleType("lingxi_test_versions_engine")

    def factory(data_dir):
        if Path(data_dir).name == SECOND:
            raise OSError("model.txt is truncated")
        return FakeEngine(data_dir)

    module.make = factory
    monkeypatch.setitem(sys.modules, module.__name__, module)
    app = create_app(config(published, LINGXI_ENGINE=f"{module.__name__}:make", LINGXI_LOAD_RETRY_SECONDS=60))
    client = app.test_client()
    make_version(published, SECOND)
    response = lookup(client, auth("crm"), customer_ids[0], manager_of)
    assert response.headers[VERSION_HEADER] == FIRST and response.json["features"]["model"] == f"fake-{FIRST}"
    ready = client.get("/readyz")
    assert ready.status_code == 200  # still serving a complete version
    status = ready.json["checks"]["version"]
    assert status["version"] == FIRST and status["pending"] == SECOND and status["attempts"] == 1
    assert "model.txt is truncated" in status["error"] and status["retry_in_s"] > 30
    make_version(published, THIRD)  # the next night's version loads
    assert lookup(client, auth("crm"), customer_ids[0], manager_of).headers[VERSION_HEADER] == THIRD
    assert client.get("/readyz").json["checks"]["version"]["pending"] is None


def test_engine_load_failure_is_retried_with_backoff_and_503_says_why(published, auth, customer_ids, monkeypatch,
                                                                   manager_of):
    """Before: a failed engine load answered 503 for the worker's life. Now: retried (1x, 2x, 4x the
    base delay ...) in the background, 503 with the reason and Retry-After meanwhile."""
    import sys
    import types

    module = types.ModuleType("lingxi_test_flaky_engine")
    calls = []

    def factory(data_dir):
        calls.append(time.monotonic())
        if len(calls) <= 3:
            raise FileNotFoundError("no current model under models/ (run `make train`)")
        return FakeEngine(data_dir)

    module.make = factory
    monkeypatch.setitem(sys.modules, module.__name__, module)
    app = create_app(config(published, LINGXI_ENGINE=f"{module.__name__}:make", LINGXI_SNAPSHOT_BACKGROUND_RELOAD=True,
                            LINGXI_LOAD_RETRY_SECONDS=0.2, LINGXI_BOOT_WAIT_SECONDS=10))
    client = app.test_client()
    response = client.post(f"{V1}/recommendations", json=crm_body(customer_ids[0], manager_of),
                           headers=auth("crm"))
    assert response.status_code == 503 and response.json["error"]["code"] == "engine_unavailable"
    assert "no current model" in response.json["error"]["message"] and int(response.headers["Retry-After"]) >= 1
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "no current model" in ready.json["checks"]["engine"]["error"]
    # the snapshot answers meanwhile
    assert lookup(client, auth("crm"), customer_ids[0], manager_of).json["features"] is None
    deadline = time.monotonic() + 20
    while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get("/readyz").status_code == 200 and len(calls) == 4
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert gaps[0] >= 0.19 and gaps[1] >= 0.39 and gaps[2] >= 0.79  # exponential backoff
    response = client.post(f"{V1}/recommendations", json=crm_body(customer_ids[0], manager_of),
                           headers=auth("crm"))
    assert response.status_code == 201


def test_a_broken_pointer_keeps_the_current_version(published, auth, customer_ids, manager_of):
    client = create_app(config(published)).test_client()
    (published / "versions" / "CURRENT").write_text("20990101T000000000000Z\n")  # names nothing finished
    response = lookup(client, auth("crm"), customer_ids[0], manager_of)
    assert response.headers[VERSION_HEADER] == FIRST
    assert "has no manifest.json" in client.get("/readyz").json["checks"]["version"]["error"]
    versions.switch(published, FIRST)  # fixed
    assert client.get("/readyz").json["checks"]["version"]["error"] is None


def test_versions_switch_and_prune(tmp_path: Path):
    for version in (FIRST, SECOND, THIRD):
        make_version(tmp_path, version, n=20)
    unfinished = versions.version_dir(tmp_path, "20250704T000000000000Z")
    unfinished.mkdir()
    assert versions.current_version(tmp_path) == THIRD and versions.published(tmp_path) == [FIRST, SECOND, THIRD]
    assert versions.prune(tmp_path, keep=2) == [FIRST, unfinished.name]
    assert versions.published(tmp_path) == [SECOND, THIRD]
    with pytest.raises(versions.VersionError):
        versions.switch(tmp_path, unfinished.name)  # never point at an unfinished directory
    with pytest.raises(versions.VersionError):
        versions.version_dir(tmp_path, "../etc")


def test_unpublished_data_dir_is_served_as_it_is(tmp_path: Path, tokens, auth):
    """Before the first publication, the marts and the engine over the data dir (as before versions)."""
    make_customer_360(tmp_path / "marts", n=50)
    client = create_app(config(tmp_path)).test_client()
    ready = client.get("/readyz").json
    assert ready["status"] == "ready" and ready["checks"]["version"]["published"] is False
    assert ready["version"] == ready["checks"]["snapshot"]["version"]


# -- live: gunicorn, two workers, requests flowing through the switch ----------------------------
def test_switch_under_load_never_mixes_versions(tmp_path: Path, tokens, manager_of):
    """Two gunicorn workers, four clients looking customers up and asking for stage one while two
    versions are published: no 5xx, and every answer comes from one version (snapshot, engine and
    header agree), both workers end on the last version, without a restart."""
    make_version(tmp_path, FIRST, n=400)
    ids = sorted(__import__("pandas").read_parquet(versions.version_dir(tmp_path, FIRST) / "marts" / "customer_360.parquet",
                                                   columns=["customer_id"])["customer_id"])[:60]
    headers = {"Authorization": f"Bearer {tokens['crm']}"}
    port, log = free_port(), tmp_path / "gunicorn.log"
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp_path, port, log, env={"LINGXI_SNAPSHOT_CHECK_SECONDS": "0.2"})
    seen: list[tuple] = []
    stop = threading.Event()

    def client(worker: int) -> None:
        session = requests.Session()
        i = worker
        while not stop.is_set():
            cid = ids[i % len(ids)]
            i += 4
            try:
                r = session.get(f"{base}{V1}/customers/{cid}", headers=headers, timeout=10,
                                params={"manager_id": manager_of[cid], "include": "features"})
                body = r.json()
                seen.append(("lookup", r.status_code, r.headers.get(VERSION_HEADER), body.get("snapshot"),
                             (body.get("features") or {}).get("model")))
                r = session.post(f"{base}{V1}/recommendations", json=crm_body(cid, manager_of), headers=headers,
                                 timeout=10)
                seen.append(("stage_one", r.status_code, r.headers.get(VERSION_HEADER), None, r.json().get("model_version")))
            except requests.RequestException as exc:
                seen.append(("error", None, None, None, type(exc).__name__))

    try:
        wait_ready(base, proc, log)
        threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        make_version(tmp_path, SECOND, n=420)
        time.sleep(1.5)
        make_version(tmp_path, THIRD, n=440)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until both workers answered from the last version a while
            recent = [s[2] for s in seen[-40:]]
            if len(recent) == 40 and set(recent) == {THIRD}:
                break
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(15)
    finally:
        stop.set()
        kill9(proc)
    statuses = Counter(s[1] for s in seen)
    assert statuses[None] == 0 and not any(code >= 500 for code in statuses if code), statuses
    for kind, status, header, snapshot, model in seen:
        if kind == "lookup":
            assert snapshot == header and model == f"fake-{header}", (kind, header, snapshot, model)
        else:
            assert model == f"fake-{header}-stage1", (kind, header, model)
    assert {s[2] for s in seen} >= {FIRST, THIRD}
    assert [s[2] for s in seen[-40:]] == [THIRD] * 40
    assert "Booting worker" in log.read_text() and log.read_text().count("Booting worker") == 2  # no restart
