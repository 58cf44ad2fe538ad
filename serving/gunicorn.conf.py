"""gunicorn settings for ``make serve``: Prometheus metrics summed over the workers.

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
