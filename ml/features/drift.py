"""Drift of the model inputs: the population stability index (PSI) of each stage-one feature
between the snapshot a model was trained on and tonight's.

A *profile* summarises one snapshot per feature: bin edges (deciles of the training snapshot, or
the distinct values of a feature with few of them) and the share of rows in each bin, missing
values in a bin of their own. Training saves the profile of its calibration snapshot with the
model (``feature_profile.json``), so the nightly job compares against it without keeping the
training rows. PSI = sum over bins of (tonight - training) x ln(tonight / training); the usual
reading is < 0.1 stable, 0.1-0.25 some shift, > 0.25 a shift worth a look.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

PROFILE_FILE = "feature_profile.json"
N_BINS = 10
DISCRETE_MAX_VALUES = 12   # a feature with at most this many distinct values is binned by value
EPSILON = 1e-4             # floor of a bin share: an empty bin must not make the index infinite
DEFAULT_THRESHOLD = 0.25


def threshold_from_env() -> float:
    return float(os.environ.get("LINGXI_DRIFT_PSI_THRESHOLD", DEFAULT_THRESHOLD))


def _edges(values: np.ndarray) -> tuple[str, list[float]]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "empty", []
    distinct = np.unique(finite)
    if distinct.size <= DISCRETE_MAX_VALUES:
        return "values", distinct.tolist()
    cuts = np.unique(np.quantile(finite, np.linspace(0, 1, N_BINS + 1)[1:-1]))
    return "quantiles", cuts.tolist()


def _shares(values: np.ndarray, kind: str, edges: Sequence[float]) -> np.ndarray:
    """Shares of rows per bin: the value bins (or intervals between cuts), then one for missing."""
    values = np.asarray(values, dtype=np.float64)
    missing = ~np.isfinite(values)
    finite = values[~missing]
    if kind == "values":
        known = np.asarray(edges)
        index = np.searchsorted(known, finite)
        exact = (index < len(known)) & (known[np.minimum(index, len(known) - 1)] == finite)
        counts = np.bincount(index[exact], minlength=len(known)).astype(np.float64)
        counts = np.append(counts, (~exact).sum())  # values training never saw
    elif kind == "quantiles":
        counts = np.bincount(np.searchsorted(np.asarray(edges), finite, side="right"),
                             minlength=len(edges) + 1).astype(np.float64)
    else:
        counts = np.zeros(0)
    counts = np.append(counts, missing.sum())
    return counts / max(len(values), 1)


def profile(x: np.ndarray, features: Sequence[str], snapshot: str | None = None) -> dict[str, Any]:
    """The binned distribution of each column of ``x`` (rows = customers, columns = ``features``)."""
    x = np.asarray(x, dtype=np.float64)
    out: dict[str, Any] = {"snapshot": snapshot, "rows": int(len(x)), "features": {}}
    for j, name in enumerate(features):
        kind, edges = _edges(x[:, j])
        out["features"][name] = {"kind": kind, "edges": edges, "shares": _shares(x[:, j], kind, edges).tolist()}
    return out


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(np.asarray(expected, dtype=np.float64), EPSILON)
    a = np.maximum(np.asarray(actual, dtype=np.float64), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def compare(reference: dict[str, Any], x: np.ndarray, features: Sequence[str],
            threshold: float = DEFAULT_THRESHOLD, snapshot: str | None = None) -> dict[str, Any]:
    """PSI of each feature of ``x`` against ``reference`` (a ``profile``); ``flagged`` when any
    feature reaches ``threshold``."""
    x = np.asarray(x, dtype=np.float64)
    index = {name: j for j, name in enumerate(features)}
    rows: dict[str, float] = {}
    for name, ref in reference["features"].items():
        if name not in index:
            continue
        actual = _shares(x[:, index[name]], ref["kind"], ref["edges"])
        rows[name] = round(psi(ref["shares"], actual), 6)
    drifted = sorted((n for n, v in rows.items() if v >= threshold), key=lambda n: -rows[n])
    top = sorted(rows, key=lambda n: -rows[n])[:10]
    return {"reference_snapshot": reference.get("snapshot"), "snapshot": snapshot, "rows": int(len(x)),
            "threshold": threshold, "flagged": bool(drifted), "drifted": drifted,
            "max_psi": max(rows.values()) if rows else None, "top": {n: rows[n] for n in top}, "psi": rows}


def save_profile(folder: Path, prof: dict[str, Any]) -> None:
    (Path(folder) / PROFILE_FILE).write_text(json.dumps(prof))


def load_profile(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / PROFILE_FILE
    return json.loads(path.read_text()) if path.exists() else None
