"""Start and stop a real gunicorn over a test data directory (loopback only, bounded waits).

gunicorn imports ``serving:create_app()`` like ``make serve``; the fake engine comes in through the
``LINGXI_ENGINE`` testing hook (``serving_fakes:FakeEngine`` with this folder on ``PYTHONPATH``)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
GUNICORN = Path(sys.executable).with_name("gunicorn")
GUNICORN_CONFIG = ROOT / "serving" / "gunicorn.conf.py"  # as make serve: metrics summed over the workers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(data_dir: Path, port: int, log: Path, workers: int = 2, db_url: str | None = None,
          extra_env: dict[str, str] | None = None, env: dict[str, str] | None = None,
          timeout: int = 30) -> subprocess.Popen:
    """gunicorn as ``make serve`` runs it (its config: metrics summed over the workers, kept in a
    folder beside ``log``), with the fake engine over ``data_dir`` (its SQLite feedback store, or the
    store at ``db_url``); rate limits off unless ``extra_env`` / ``env`` (the same: variables added or
    overridden) set them; ``timeout`` is gunicorn's worker timeout."""
    base = {name: value for name, value in os.environ.items()
            if name not in ("LINGXI_FEEDBACK_DB_URL", "LINGXI_TOKENS_FILE", "LINGXI_TOKENS")}
    base.update({"LINGXI_DATA_DIR": str(data_dir),
                 "LINGXI_ENGINE": "serving_fakes:FakeEngine",
                 "LINGXI_LOG_LEVEL": "WARNING",
                 "LINGXI_RATE_LIMITS": "off",
                 "PROMETHEUS_MULTIPROC_DIR": str(log.with_suffix(".metrics")),
                 "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")])})
    if db_url:
        base["LINGXI_FEEDBACK_DB_URL"] = db_url
    base.update(extra_env or {})
    base.update(env or {})
    handle = open(log, "ab")
    return subprocess.Popen([str(GUNICORN), "--config", str(GUNICORN_CONFIG), "--workers", str(workers),
                             "--bind", f"127.0.0.1:{port}", "--timeout", str(timeout), "serving:create_app()"],
                            cwd=ROOT, env=base, stdout=handle, stderr=handle,
                            start_new_session=True)  # own process group: kill -9 takes all


def wait_ready(base: str, proc: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited: {log.read_text()[-3000:]}")
        try:
            if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"gunicorn not ready in {seconds}s: {log.read_text()[-3000:]}")


def kill9(proc: subprocess.Popen) -> None:
    """SIGKILL the process group this test started (master and workers), by its id."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)
