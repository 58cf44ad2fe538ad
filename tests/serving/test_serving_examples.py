"""``python -m benchmarks.examples`` prints curl calls that work against a running gunicorn."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from serving_fakes import make_customer_360, read_books
from serving_live import GUNICORN, free_port, kill9, start, wait_ready

from benchmarks.examples import demo_tokens, example_customer, main


def test_demo_tokens_are_reused(tmp_path):
    first = demo_tokens(tmp_path, tmp_path / "tokens.json", "M003")
    again = demo_tokens(tmp_path, tmp_path / "tokens.json", "M003")
    assert first == again and set(first) == {"admin", "crm", "manager"}
    assert oct((tmp_path / "demo_tokens.json").stat().st_mode & 0o777) == "0o600"
    assert first["admin"] not in (tmp_path / "tokens.json").read_text()
    (tmp_path / "demo_tokens.json").write_text(json.dumps({"admin": "lx_stale", "manager": first["manager"]}))
    fresh = demo_tokens(tmp_path, tmp_path / "tokens.json", "M003")
    assert fresh["admin"] != first["admin"] and fresh["manager"] == first["manager"]
    other = demo_tokens(tmp_path, tmp_path / "tokens.json", "M004")  # new data, another example manager
    assert other["manager"] != first["manager"] and other["admin"] == fresh["admin"]


def test_demo_manager_is_the_example_customers_manager(tmp_path):
    make_customer_360(tmp_path / "marts", n=60)
    customer, manager = example_customer(tmp_path)
    assert customer in read_books(tmp_path / "marts")[manager]


@pytest.mark.skipif(not GUNICORN.exists() or not shutil.which("curl"), reason="needs gunicorn and curl")
def test_printed_script_runs_against_gunicorn(tmp_path, monkeypatch, capsys):
    make_customer_360(tmp_path / "marts", n=60)
    monkeypatch.setenv("LINGXI_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LINGXI_TOKENS_FILE", raising=False)
    port, log = free_port(), tmp_path / "gunicorn.log"
    assert main(["--host", "127.0.0.1", "--port", str(port)]) == 0
    script = capsys.readouterr().out
    proc = start(tmp_path, port, log)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, log)
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
        _oversized_bodies_are_413_through_gunicorn(port, script)
    finally:
        kill9(proc)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert '"stage": 2' in done.stdout.replace('"stage":2', '"stage": 2') and '"conflicts"' in done.stdout


def _oversized_bodies_are_413_through_gunicorn(port: int, script: str) -> None:
    """Through a real server too: a large body, declared or chunked, is a JSON 413 (never a 5xx)."""
    import requests

    token = next(line.split("=", 1)[1] for line in script.splitlines() if line.startswith("ADMIN="))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    url = f"http://127.0.0.1:{port}/api/v1/segments/query"
    big = b'{"cursor": "' + b"a" * 200_000 + b'"}'
    declared = requests.post(url, data=big, headers=headers, timeout=10)
    chunked = requests.post(url, data=iter([big[i:i + 8192] for i in range(0, len(big), 8192)]), headers=headers,
                            timeout=10)
    for response in (declared, chunked):
        assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
