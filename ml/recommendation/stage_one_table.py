"""The nightly stage-one table: what serving needs to answer stage one without scoring live.

``python -m ml.recommendation.batch`` scores every customer at the current snapshot. Besides the top-k lists
(``scores/stage_one.parquet``, for BI) it publishes this table in ``scores/stage_one_table/``:

- ``customer_ids.npy``  (n,) sorted fixed-width bytes;
- ``features.npy``      (n, F) float32: the snapshot's stage-one vectors (what the online store
  serves), for reasons and exclusion codes;
- ``probability.npy``   (n, P) float64: calibrated P(adopt) of each model product, NaN where the
  product is not suitable or already held at the snapshot;
- ``ranking_key.npy``   (n, P) float64: ``StageOne.ranking_key`` (probability x value, raw-score
  tie-break);
- ``meta.json``         model version, products, product values, and the stamp (path, size,
  mtime) of the feature source the batch read.

Each run writes a new hidden directory and then points the ``stage_one_table`` symlink at it with
one ``os.replace``: a reader resolves the link once and reads metadata and arrays from the same run.
The previous run's directory stays (a reader may have resolved the link just before the switch);
older ones are removed. ``ml.engine.publish`` then copies the table into the night's version.

Serving memory-maps the arrays (every gunicorn worker shares one copy in the page cache) and, per
request, ranks the customer's row minus the suppressed products with the same
``suitability.rank`` as live scoring: the same numbers give the same answer (a test compares the
two). A table built for another model, product list, value weighting or feature source is not
used; the engine then scores live.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TABLE_DIR = "stage_one_table"
CHALLENGER_DIR = "challenger"  # scores/challenger/: the registered challenger's table and match reference
_RUN_PREFIX = ".stage_one_table-"  # one hidden directory per batch run

ARRAYS = ("customer_ids", "features", "probability", "ranking_key")


@dataclass(frozen=True)
class TableRow:
    x: np.ndarray            # (F,) float32
    probability: np.ndarray  # (P,) float64, NaN = not allowed at the snapshot
    ranking_key: np.ndarray  # (P,) float64


def source_stamp(path: Path) -> dict[str, Any]:
    """Identity of the feature source file: a rebuilt source makes an older table stale."""
    st = os.stat(path)
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _prefetch(path: Path) -> None:
    """Start reading the file into the page cache (asynchronously): a request should find its
    customer's row in memory, not wait for a random disk read after a restart or a cold cache."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(fd)
    except (OSError, AttributeError):  # no fadvise on this platform: the pages come on demand
        pass


def write(scores_dir: Path, ids: np.ndarray, x: np.ndarray, probability: np.ndarray, ranking_key: np.ndarray,
          meta: dict[str, Any]) -> Path:
    """Publish a table: a new directory, then one atomic swap of the ``stage_one_table`` link."""
    order = np.argsort(np.asarray(ids).astype("S"), kind="stable")
    arrays = {"customer_ids": np.asarray(ids).astype("S")[order],
              "features": np.ascontiguousarray(x[order], dtype=np.float32),
              "probability": np.ascontiguousarray(probability[order], dtype=np.float64),
              "ranking_key": np.ascontiguousarray(ranking_key[order], dtype=np.float64)}
    if len(np.unique(arrays["customer_ids"])) != len(order):
        raise ValueError("customer ids must be unique")
    scores_dir.mkdir(parents=True, exist_ok=True)
    folder = scores_dir / f"{_RUN_PREFIX}{time.time_ns()}-{os.getpid()}"
    folder.mkdir()
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    (folder / "meta.json").write_text(json.dumps({**meta, "customers": int(len(order))}, indent=2) + "\n")
    target = scores_dir / TABLE_DIR
    previous = target.resolve() if target.exists() else None
    if target.is_dir() and not target.is_symlink():  # the layout before links: move it aside once
        previous = target.rename(scores_dir / f"{_RUN_PREFIX}0-{os.getpid()}").resolve()
    link = scores_dir / f".{TABLE_DIR}.{os.getpid()}.link"
    link.unlink(missing_ok=True)
    link.symlink_to(folder.name)
    os.replace(link, target)  # the switch: one rename
    for old in scores_dir.glob(f"{_RUN_PREFIX}*"):
        if old.resolve() not in (folder.resolve(), previous):
            shutil.rmtree(old, ignore_errors=True)
    return target


def copy_table(source: Path, target: Path, meta: dict[str, Any]) -> None:
    """A table's arrays hard-linked (copied across file systems) into ``target`` with new metadata."""
    source = Path(source).resolve()
    target.mkdir(parents=True)
    for name in ARRAYS:
        try:
            os.link(source / f"{name}.npy", target / f"{name}.npy")
        except OSError:
            shutil.copyfile(source / f"{name}.npy", target / f"{name}.npy")
    (target / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


class StageOneTable:
    """A published table, memory-mapped read-only."""

    def __init__(self, folder: Path):
        self.folder = Path(folder).resolve()  # follow the link once: metadata and arrays of one run
        self.meta: dict[str, Any] = json.loads((self.folder / "meta.json").read_text())
        for name in ARRAYS:
            _prefetch(self.folder / f"{name}.npy")
        arrays = {name: np.load(self.folder / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
        self.ids = arrays["customer_ids"]
        self.x = arrays["features"]
        self.probability = arrays["probability"]
        self.ranking_key = arrays["ranking_key"]

    @classmethod
    def load(cls, scores_dir: Path) -> "StageOneTable | None":
        folder = (Path(scores_dir) / TABLE_DIR).resolve()
        return cls(folder) if (folder / "meta.json").exists() else None

    def problems(self, model_version: str, products: tuple[str, ...], values: np.ndarray,
                 feature_source: Path) -> list[str]:
        """Why this table may not stand in for live scoring (empty list: it may)."""
        out = []
        if self.meta.get("model_version") != model_version:
            out.append(f"model {self.meta.get('model_version')} is not the current {model_version}")
        if tuple(self.meta.get("products", ())) != tuple(products):
            out.append("the model's product list differs")
        if not np.array_equal(np.asarray(self.meta.get("values", []), dtype=np.float64), values):
            out.append("product values (ranking weights) differ")
        try:
            if self.meta.get("feature_source") != source_stamp(feature_source):
                out.append("the feature source was rebuilt after the table")
        except OSError:
            out.append("the feature source is missing")
        if self.probability.shape != (len(self.ids), len(products)) or self.x.shape[0] != len(self.ids):
            out.append("array shapes do not match")
        return out

    def row(self, customer_id: str) -> TableRow | None:
        key = customer_id.encode("ascii", "replace")
        if len(key) > self.ids.dtype.itemsize:  # numpy would truncate it to a false match
            return None
        i = int(np.searchsorted(self.ids, key))
        if i >= len(self.ids) or self.ids[i] != key:
            return None
        return TableRow(np.array(self.x[i], dtype=np.float32), np.array(self.probability[i]),
                        np.array(self.ranking_key[i]))

    def version(self) -> str:
        return f"{self.meta.get('model_version')}:{self.meta.get('customers')}"
