"""Evaluation metrics: binary scores and customer x product rankings.

Binary metrics take a label vector ``y`` (0/1) and a score vector ``s`` (higher = more likely
positive). "Top k%" metrics look at the ``ceil(frac * n)`` highest scores. Ties are handled
exactly: when the cut falls inside a group of equal scores, the group contributes its *expected*
number of positives under a random order (``positives_in_group * places_left / group_size``),
so a constant score always has lift 1 and no metric depends on row order.

Ranking metrics take three ``(n_customers, n_products)`` arrays:

* ``scores`` -- float; higher ranks first.
* ``labels`` -- 0/1 (or bool); the customer took the product in the label window.
* ``mask``   -- bool, optional; ``True`` marks an *ineligible* cell (product already held,
  unsuitable, ...), as in ``numpy.ma``. Masked cells are never ranked and never count as
  positives, even when ``labels`` says 1.

Per customer, eligible products are ranked by score (ties broken by product column, lowest
first, so results are deterministic) and the top ``K`` are "recommended":

* ``recall@K``    = hits / positives, averaged over customers with >= 1 eligible positive.
* ``precision@K`` = hits / K, averaged over the same customers (K fixed, even when a customer
  has fewer than K eligible products).
* ``MAP@K``  (Kaggle style) = sum over ranks i <= K of precision@i * rel_i, divided by
  ``min(positives, K)``; averaged over **every** customer, a customer without a positive
  counting 0.
* ``NDCG@K`` = DCG@K / ideal DCG@K with gains ``rel_i / log2(i + 1)``; averaged over every
  customer, a customer without a positive counting 0.
* ``lift_top_decile`` = positive rate among the top 10% of all eligible cells (pooled over
  customers and products) / positive rate of all eligible cells.

Intervals: ``poisson_bootstrap`` resamples customers by reweighting a matrix of per-customer parts
(figures that are ratios of sums need nothing else; ``ml.evaluation.list_metrics`` builds the parts of
a list), ``binary_intervals`` bootstraps rows of a binary problem, ``binomial_interval`` is exact for
a proportion.

Everything is vectorised numpy: 1.1M x 19 takes a few seconds.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

__all__ = [
    "top_k_count",
    "positives_in_top",
    "precision_at",
    "recall_at",
    "capture_at",
    "lift_at",
    "pr_auc",
    "roc_auc",
    "brier",
    "binary_report",
    "ranking_report",
    "recall_at_k",
    "precision_at_k",
    "map_at_k",
    "ndcg_at_k",
    "lift_top_decile",
    "poisson_bootstrap",
    "interval",
    "binomial_interval",
    "binary_intervals",
]


def _as_binary(y: np.ndarray | Sequence) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {arr.shape}")
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        raise ValueError("labels must be 0/1 or boolean")
    return arr.astype(np.float64)


def _as_scores(s: np.ndarray | Sequence, n: int) -> np.ndarray:
    arr = np.asarray(s, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"scores must have shape ({n},), got {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError("scores contain NaN")
    return arr


def top_k_count(n: int, frac: float) -> int:
    """Number of rows in the top ``frac`` of ``n`` rows: ``ceil(frac * n)``, at least 1."""
    if not 0.0 < frac <= 1.0:
        raise ValueError(f"frac must be in (0, 1], got {frac}")
    if n <= 0:
        raise ValueError("need at least one row")
    # the small epsilon keeps e.g. 0.1 * 30 = 3.0000000000000004 from rounding up to 4
    return max(1, min(n, math.ceil(frac * n - 1e-9)))


def positives_in_top(y: np.ndarray, s: np.ndarray, k: int, weights: np.ndarray | None = None) -> float:
    """Expected (weighted) positives among the ``k`` highest scores, ties split evenly.

    With ``weights`` the cut is still by row count and each row counts with its weight.
    O(n): one ``np.partition`` to find the k-th largest score, no full sort.
    """
    y = np.asarray(y, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    n = y.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    threshold = np.partition(s, n - k)[n - k]  # the k-th largest score
    above = s > threshold
    tied = s == threshold
    n_above = int(above.sum())
    n_tied = int(tied.sum())
    places_left = k - n_above  # 1 <= places_left <= n_tied
    pos_above = float((y * w)[above].sum())
    pos_tied = float((y * w)[tied].sum())
    return pos_above + pos_tied * places_left / n_tied


def precision_at(y, s, frac: float) -> float:
    """Share of positives among the top ``frac`` of rows by score."""
    yb = _as_binary(y)
    sc = _as_scores(s, yb.shape[0])
    k = top_k_count(yb.shape[0], frac)
    return positives_in_top(yb, sc, k) / k


def recall_at(y, s, frac: float) -> float:
    """Share of all positives that fall in the top ``frac`` of rows (a.k.a. capture rate)."""
    yb = _as_binary(y)
    sc = _as_scores(s, yb.shape[0])
    total = yb.sum()
    if total == 0:
        return float("nan")
    return positives_in_top(yb, sc, top_k_count(yb.shape[0], frac)) / total


def capture_at(y, s, frac: float = 0.5) -> float:
    """Share of positives captured in the top ``frac`` (``capture_at(y, s, 0.5)``: top half)."""
    return recall_at(y, s, frac)


def lift_at(y, s, frac: float = 0.10) -> float:
    """Positive rate in the top ``frac`` divided by the overall positive rate."""
    yb = _as_binary(y)
    base = yb.mean()
    if base == 0:
        return float("nan")
    return precision_at(yb, s, frac) / base


def pr_auc(y, s, sample_weight=None) -> float:
    """Area under the precision-recall curve (average precision, step interpolation)."""
    yb = _as_binary(y)
    if yb.sum() == 0:
        return float("nan")
    return float(average_precision_score(yb, _as_scores(s, yb.shape[0]), sample_weight=sample_weight))


def roc_auc(y, s, sample_weight=None) -> float:
    """Area under the ROC curve (ties count one half)."""
    yb = _as_binary(y)
    if yb.min() == yb.max():
        return float("nan")
    return float(roc_auc_score(yb, _as_scores(s, yb.shape[0]), sample_weight=sample_weight))


def brier(y, p, sample_weight=None) -> float:
    """Brier score: mean squared error of probabilities ``p`` (lower is better)."""
    yb = _as_binary(y)
    pr = _as_scores(p, yb.shape[0])
    if pr.min() < 0 or pr.max() > 1:
        raise ValueError("Brier score needs probabilities in [0, 1]")
    return float(brier_score_loss(yb, pr, sample_weight=sample_weight))


def binary_report(y, s, fracs: Iterable[float] = (0.05, 0.10, 0.20, 0.50)) -> dict[str, float]:
    """All binary metrics in one flat dict.

    Keys: ``n``, ``positives``, ``positive_rate``, ``roc_auc``, ``pr_auc``, ``brier`` (only when
    the scores are probabilities), ``capture_at_50``, ``lift_at_10`` and, for every ``f`` in
    ``fracs``, ``precision_at_{100f}``, ``recall_at_{100f}``, ``lift_at_{100f}``.
    """
    yb = _as_binary(y)
    sc = _as_scores(s, yb.shape[0])
    out: dict[str, float] = {
        "n": int(yb.shape[0]),
        "positives": int(yb.sum()),
        "positive_rate": float(yb.mean()),
        "roc_auc": roc_auc(yb, sc),
        "pr_auc": pr_auc(yb, sc),
    }
    if sc.min() >= 0 and sc.max() <= 1:
        out["brier"] = brier(yb, sc)
    out["capture_at_50"] = capture_at(yb, sc, 0.5)
    out["lift_at_10"] = lift_at(yb, sc, 0.10)
    for f in fracs:
        tag = f"{round(100 * f):g}"
        out[f"precision_at_{tag}"] = precision_at(yb, sc, f)
        out[f"recall_at_{tag}"] = recall_at(yb, sc, f)
        out[f"lift_at_{tag}"] = lift_at(yb, sc, f)
    return out


def _check_matrices(scores, labels, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (customers x products), got shape {s.shape}")
    lab = np.asarray(labels)
    if lab.shape != s.shape:
        raise ValueError(f"labels shape {lab.shape} != scores shape {s.shape}")
    if lab.dtype != bool and not np.isin(lab, (0, 1)).all():
        raise ValueError("labels must be 0/1 or boolean")
    eligible = np.ones(s.shape, dtype=bool) if mask is None else ~np.asarray(mask, dtype=bool)
    if eligible.shape != s.shape:
        raise ValueError(f"mask shape {eligible.shape} != scores shape {s.shape}")
    if np.isnan(s[eligible]).any():
        raise ValueError("scores contain NaN in eligible cells")
    return s, lab.astype(bool) & eligible, eligible


def _ranked_hits(scores, labels, mask, k: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Hits of the top-``k`` eligible products per customer.

    Returns ``hits`` (n, k) bool -- rank ``i`` of customer ``c`` is an eligible positive --,
    ``n_pos`` (n,) eligible positives per customer and ``k`` (possibly capped at n_products).
    """
    s, pos, eligible = _check_matrices(scores, labels, mask)
    n, m = s.shape
    if k < 1:
        raise ValueError("K must be >= 1")
    k = min(k, m)
    ranked = np.where(eligible, s, -np.inf)
    # stable sort of the negated scores: ties keep product-column order; masked cells (-inf)
    # sort last and, being never positive, can only fill ranks with misses
    order = np.argsort(-ranked, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(pos, order, axis=1)  # ineligible cells are never positive
    return hits, pos.sum(axis=1), k


def recall_at_k(scores, labels, mask=None, k: int = 5) -> float:
    """Mean of hits@K / positives over customers with at least one eligible positive."""
    hits, n_pos, _ = _ranked_hits(scores, labels, mask, k)
    has = n_pos > 0
    if not has.any():
        return float("nan")
    return float((hits.sum(axis=1)[has] / n_pos[has]).mean())


def precision_at_k(scores, labels, mask=None, k: int = 5) -> float:
    """Mean of hits@K / K over customers with at least one eligible positive."""
    hits, n_pos, _ = _ranked_hits(scores, labels, mask, k)
    has = n_pos > 0
    if not has.any():
        return float("nan")
    return float((hits.sum(axis=1)[has] / k).mean())


def map_at_k(scores, labels, mask=None, k: int = 5) -> float:
    """Kaggle MAP@K over every customer (no positive -> 0; denominator min(positives, K))."""
    hits, n_pos, kk = _ranked_hits(scores, labels, mask, k)
    h = hits.astype(np.float64)
    prec_at_i = np.cumsum(h, axis=1) / np.arange(1, kk + 1)
    denom = np.minimum(n_pos, k).astype(np.float64)
    ap = np.divide((prec_at_i * h).sum(axis=1), denom, out=np.zeros_like(denom), where=denom > 0)
    return float(ap.mean())


def ndcg_at_k(scores, labels, mask=None, k: int = 5) -> float:
    """NDCG@K (binary gains, log2 discount) over every customer (no positive -> 0)."""
    hits, n_pos, kk = _ranked_hits(scores, labels, mask, k)
    discount = 1.0 / np.log2(np.arange(2, kk + 2))
    dcg = hits.astype(np.float64) @ discount
    ideal_cum = np.concatenate([[0.0], np.cumsum(discount)])
    idcg = ideal_cum[np.minimum(n_pos, kk)]
    ndcg = np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)
    return float(ndcg.mean())


