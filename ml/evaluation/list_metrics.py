"""Lists as a recommender returns them, judged per customer so intervals are cheap.

A list is (n, K) product positions per customer in list order (-1: no product), as stage one
returns it. Every list figure (MAP@K, recall@K, value captured @K, top-decile lift) is a ratio of
sums over customers of the parts :func:`list_parts` returns, so a customer bootstrap
(``ml.core.metrics.poisson_bootstrap``) only reweights that matrix.
"""
from __future__ import annotations

import numpy as np

from ml.core.metrics import interval, top_k_count


def _eligible(scores, mask):
    s = np.asarray(scores, dtype=np.float64)
    eligible = np.ones(s.shape, dtype=bool) if mask is None else ~np.asarray(mask, dtype=bool)
    if s.ndim != 2 or eligible.shape != s.shape:
        raise ValueError(f"scores {s.shape} and mask {eligible.shape} must be the same (customers x products)")
    if np.isnan(s[eligible]).any():
        raise ValueError("scores contain NaN in eligible cells")
    return s, eligible


# Every list figure is a ratio of sums over customers, so a customer bootstrap only needs each
# customer's parts: resampling customers reweights the rows of this matrix.
LIST_PARTS = ("ap", "recall", "has_positive", "value_hit", "value_all",
              "top_cells", "top_positives", "cells", "positives")


def top_k_positions(scores, mask, k: int) -> np.ndarray:
    """(n, k) column positions of the k best eligible cells per customer, -1 where fewer are eligible
    (ties by column, as ``ml.core.metrics``' ranking metrics break them)."""
    s, eligible = _eligible(scores, mask)
    ranked = np.where(eligible, s, -np.inf)
    order = np.argsort(-ranked, axis=1, kind="stable")[:, :k]
    return np.where(np.take_along_axis(eligible, order, axis=1), order, -1)


def list_parts(top, labels, mask=None, values=None, lift_scores=None, frac: float = 0.10) -> np.ndarray:
    """(n, len(LIST_PARTS)) per-customer parts of the list figures (see :func:`list_figures`).

    ``top`` (n, K) are the listed columns in list order (-1: no product), as a recommender returns
    them; ``labels``/``mask`` as in the ranking metrics; ``values`` (P,) the value of an adoption of
    each product (1 when None). ``lift_scores`` rank the pooled cells for the top-``frac`` lift
    (cells cut inside a tie count fractionally, as ``positives_in_top``).
    """
    top = np.asarray(top)
    n, k = top.shape
    eligible = np.ones(np.shape(labels), bool) if mask is None else ~np.asarray(mask, bool)
    pos = np.asarray(labels, bool) & eligible
    values = np.ones(pos.shape[1]) if values is None else np.asarray(values, float)
    listed = top >= 0
    hits = np.take_along_axis(pos, np.where(listed, top, 0), axis=1) & listed
    n_pos = pos.sum(axis=1)
    precision = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    denom = np.minimum(n_pos, k)
    ap = np.divide((precision * hits).sum(axis=1), denom, out=np.zeros(n), where=denom > 0)
    recall = np.divide(hits.sum(axis=1), n_pos, out=np.zeros(n), where=n_pos > 0)
    value_hit = (hits * values[np.where(listed, top, 0)]).sum(axis=1)
    value_all = (pos * values[None, :]).sum(axis=1)
    top_cells = np.zeros(n)
    top_positives = np.zeros(n)
    if lift_scores is not None and eligible.any():
        share = _top_share(np.asarray(lift_scores, float)[eligible], frac)
        cells_top = np.zeros(pos.shape)
        cells_top[eligible] = share
        top_cells, top_positives = cells_top.sum(axis=1), (cells_top * pos).sum(axis=1)
    return np.column_stack([ap, recall, n_pos > 0, value_hit, value_all, top_cells, top_positives,
                            eligible.sum(axis=1), n_pos]).astype(np.float64)


def _top_share(s: np.ndarray, frac: float) -> np.ndarray:
    """Each cell's share of being in the top ``frac`` (1 above the cut, a fraction in the cut's tie)."""
    k = top_k_count(s.size, frac)
    threshold = np.partition(s, s.size - k)[s.size - k]
    above, tied = s > threshold, s == threshold
    out = above.astype(float)
    out[tied] = (k - above.sum()) / tied.sum()
    return out


def list_figures(sums: np.ndarray, n_customers) -> dict[str, np.ndarray]:
    """MAP@K, recall@K, value captured @K and top-decile lift from summed parts (..., 9)."""
    s = {name: np.asarray(sums)[..., i] for i, name in enumerate(LIST_PARTS)}
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"map_at_5": s["ap"] / n_customers,
                "recall_at_5": s["recall"] / s["has_positive"],
                "value_captured_at_5": s["value_hit"] / s["value_all"],
                "top_decile_lift": (s["top_positives"] / s["top_cells"]) / (s["positives"] / s["cells"])}


def top_n_lift_interval(y_ranked, n: int, replicates: int = 1000, seed: int = 0,
                        level: float = 0.95) -> list[float]:
    """Customer-bootstrap interval of precision@n / base rate, ``y_ranked`` in ranking order.

    Poisson weights per customer; the ranking is fixed, so a replicate's top ``n`` are its first
    rows up to a total weight of ``n`` (the row crossing it counted in part).
    """
    y = np.asarray(y_ranked, np.float64)
    rng = np.random.default_rng(seed)
    head = min(len(y), 20 * n)  # the top n of a replicate lies well inside the first 20n rows
    hits_top, seen = np.zeros(replicates), np.zeros(replicates)
    total_w, total_y = np.zeros(replicates), np.zeros(replicates)
    for lo in range(0, len(y), 20_000):
        w = rng.poisson(1.0, (replicates, min(20_000, len(y) - lo))).astype(np.float64)
        total_w += w.sum(axis=1)
        total_y += w @ y[lo:lo + w.shape[1]]
        if lo < head:
            part = w[:, :head - lo]
            before = seen[:, None] + np.cumsum(part, axis=1) - part
            share = np.clip(n - before, 0, part)  # weight of each row inside the top n
            hits_top += share @ y[lo:lo + part.shape[1]]
            seen += part.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return interval((hits_top / n) / (total_y / total_w), level)
