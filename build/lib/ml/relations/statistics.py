"""The statistics behind relations: association with breadth adjustment, Mantel-Haenszel, co-adoption, FDR."""
from __future__ import annotations

import numpy as np

_Z95 = 1.959963984540054


def _gram(rows: np.ndarray) -> np.ndarray:
    """Exact X'X of a boolean matrix (float32 BLAS in blocks small enough to stay exact)."""
    out = np.zeros((rows.shape[1], rows.shape[1]), dtype=np.int64)
    for start in range(0, len(rows), 1 << 22):
        block = rows[start:start + (1 << 22)].astype(np.float32)
        out += np.rint(block.T @ block).astype(np.int64)
    return out


# ------------------------------------------------------------------------------------------------
# Co-holding
# ------------------------------------------------------------------------------------------------
def _breadth_adjusted_log_or(held: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Mantel-Haenszel log odds ratio (and its Robins-Breslow-Greenland s.e.) for every pair,
    stratified by the number of *other* products held (0, 1, .., cap+)."""
    breadth = held.sum(axis=1)
    top = int(breadth.max(initial=0))
    n_prod = held.shape[1]
    levels = max(top, cap) + 3
    gram = np.zeros((levels, n_prod, n_prod))   # by exact breadth t; zero beyond the top
    for t in range(top + 1):
        gram[t] = _gram(held[breadth == t])
    count = np.diagonal(gram, axis1=1, axis2=2)          # holders of each product, by breadth
    size = np.array([np.count_nonzero(breadth == t) for t in range(levels)], dtype=float)

    def at(arr: np.ndarray, t: int, last: bool) -> np.ndarray:
        return arr[t:].sum(axis=0) if last else arr[t]

    cells = []
    for s in range(cap + 1):                             # s = other products held
        last = s == cap
        both = at(gram, s + 2, last)
        a_only = at(count, s + 1, last)[:, None] - at(gram, s + 1, last)
        b_only = at(count, s + 1, last)[None, :] - at(gram, s + 1, last)
        neither = (at(size, s, last) - at(count, s, last)[:, None] - at(count, s, last)[None, :]
                   + at(gram, s, last))
        cells.append((both, a_only, b_only, neither))
    a, b, c, d = (np.stack(x) for x in zip(*cells))     # each (strata, P, P)
    exact = _mantel_haenszel(a, b, c, d)
    # zero cells in single strata are fine; where a whole sum vanishes (e.g. no co-holder at
    # all), add 1/2 to every cell of the used strata so the estimate stays finite
    used = (a + b + c + d) > 0
    corrected = _mantel_haenszel(*(np.where(used, x + 0.5, 0.0) for x in (a, b, c, d)))
    finite = np.isfinite(exact[0]) & np.isfinite(exact[1])
    return np.where(finite, exact[0], corrected[0]), np.where(finite, exact[1], corrected[1])


def _mantel_haenszel(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Pooled log odds ratio over the first axis (strata) and its Robins-Breslow-Greenland s.e."""
    n = a + b + c + d
    with np.errstate(divide="ignore", invalid="ignore"):
        r, s = np.where(n > 0, a * d / n, 0.0), np.where(n > 0, b * c / n, 0.0)
        p, q = np.where(n > 0, (a + d) / n, 0.0), np.where(n > 0, (b + c) / n, 0.0)
        sr, ss = r.sum(axis=0), s.sum(axis=0)
        log_or = np.log(sr / ss)
        var = ((p * r).sum(0) / (2 * sr**2) + (p * s + q * r).sum(0) / (2 * sr * ss)
               + (q * s).sum(0) / (2 * ss**2))
    return log_or, np.sqrt(var)


# ------------------------------------------------------------------------------------------------
# Co-adoption and time order
# ------------------------------------------------------------------------------------------------
def _coadoption(opened: np.ndarray, window: float) -> dict[str, np.ndarray]:
    """Directed (a -> b) co-adoption counts, expectations and first-opener counts (P x P)."""
    n_cust, n_prod = opened.shape
    end = np.nanmax(opened) if np.isfinite(opened).any() else np.nan
    observed = np.zeros((n_prod, n_prod))
    expected = np.zeros((n_prod, n_prod))
    at_risk = np.zeros((n_prod, n_prod))
    first = np.zeros((n_prod, n_prod))  # co-holders who opened a strictly before b
    sorted_opens = [np.sort(col[np.isfinite(col)]) for col in opened.T]
    for a in range(n_prod):
        rows = np.flatnonzero(np.isfinite(opened[:, a]))
        if len(rows) == 0:
            continue
        rows = rows[np.argsort(opened[rows, a], kind="stable")]  # sorted needles search faster
        ta = opened[rows, a]
        followed = ta <= end - window
        for b in range(n_prod):
            if a == b:
                continue
            tb = opened[rows, b]
            first[a, b] = np.count_nonzero(ta < tb)
            eligible = followed & ~(tb <= ta)             # b not yet held when a was opened
            te = ta[eligible]
            at_risk[a, b] = len(te)
            observed[a, b] = np.count_nonzero((tb[eligible] > te) & (tb[eligible] <= te + window))
            opens = sorted_opens[b]
            if len(opens) and len(te):
                before = np.searchsorted(opens, te, side="right")
                within = np.searchsorted(opens, te + window, side="right") - before
                expected[a, b] = np.sum(within / np.maximum(n_cust - before, 1))
    return {"observed": observed, "expected": expected, "at_risk": at_risk, "first": first}


def _benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """q-values for the finite entries of ``p`` (NaN = not tested)."""
    q = np.full(p.shape, np.nan)
    tested = np.flatnonzero(np.isfinite(p))
    if len(tested) == 0:
        return q
    order = tested[np.argsort(p[tested], kind="stable")]
    ranked = p[order] * len(tested) / np.arange(1, len(tested) + 1)
    q[order] = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    return q


def _huber(x: np.ndarray, y: np.ndarray, epsilon: float = 1.345, iterations: int = 100) -> np.ndarray:
    """Huber M-estimate of a linear fit (iteratively reweighted least squares, MAD scale)."""
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    for _ in range(iterations):
        residual = y - x @ coef
        scale = 1.4826 * np.median(np.abs(residual - np.median(residual))) or 1.0
        u = np.abs(residual) / scale
        root_w = np.sqrt(np.where(u <= epsilon, 1.0, epsilon / np.maximum(u, 1e-12)))
        new = np.linalg.lstsq(x * root_w[:, None], y * root_w, rcond=None)[0]
        if np.allclose(new, coef, rtol=0, atol=1e-10):
            return new
        coef = new
    return coef