def lift_top_decile(scores, labels, mask=None, frac: float = 0.10) -> float:
    """Lift of the top ``frac`` of all eligible cells (pooled) over the eligible positive rate."""
    s, pos, eligible = _check_matrices(scores, labels, mask)
    flat_s = s[eligible]
    flat_y = pos[eligible].astype(np.float64)
    if flat_s.size == 0 or flat_y.sum() == 0:
        return float("nan")
    k = top_k_count(flat_s.size, frac)
    return positives_in_top(flat_y, flat_s, k) / k / flat_y.mean()


def ranking_report(scores, labels, mask=None, ks: Iterable[int] = (1, 3, 5)) -> dict[str, float]:
    """All ranking metrics in one dict.

    Keys: ``customers``, ``customers_with_positive``, ``eligible_cells``, ``positive_cells``,
    ``lift_top_decile`` and, for every K, ``recall@K``, ``precision@K``, ``map@K``, ``ndcg@K``.
    The top-K order is computed once for the largest K and reused.
    """
    s, pos, eligible = _check_matrices(scores, labels, mask)
    ks = sorted(set(int(k) for k in ks))
    kmax = min(max(ks), s.shape[1])
    hits_all, n_pos, _ = _ranked_hits(s, pos, ~eligible, kmax)
    has = n_pos > 0
    out: dict[str, float] = {
        "customers": int(s.shape[0]),
        "customers_with_positive": int(has.sum()),
        "eligible_cells": int(eligible.sum()),
        "positive_cells": int(pos.sum()),
        "lift_top_decile": lift_top_decile(s, pos, ~eligible),
    }
    h = hits_all.astype(np.float64)
    cum = np.cumsum(h, axis=1)
    ranks = np.arange(1, kmax + 1)
    discount = 1.0 / np.log2(ranks + 1)
    ideal_cum = np.concatenate([[0.0], np.cumsum(discount)])
    ap_num = np.cumsum(cum / ranks * h, axis=1)
    dcg = np.cumsum(h * discount, axis=1)
    for k in ks:
        kk = min(k, kmax)
        hits_k = cum[:, kk - 1]
        if has.any():
            out[f"recall@{k}"] = float((hits_k[has] / n_pos[has]).mean())
            out[f"precision@{k}"] = float((hits_k[has] / k).mean())
        else:
            out[f"recall@{k}"] = out[f"precision@{k}"] = float("nan")
        denom = np.minimum(n_pos, k).astype(np.float64)
        ap = np.divide(ap_num[:, kk - 1], denom, out=np.zeros(len(denom)), where=denom > 0)
        out[f"map@{k}"] = float(ap.mean())
        idcg = ideal_cum[np.minimum(n_pos, kk)]
        nd = np.divide(dcg[:, kk - 1], idcg, out=np.zeros(len(idcg)), where=idcg > 0)
        out[f"ndcg@{k}"] = float(nd.mean())
    return out


