"""gunicorn settings for the Lingxi API (``make serve``, ``make serve-prod``): timeouts, limits and
Prometheus metrics summed over the workers.

``gunicorn --config serving/gunicorn.conf.py ... "serving:create_app()"``; bind, workers and threads
stay on the command line. The master sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker imports
``prometheus_client`` (the client picks its storage at import): a fresh private directory, or the
one given, emptied of an earlier run's files (old counts would otherwise be added to the new ones).
A worker that exits is marked dead, so its live gauges (versions served) drop out.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_ENV = "PROMETHEUS_MULTIPROC_DIR"
_OWNER = "LINGXI_METRICS_MASTER_PID"  # a reload (HUP) re-reads this file: keep the live workers' files
_created: list[str] = []


def _prepare_multiproc_dir() -> None:
    if os.environ.get(_OWNER) == str(os.getpid()):
        return
    os.environ[_OWNER] = str(os.getpid())
    given = os.environ.get(_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # only the client's files: never wipe a directory wholesale
            stale.unlink(missing_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="lingxi-metrics-"))
        _created.append(str(path))
        os.environ[_ENV] = str(path)
    # Feast reads this older name and makes a directory of its own per worker when it is unset
    os.environ["PROMETHEUS_MULTIPROCESS_DIR"] = str(path)


_prepare_multiproc_dir()  # at config load, in the master, before workers fork


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    for path in _created:
        shutil.rmtree(path, ignore_errors=True)


# -- timeouts and limits ---------------------------------------------------------------------------
# timeout: a worker silent this long is killed (counted from its first heartbeat, after the boot; the
# boot itself waits for its version at most LINGXI_BOOT_WAIT_SECONDS, then answers 503 "loading").
# Sync workers read a request from the socket themselves: a client that sends its headers slowly
# holds a worker; in production the buffering proxy in front (``make serve-prod``, nginx) hands
# gunicorn only complete requests.
timeout = 60
graceful_timeout = 30
keepalive = 5                   # behind the proxy: reuse its upstream connections
backlog = 2048
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
preload_app = False             # each worker loads (and reloads) its own version
accesslog = None                # the app writes one JSON line per request
errorlog = "-"
