"""A server that starts and stays up: a corrupt tokens file or a database outage at boot does not stop
gunicorn (before: "Worker failed to boot"); the worker answers 503 with the reason, /readyz says
why, and it recovers when the cause is fixed. A running worker re-reads a changed tokens file and
never keeps a token set it can no longer read. Database calls have explicit timeouts."""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from pathlib import Path

import pytest
import requests
from serving_live import free_port, kill9, start, wait_ready

from serving import create_app
from serving.tokens import add_token, revoke_token

V1 = "/api/v1"


def app_config(data_dir: Path, **extra) -> dict:
    return {"LINGXI_DATA_DIR": data_dir, "LINGXI_TOKENS_FILE": data_dir / "tokens.json",
            "LINGXI_ENGINE": "serving_fakes:FakeEngine", "LINGXI_SNAPSHOT_BACKGROUND_RELOAD": False,
            "LINGXI_SNAPSHOT_CHECK_SECONDS": 0, "LINGXI_LOG_LEVEL": "WARNING", "LINGXI_PUSH_INTERVAL_SECONDS": 0,
            **extra}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def logged():
    """Messages the ``lingxi.serving`` logger emits during the test (it does not propagate)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect(level=logging.INFO)
    logger = logging.getLogger("lingxi.serving")
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


# -- tokens ------------------------------------------------------------------------------------
def test_corrupt_tokens_file_at_boot_gives_503_with_the_reason_until_fixed(data_dir, logged):
    path = data_dir / "tokens.json"
    path.write_text('{"tokens": [{"id": "abc"')  # a half-written file
    app = create_app(app_config(data_dir))  # before: raised, and gunicorn's worker failed to boot
    assert any("tokens" in m and "not valid JSON" in m for m in logged)
    client = app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "not valid JSON" in ready.json["checks"]["tokens"]["error"]
    response = client.get(f"{V1}/products", headers=bearer("lx_0123456789ab_" + "x" * 43))
    assert response.status_code == 503 and response.json["error"]["code"] == "tokens_unavailable"
    assert "not valid JSON" in response.json["error"]["message"] and response.headers["Retry-After"]
    path.unlink()
    token = add_token(path, "crm-fixed", "crm")  # fixed: a valid file
    registry = app.extensions["lingxi_tokens"]
    registry._checked = 0.0  # skip the 2 s re-read interval
    assert client.get(f"{V1}/products", headers=bearer(token)).status_code == 200
    assert client.get("/readyz").json["checks"]["tokens"] == {"ok": True, "count": 1, "error": None}


def test_running_worker_follows_the_tokens_file(data_dir, tokens, logged):
    """Revocations take effect; a file that turns unreadable is logged, shown, and not silently
    replaced by the previous token set (it may be the file that revoked one)."""
    app = create_app(app_config(data_dir))
    client = app.test_client()
    registry = app.extensions["lingxi_tokens"]
    assert client.get(f"{V1}/products", headers=bearer(tokens["manager"])).status_code == 200
    revoke_token(data_dir / "tokens.json", "manager-m001")
    registry._checked = 0.0
    assert client.get(f"{V1}/products", headers=bearer(tokens["manager"])).status_code == 401
    assert client.get(f"{V1}/products", headers=bearer(tokens["crm"])).status_code == 200

    good = (data_dir / "tokens.json").read_text()
    (data_dir / "tokens.json").write_text(good.replace('"tokens"', '"tokens" oops', 1))
    registry._checked = 0.0
    response = client.get(f"{V1}/products", headers=bearer(tokens["crm"]))
    assert response.status_code == 503 and response.json["error"]["code"] == "tokens_unavailable"  # before: 200
    assert any(m.startswith("API tokens unusable") for m in logged)
    assert client.get("/readyz").json["checks"]["tokens"]["ok"] is False
    (data_dir / "tokens.json").write_text(good)
    registry._checked = 0.0
    assert client.get(f"{V1}/products", headers=bearer(tokens["crm"])).status_code == 200


def test_invalid_entries_and_environment_tokens_do_not_stop_the_boot(data_dir):
    (data_dir / "tokens.json").write_text(json.dumps({"tokens": [{"id": "zz", "name": "x", "role": "crm"}]}))
    app = create_app(app_config(data_dir, LINGXI_TOKENS="[not json"))
    error = app.test_client().get("/readyz").json["checks"]["tokens"]["error"]
    assert error.startswith("LINGXI_TOKENS: not valid JSON") and "token id 'zz' is not 12 hex" in error


def test_gunicorn_boots_with_a_corrupt_tokens_file(tmp_path: Path):
    from serving_fakes import make_customer_360

    make_customer_360(tmp_path / "marts", n=50)
    (tmp_path / "tokens.json").write_text("{")
    port, log = free_port(), tmp_path / "gunicorn.log"
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp_path, port, log, env={"LINGXI_LOG_LEVEL": "INFO"})
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and ready is None:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                ready = requests.get(f"{base}/readyz", timeout=2)
            except requests.RequestException:
                time.sleep(0.2)
        assert ready.status_code == 503 and ready.json()["checks"]["tokens"]["ok"] is False
        assert "Worker failed to boot" not in log.read_text() and "API tokens unusable" in log.read_text()
        (tmp_path / "tokens.json").unlink()
        token = add_token(tmp_path / "tokens.json", "crm-live", "crm")
        deadline = time.monotonic() + 20
        while requests.get(f"{base}{V1}/products", headers=bearer(token), timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the workers did not pick the fixed tokens file up"
            time.sleep(0.3)
        wait_ready(base, proc, log, seconds=20)
    finally:
        kill9(proc)


# -- the feedback store ------------------------------------------------------------------------
class Forwarder:
    """A loopback TCP forwarder to the database: closed = an outage the test can end."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target = target_port
        self._server: socket.socket | None = None

    def open(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def _accept(self) -> None:
        server = self._server
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def test_gunicorn_boots_during_a_postgresql_outage_and_recovers(tmp_path: Path, postgres_url: str):
    """The database is unreachable when gunicorn starts: the workers boot (before: "Worker failed to
    boot"), /readyz and the store's endpoints say 503 with the reason, and once the database is
    reachable the schema is created and requests succeed, without a restart."""
    from serving_fakes import make_customer_360

    make_customer_360(tmp_path / "marts", n=50)
    token = add_token(tmp_path / "tokens.json", "crm-pg", "crm")
    forwarder = Forwarder(int(postgres_url.rsplit(":", 1)[1].split("/")[0]))
    url = postgres_url.replace(f":{forwarder.target}/", f":{forwarder.port}/")
    port, log = free_port(), tmp_path / "gunicorn.log"
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp_path, port, log, env={"LINGXI_FEEDBACK_DB_URL": url, "LINGXI_TOKENS_FILE": str(tmp_path / "tokens.json")})
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and ready is None:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                ready = requests.get(f"{base}/readyz", timeout=2)
            except requests.RequestException:
                time.sleep(0.2)
        assert ready.status_code == 503 and ready.json()["checks"]["store"]["ok"] is False
        assert "unreachable" in ready.json()["checks"]["store"]["error"]
        book = __import__("pandas").read_parquet(tmp_path / "marts" / "manager_books.parquet").iloc[0]
        body = {"customer_id": book["customer_id"], "manager_id": book["manager_id"]}
        response = requests.post(f"{base}{V1}/recommendations", json=body, headers=bearer(token), timeout=10)
        assert response.status_code == 503 and response.json()["error"]["code"] == "store_unavailable"
        assert "Worker failed to boot" not in log.read_text()
        forwarder.open()  # the database is back
        deadline = time.monotonic() + 20
        while True:
            response = requests.post(f"{base}{V1}/recommendations", json=body, headers=bearer(token),
                                     timeout=10)
            if response.status_code == 201:
                break
            assert response.status_code == 503 and time.monotonic() < deadline, response.text
            time.sleep(0.3)
        wait_ready(base, proc, log, seconds=20)
    finally:
        kill9(proc)
        forwarder.close()


