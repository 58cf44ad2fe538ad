"""Real servers for the tests: a throw-away PostgreSQL cluster and Redis server on loopback, each in a
temporary directory and stopped afterwards, and the rule for a missing one.

``scripts/services.sh test`` (run by ``make test``) installs the Debian packages. Under CI (``CI`` set
and not false) a server that cannot be had fails the test; elsewhere it is skipped with the reason.
Imported by name: ``tests/`` is on ``sys.path`` (pytest's rootdir conftest lives there).
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

INSTALL_HINT = "scripts/services.sh test (as root) installs it"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def unavailable(reason: str) -> NoReturn:
    """A real service the test needs is missing: fail under CI, skip elsewhere."""
    if in_ci():
        pytest.fail(f"{reason} (CI must run the real service: {INSTALL_HINT})", pytrace=False)
    pytest.skip(f"{reason} ({INSTALL_HINT})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


# -- PostgreSQL ------------------------------------------------------------------------------------
def postgres_bindir() -> Path | None:
    """The newest installed server's bin dir (Debian keeps it out of PATH), else initdb on PATH."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if found:
        newest = max(found, key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
        return Path(newest).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _server_user() -> pwd.struct_passwd | None:
    """The account to run the server as: PostgreSQL refuses to run as root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")  # created by Debian's postgresql package
    except KeyError:
        unavailable("running as root and there is no 'postgres' user to run the server as")


def _cluster_dir(user: pwd.struct_passwd | None) -> Path:
    """A fresh directory the server account can write (the temp dir may be root's own)."""
    for parent in dict.fromkeys([tempfile.gettempdir(), "/tmp", "/var/tmp"]):
        base = Path(tempfile.mkdtemp(prefix="lingxi-pg-", dir=parent))
        if user is None:
            return base
        os.chown(base, user.pw_uid, user.pw_gid)
        reachable = subprocess.run(["runuser", "-u", user.pw_name, "--", "test", "-w", str(base)],
                                   capture_output=True, timeout=30).returncode == 0
        if reachable:
            return base
        shutil.rmtree(base, ignore_errors=True)
    unavailable("no temporary directory is writable by the 'postgres' account")


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """Yield the URL of a new cluster on 127.0.0.1 (trust auth, superuser ``lingxi``), then remove it."""
    bindir = postgres_bindir()
    if bindir is None:
        unavailable("PostgreSQL is not installed (Debian: postgresql)")
    user = _server_user()
    run_as = ["runuser", "-u", user.pw_name, "--"] if user else []
    base = _cluster_dir(user)
    data, log, port = base / "data", base / "server.log", free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"

    def run(*args: str, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(run_as + list(args), cwd=base, env=env, capture_output=True, text=True,
                              timeout=timeout)

    detail = ""
    try:
        init = run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "lingxi", "-E", "UTF8",
                   "--locale=C", "--no-sync", timeout=180)
        detail = init.stderr[-1500:]
        started = init.returncode == 0 and run(
            str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "90",
            "-o", f"-h 127.0.0.1 -p {port} -k {base} -F", "start", timeout=120).returncode == 0
    except (subprocess.SubprocessError, OSError) as exc:
        started, detail = False, repr(exc)
    if not started:
        detail += log.read_text()[-1500:] if log.exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        unavailable(f"could not start a local PostgreSQL server: {detail.strip()}")
    try:
        yield f"postgresql://lingxi@127.0.0.1:{port}/postgres"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(base, ignore_errors=True)


# -- Redis -----------------------------------------------------------------------------------------
@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """Yield ``host:port`` of a new redis-server on 127.0.0.1 (no persistence), then stop it."""
    binary = shutil.which("redis-server")
    if not binary:
        unavailable("redis-server is not installed (Debian: redis-server)")
    port = free_port()
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                               "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_for_port(port, server):
            unavailable(f"redis-server did not listen on 127.0.0.1:{port}")
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)
