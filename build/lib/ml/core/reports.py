"""The one writer of report files: merge sections into a JSON report under a lock.

Several jobs own different keys of the same file (the nightly scoring writes ``suitability`` to
``metrics.json``, the evaluation ``summary``, the replay ``two_stage``; the benchmark steps write
``bench.json``), sometimes at the same time, so every write reads, updates its keys and replaces
the file atomically while holding an exclusive lock.
"""
from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback for numpy scalars and arrays."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_report(path: Path) -> dict:
    """The report's current content ({} when it does not exist yet)."""
    return json.loads(path.read_text()) if path.exists() else {}


def merge_report(path: Path, sections: Mapping[str, Any]) -> Path:
    """Merge ``sections`` into the JSON file at ``path`` (other keys are kept), locked and atomic."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.stem}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = read_report(path)
        current.update(sections)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(current, indent=2, default=json_default) + "\n")
        os.replace(tmp, path)
    return path


def write_metrics(reports: Path, sections: Mapping[str, Any]) -> Path:
    """Merge ``sections`` into ``<reports>/metrics.json``."""
    return merge_report(Path(reports) / "metrics.json", sections)


def write_bench(reports: Path, sections: Mapping[str, Any]) -> Path:
    """Merge ``sections`` into ``<reports>/bench.json``."""
    return merge_report(Path(reports) / "bench.json", sections)