# ------------------------------------------------------------------------------------------------
# Customer-level and exact intervals
# ------------------------------------------------------------------------------------------------
def poisson_bootstrap(parts: np.ndarray, replicates: int = 1000, seed: int = 0,
                      block: int = 5_000) -> tuple[np.ndarray, np.ndarray]:
    """Column sums of ``parts`` (n, S) under ``replicates`` customer resamplings, and the weight total.

    Poisson(1) weights per customer and replicate (the large-n form of the bootstrap), drawn block
    by block so memory stays flat; returns ``(sums (B, S), weights (B,))``. Every figure computed
    from the same sums shares the resamplings, so ratios between them are paired.
    """
    parts = np.asarray(parts, np.float64)
    rng = np.random.default_rng(seed)
    sums = np.zeros((replicates, parts.shape[1]))
    total = np.zeros(replicates)
    for lo in range(0, len(parts), block):
        w = rng.poisson(1.0, (replicates, min(block, len(parts) - lo))).astype(np.float64)
        sums += w @ parts[lo:lo + block]
        total += w.sum(axis=1)
    return sums, total


def interval(samples, level: float = 0.95) -> list[float]:
    """The percentile interval of bootstrap ``samples`` (NaN replicates ignored)."""
    tail = 50 * (1 - level)
    lo, hi = np.nanpercentile(np.asarray(samples, float), [tail, 100 - tail])
    return [float(lo), float(hi)]


