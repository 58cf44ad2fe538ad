"""Slow clients behind the production front door (``make serve-prod``: nginx buffering in front of
gunicorn, ``serving.proxy``): many connections that never finish their headers, or dribble a
body, do not block the API; /healthz and stage one keep answering at once. Without the proxy two
such clients hold both sync workers (measured below for the record, not asserted)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from serving_fakes import make_customer_360
from serving_live import HERE, ROOT, free_port

from serving.proxy import nginx_binary
from serving.tokens import add_token

SLOW_CLIENTS = 64


@pytest.fixture(scope="module")
def nginx() -> str:
    found = nginx_binary()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing: `make test` installs it (`make nginx`, as root)")
        pytest.skip("nginx is not installed (`make nginx` as root, or apt-get install nginx)")
    return found


@pytest.fixture
def front_door(tmp_path: Path, nginx: str):
    """``python -m serving.proxy`` over a fake bank: (proxy url, gunicorn url, crm token)."""
    make_customer_360(tmp_path / "marts", n=200)
    token = add_token(tmp_path / "tokens.json", "crm-proxy", "crm")
    listen, upstream = free_port(), free_port()
    env = {**os.environ, "LINGXI_DATA_DIR": str(tmp_path), "LINGXI_ENGINE": "serving_fakes:FakeEngine",
           "LINGXI_LOG_LEVEL": "WARNING", "LINGXI_TOKENS_FILE": str(tmp_path / "tokens.json"),
           "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("LINGXI_FEEDBACK_DB_URL", None)
    log = tmp_path / "proxy.log"
    with open(log, "ab") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "serving.proxy", "--listen", f"127.0.0.1:{listen}",
                                 "--upstream", f"127.0.0.1:{upstream}", "--workers", "2",
                                 "--run-dir", str(tmp_path / "run")],
                                cwd=ROOT, env=env, stdout=handle, stderr=handle, start_new_session=True)
    base = f"http://127.0.0.1:{listen}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        yield base, f"http://127.0.0.1:{upstream}", token, tmp_path
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the supervisor stops nginx and gunicorn gracefully
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def open_slow_clients(url: str, n: int, bodies: bool = True) -> list[socket.socket]:
    """Connections that send part of a request and then nothing (unfinished headers; with
    ``bodies`` every other one sends complete headers announcing a body that never comes)."""
    host, port = url.removeprefix("http://").split(":")
    out = []
    for i in range(n):
        sock = socket.create_connection((host, int(port)), timeout=5)
        if bodies and i % 2:
            sock.sendall(b"POST /api/v1/recommendations HTTP/1.1\r\nHost: lingxi\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n{\"customer_id\"")
        else:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: lingxi\r\nX-Slow: 1")
        out.append(sock)
    return out


def timed(method: str, url: str, **kwargs) -> tuple[int | None, float]:
    started = time.perf_counter()
    try:
        status = requests.request(method, url, timeout=3, **kwargs).status_code
    except requests.RequestException:
        status = None
    return status, time.perf_counter() - started


def test_slow_clients_do_not_block_the_api_behind_the_proxy(front_door):
    base, upstream, token, data_dir = front_door
    headers = {"Authorization": f"Bearer {token}"}
    import pandas as pd

    books = pd.read_parquet(data_dir / "marts" / "manager_books.parquet", columns=["customer_id", "manager_id"])
    bodies = books.head(20).to_dict("records")  # stage one as the CRM asks: for the customer's manager
    slow = open_slow_clients(base, SLOW_CLIENTS)
    try:
        time.sleep(0.5)
        health = [timed("GET", f"{base}/healthz") for _ in range(20)]
        stage_one = [timed("POST", f"{base}/api/v1/recommendations", json=body, headers=headers)
                     for body in bodies]
    finally:
        for sock in slow:
            sock.close()
    assert [s for s, _ in health] == [200] * 20
    assert [s for s, _ in stage_one] == [201] * 20
    worst = max(t for _, t in health + stage_one)
    assert worst < 2.0, worst
    figures = {"slow_clients": SLOW_CLIENTS, "healthz_max_ms": round(1000 * max(t for _, t in health), 1),
               "stage_one_max_ms": round(1000 * max(t for _, t in stage_one), 1)}

    # for the record: the same two workers without the proxy, two slow clients
    slow = open_slow_clients(upstream, 2, bodies=False)
    try:
        time.sleep(0.5)
        direct = [timed("GET", f"{upstream}/healthz") for _ in range(3)]
    finally:
        for sock in slow:
            sock.close()
    figures["direct_two_slow_clients_healthz"] = [s if s else "timeout (3 s)" for s, _ in direct]
    print(json.dumps(figures))


def test_the_proxy_answers_its_own_errors_as_json(front_door):
    base, _upstream, token, _data_dir = front_door
    too_big = requests.post(f"{base}/api/v1/recommendations", data=b"x" * (64 * 1024 + 1),
                            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, timeout=10)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "payload_too_large"
    response = requests.get(f"{base}/api/v1/products", headers={"Authorization": f"Bearer {token}",
                                                                "X-Request-Id": "proxy-test-1"}, timeout=10)
    assert response.status_code == 200 and response.headers["X-Request-Id"] == "proxy-test-1"
    assert response.headers["X-Lingxi-Version"]


def test_the_proxy_refuses_unreadable_requests_with_json_4xx(front_door):
    """Errors nginx finds while reading the request line (garbage, a TLS hello, a NUL, an HTTP version it
    does not speak) and a chunked body past the limit: 4xx JSON, never 500 (named locations cannot be
    reached there; spooling the body needs a folder the unprivileged workers can write)."""
    base, _upstream, token, _data_dir = front_door
    host, port = base.rsplit("/", 1)[1].split(":")
    for raw in (b"GARBAGE\r\n\r\n", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 32,
                b"GET /api/v1/%00x HTTP/1.1\r\nHost: x\r\n\r\n", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
                b"GET /" + b"A" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"):
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(raw)
            answer = sock.recv(4096)
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500 and b'"error"' in answer, (raw[:20], answer[:200])
    big = b'{"cursor": "' + b"a" * 200_000 + b'"}'
    chunked = requests.post(f"{base}/api/v1/segments/query", data=iter([big[i:i + 8192] for i in range(0, len(big), 8192)]),
                            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, timeout=10)
    assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "payload_too_large"