def test_postgresql_statements_time_out(postgres_url: str):
    from serving.store import StoreUnavailable, open_store

    store = open_store(postgres_url, timeout=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store._query("SELECT pg_sleep(5)")
        assert time.monotonic() - started < 3
        store.ping()  # a new connection after the timeout
    finally:
        store.close()


def test_unreachable_store_fails_fast(tmp_path: Path):
    from serving.store import StoreUnavailable, open_store

    store = open_store(f"postgresql://lingxi@127.0.0.1:{free_port()}/postgres", create=False, connect_timeout=2)
    for _ in range(3):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.ping()
        assert time.monotonic() - started < 2.5


# -- a slow boot ---------------------------------------------------------------------------------
def test_a_slow_boot_answers_at_once_and_says_it_is_loading(tmp_path: Path):
    """Before: the engine loaded inside the worker's boot; for as long as that took (seconds at full
    scale, over a minute on a loaded machine) the workers accepted no connection: /healthz hung and
    nothing said why. Now the boot waits at most LINGXI_BOOT_WAIT_SECONDS; then /healthz answers,
    /readyz says "loading" (503) until the version is loaded, and no worker is restarted."""
    from serving_fakes import make_customer_360

    make_customer_360(tmp_path / "marts", n=50)
    port, log = free_port(), tmp_path / "gunicorn.log"
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp_path, port, log, env={
        "LINGXI_ENGINE": "serving_fakes:slow_engine", "LINGXI_FAKE_ENGINE_SECONDS": "20",
        "LINGXI_BOOT_WAIT_SECONDS": "1", "LINGXI_LOG_LEVEL": "INFO"})
    started = time.monotonic()
    try:
        health = None
        while health is None:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                health = requests.get(f"{base}/healthz", timeout=1)
            except requests.RequestException:
                time.sleep(0.1)
        ready = requests.get(f"{base}/readyz", timeout=2)  # answered while the engine is still loading
        assert health.status_code == 200 and ready.status_code == 503
        assert "loading" in ready.json()["checks"]["engine"]["error"] and time.monotonic() - started < 20
        wait_ready(base, proc, log, seconds=60)
        assert "WORKER TIMEOUT" not in log.read_text() and log.read_text().count("Booting worker") == 2
    finally:
        kill9(proc)