def binomial_interval(successes: int, trials: int, level: float = 0.95) -> list[float]:
    """Exact (Clopper-Pearson) interval of a proportion."""
    from scipy.stats import beta  # scikit-learn's dependency; only this function needs it

    a = (1 - level) / 2
    lo = beta.ppf(a, successes, trials - successes + 1) if successes > 0 else 0.0
    hi = beta.ppf(1 - a, successes + 1, trials - successes) if successes < trials else 1.0
    return [float(lo), float(hi)]


def binary_intervals(y, s, replicates: int = 1000, seed: int = 0, level: float = 0.95,
                     names: Sequence[str] = ("roc_auc", "pr_auc", "capture_at_50", "lift_at_10")) -> dict[str, list[float]]:
    """Row-bootstrap intervals of binary metrics (keys of :func:`binary_report`)."""
    yb = _as_binary(y)
    sc = _as_scores(s, yb.shape[0])
    rng = np.random.default_rng(seed)
    fns = {"roc_auc": roc_auc, "pr_auc": pr_auc, "capture_at_50": lambda a, b: capture_at(a, b, 0.5),
           "lift_at_10": lambda a, b: lift_at(a, b, 0.10)}
    samples = {name: np.empty(replicates) for name in names}
    for b in range(replicates):
        rows = rng.integers(0, len(yb), len(yb))
        for name in names:
            samples[name][b] = fns[name](yb[rows], sc[rows])
    return {name: interval(values, level) for name, values in samples.items()}
