"""The API for the load test and the attack (gunicorn, or nginx in front of it as in production), on a scratch
copy of the data (never writing the originals)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests as http

from benchmarks import loadgen
from ml.core import versions
from ml.core.config import PROJECT_ROOT
from serving.config import sqlite_url
from serving.proxy import GUNICORN_CONF

GUNICORN = Path(sys.executable).with_name("gunicorn")
FRONTS = ("gunicorn", "nginx")

WRITTEN_BY_SERVING = ("feedback.db", "feedback.db-wal", "feedback.db-shm", "tokens.json")

FEAST_COPIED = ("online_store.db", "registry.db")  # pushes write the online store; never the original


# -- the scratch data dir -----------------------------------------------------------------------------
def prepare_scratch(data_dir: Path, scratch: Path) -> None:
    """Links to ``data_dir``'s entries, except what serving writes (fresh) and the Feast stores
    (copied); of the published versions, the current one, with its own copy of the online store."""
    scratch.mkdir(parents=True, exist_ok=True)
    for entry in sorted(data_dir.iterdir()):
        if entry.name in WRITTEN_BY_SERVING:
            continue
        if entry.name == "feast" and entry.is_dir():
            _mirror_feast(entry, scratch / "feast")
        elif entry.name == versions.VERSIONS_DIR and entry.is_dir():
            current = versions.current_version(data_dir)
            if current is not None:
                source, target = versions.version_dir(data_dir, current), versions.version_dir(scratch, current)
                target.mkdir(parents=True)
                for item in sorted(source.iterdir()):
                    if item.name == "feast" and item.is_dir():
                        _mirror_feast(item, target / "feast")
                    else:
                        (target / item.name).symlink_to(item.resolve())
                versions.switch(scratch, current)
        else:
            (scratch / entry.name).symlink_to(entry.resolve())


def _mirror_feast(source: Path, target: Path) -> None:
    target.mkdir()
    for item in source.iterdir():
        if item.name in FEAST_COPIED:
            _copy_sqlite(item, target / item.name)
        elif not item.name.endswith(("-wal", "-shm", "-journal")):
            (target / item.name).symlink_to(item.resolve())


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite file (the backup API; a plain file otherwise)."""
    try:
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, sqlite3.connect(target) as dst:
            src.backup(dst)
    except sqlite3.DatabaseError:
        shutil.copyfile(source, target)


# -- the server ----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn over the scratch dir, in its own process group (kill -9 takes master and workers)."""

    def __init__(self, scratch: Path, workers: int, threads: int, port: int, extra_env: dict[str, str] | None = None,
                 front: str = "gunicorn"):
        """``front="nginx"``: the production front door (``serving.proxy``: nginx buffering slow clients,
        gunicorn on a loopback upstream); ``"gunicorn"``: gunicorn answers the port itself."""
        if front not in FRONTS:
            raise ValueError(f"front must be one of {FRONTS}")
        self.scratch, self.workers, self.threads, self.port, self.front = scratch, workers, threads, port, front
        self.extra_env = dict(extra_env or {})
        self.base = f"http://127.0.0.1:{port}"
        self.log = scratch / "gunicorn.log"
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        env = {**os.environ, "LINGXI_DATA_DIR": str(self.scratch),
               "LINGXI_FEAST_CONFIG": "feature_store.yaml",  # the copied SQLite online store, never a shared Redis
               "LINGXI_TOKENS_FILE": str(self.scratch / "tokens.json"),
               "LINGXI_FEEDBACK_DB_URL": sqlite_url(self.scratch / "feedback.db"),
               "WEB_CONCURRENCY": str(self.workers),  # each worker holds rate limits at rate / workers
               "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)}
        env.pop("LINGXI_TOKENS", None)
        return {**env, **self.extra_env}

    def command(self) -> list[str]:
        if self.front == "nginx":
            return [sys.executable, "-m", "serving.proxy", "--listen", f"127.0.0.1:{self.port}",
                    "--upstream", f"127.0.0.1:{free_port()}", "--workers", str(self.workers),
                    "--threads", str(self.threads), "--run-dir", str(self.scratch / "proxy")]
        command = [str(GUNICORN), "-c", str(GUNICORN_CONF), "--workers", str(self.workers),
                   "--bind", f"127.0.0.1:{self.port}", "--backlog", "4096", "--timeout", "120"]
        if self.threads > 1:
            command += ["--worker-class", "gthread", "--threads", str(self.threads)]
        return command + ["serving:create_app()"]

    def start(self, timeout: float = 600) -> None:
        with open(self.log, "ab") as handle:
            self.proc = subprocess.Popen(self.command(), cwd=PROJECT_ROOT, env=self.env(), stdout=handle,
                                         stderr=handle, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log.read_text()[-3000:]}")
            try:
                if http.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    self.settle(deadline - time.monotonic())
                    return
            except http.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn not ready in {timeout:.0f} s: {self.log.read_text()[-3000:]}")

    def settle(self, timeout: float = 120) -> None:
        """Wait until the server group stops using CPU: after start, every worker has loaded the app
        (one worker answering /readyz says nothing of the others); after a run, its queue is drained."""
        deadline = time.monotonic() + timeout
        last = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(1.0)
            now = self.cpu_seconds()
            if now - last < 0.05:
                return
            last = now

    def readiness(self) -> dict[str, Any]:
        return http.get(f"{self.base}/readyz", timeout=10).json()

    def cpu_seconds(self) -> float:
        return loadgen.cpu_seconds_of_group(self.proc.pid) if self.proc else 0.0

    def kill9(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill9()
        except ProcessLookupError:
            pass
