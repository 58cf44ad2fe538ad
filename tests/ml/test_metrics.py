"""ml.core.metrics: hand-computed binary and ranking cases, invariances, a brute-force cross-check."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ml.core import metrics as M

# --------------------------------------------------------------------------------------------
# binary metrics, by hand
# --------------------------------------------------------------------------------------------


def test_top_k_count_rounds_up_and_ignores_float_noise():
    assert M.top_k_count(10, 0.10) == 1
    assert M.top_k_count(30, 0.10) == 3  # 0.1 * 30 = 3.0000000000000004 must not become 4
    assert M.top_k_count(25, 0.10) == 3  # 2.5 -> 3
    assert M.top_k_count(5, 0.01) == 1  # never empty
    with pytest.raises(ValueError):
        M.top_k_count(10, 0.0)


def test_lift_precision_recall_at_top_by_hand():
    # 10 rows, 2 positives (base rate 0.2), scores strictly decreasing with the row number
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    s = np.arange(10, 0, -1, dtype=float)
    assert M.precision_at(y, s, 0.10) == 1.0  # top row is a positive
    assert M.lift_at(y, s, 0.10) == pytest.approx(5.0)  # 1.0 / 0.2
    assert M.recall_at(y, s, 0.10) == pytest.approx(0.5)
    assert M.capture_at(y, s, 0.5) == pytest.approx(0.5)  # second positive is last
    assert M.capture_at(y, s, 1.0) == pytest.approx(1.0)
    assert M.precision_at(y, s, 0.5) == pytest.approx(0.2)


def test_capture_at_half_by_hand():
    y = np.array([1, 1, 0, 0, 0, 0, 1, 0])
    s = np.array([8, 7, 6, 5, 4, 3, 2, 1], dtype=float)
    assert M.capture_at(y, s, 0.5) == pytest.approx(2 / 3)  # top 4 rows hold 2 of 3 positives
    assert M.lift_at(y, s, 0.25) == pytest.approx(1.0 / (3 / 8))  # top 2 rows both positive


def test_ties_at_the_cut_are_split_evenly():
    # k = 2: one row strictly above the cut (a negative), then 3 tied rows holding 1 positive
    # for the 1 place left -> 1/3 expected positive in the top 2
    y = np.array([0, 1, 0, 0, 1])
    s = np.array([3, 2, 2, 2, 1], dtype=float)
    assert M.positives_in_top(y, s, 2) == pytest.approx(1 / 3)
    assert M.precision_at(y, s, 0.4) == pytest.approx(1 / 6)


def test_constant_scores_have_lift_one_whatever_the_row_order():
    y = np.array([0] * 90 + [1] * 10)  # every positive last in file order
    s = np.zeros(100)
    for frac in (0.05, 0.1, 0.5):
        assert M.lift_at(y, s, frac) == pytest.approx(1.0)
    assert M.capture_at(y, s, 0.5) == pytest.approx(0.5)
    assert M.roc_auc(y, s) == pytest.approx(0.5)
    assert M.pr_auc(y, s) == pytest.approx(0.1)


def test_auc_ap_brier_by_hand():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8])
    assert M.roc_auc(y, s) == pytest.approx(0.75)  # 3 of 4 positive/negative pairs ordered right
    # ranked: .8 (+), .4 (-), .35 (+), .1 (-): precision 1 at recall .5, 2/3 at recall 1
    assert M.pr_auc(y, s) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert M.brier(np.array([0, 1]), np.array([0.2, 0.6])) == pytest.approx((0.04 + 0.16) / 2)


def test_degenerate_inputs():
    assert math.isnan(M.roc_auc([0, 0, 0], [0.1, 0.2, 0.3]))
    assert math.isnan(M.lift_at([0, 0, 0], [0.1, 0.2, 0.3], 0.5))
    with pytest.raises(ValueError):
        M.lift_at([0, 1, 2], [0.1, 0.2, 0.3], 0.5)  # not binary
    with pytest.raises(ValueError):
        M.lift_at([0, 1], [0.1, np.nan], 0.5)
    with pytest.raises(ValueError):
        M.brier([0, 1], [0.5, 1.5])


def test_binary_report_keys_and_values():
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    s = np.linspace(1, 0, 10)
    rep = M.binary_report(y, s)
    for key in ("roc_auc", "pr_auc", "brier", "capture_at_50", "lift_at_10", "precision_at_10",
                "recall_at_10", "lift_at_5", "lift_at_20", "recall_at_50"):
        assert key in rep
    assert rep["lift_at_10"] == pytest.approx(5.0)
    assert rep["capture_at_50"] == pytest.approx(0.5)
    assert rep["positives"] == 2


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(5, 60),
    seed=st.integers(0, 10_000),
    frac=st.sampled_from([0.1, 0.2, 0.5]),
)
def test_top_metrics_do_not_depend_on_row_order(n, seed, frac):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    y[0] = 1
    s = rng.integers(0, 4, n).astype(float)  # many ties on purpose
    perm = rng.permutation(n)
    assert M.lift_at(y, s, frac) == pytest.approx(M.lift_at(y[perm], s[perm], frac))
    assert M.capture_at(y, s, frac) == pytest.approx(M.capture_at(y[perm], s[perm], frac))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 40), seed=st.integers(0, 10_000))
def test_positives_in_top_equals_average_over_tie_orders(n, seed):
    """Brute force: the tie rule is the mean over random tie-breaking orders."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(float)
    s = rng.integers(0, 3, n).astype(float)
    k = int(rng.integers(1, n + 1))
    draws = []
    for _ in range(400):
        order = np.lexsort((rng.random(n), -s))
        draws.append(y[order[:k]].sum())
    assert M.positives_in_top(y, s, k) == pytest.approx(np.mean(draws), abs=0.25)
    # and without ties it is exact
    s2 = s + np.arange(n) * 1e-6
    order = np.argsort(-s2)
    assert M.positives_in_top(y, s2, k) == pytest.approx(y[order[:k]].sum())


# --------------------------------------------------------------------------------------------
# ranking metrics, by hand
# --------------------------------------------------------------------------------------------

SCORES = np.array([[0.9, 0.8, 0.1, 0.5],
                   [0.2, 0.3, 0.4, 0.1],
                   [0.5, 0.5, 0.5, 0.5]])
LABELS = np.array([[0, 1, 0, 1],
                   [0, 0, 0, 0],
                   [1, 0, 0, 1]])
MASK = np.array([[False, False, False, False],
                 [False, False, False, False],
                 [True, False, False, False]])  # customer 2 already holds product 0
L3 = 1 / math.log2(3)
L4 = 1 / math.log2(4)


def test_ranking_by_hand_k2():
    # customer 0 ranks p0, p1, p3, p2 -> hits 0, 1, 1, 0 (2 positives)
    # customer 1 has no positive; customer 2's p0 positive is masked, p1..p3 tie -> column order,
    # its only eligible positive p3 lands at rank 3
    assert M.recall_at_k(SCORES, LABELS, MASK, 2) == pytest.approx((0.5 + 0.0) / 2)
    assert M.precision_at_k(SCORES, LABELS, MASK, 2) == pytest.approx((0.5 + 0.0) / 2)
    assert M.map_at_k(SCORES, LABELS, MASK, 2) == pytest.approx(((1 / 2) / 2 + 0 + 0) / 3)
    assert M.ndcg_at_k(SCORES, LABELS, MASK, 2) == pytest.approx((L3 / (1 + L3) + 0 + 0) / 3)


def test_ranking_by_hand_k3():
    assert M.recall_at_k(SCORES, LABELS, MASK, 3) == pytest.approx(1.0)
    assert M.precision_at_k(SCORES, LABELS, MASK, 3) == pytest.approx((2 / 3 + 1 / 3) / 2)
    ap0 = (1 / 2 + 2 / 3) / 2
    ap2 = (1 / 3) / 1
    assert M.map_at_k(SCORES, LABELS, MASK, 3) == pytest.approx((ap0 + 0 + ap2) / 3)
    nd0 = (L3 + L4) / (1 + L3)
    nd2 = L4 / 1
    assert M.ndcg_at_k(SCORES, LABELS, MASK, 3) == pytest.approx((nd0 + 0 + nd2) / 3)


def test_masked_cells_never_count_as_positives():
    # without the mask customer 2's p0 (label 1, tied top by column order) would be a hit at 1
    assert M.recall_at_k(SCORES, LABELS, None, 1) == pytest.approx((0 + 1 / 2) / 2)
    assert M.recall_at_k(SCORES, LABELS, MASK, 1) == pytest.approx(0.0)
    # a masked cell with the highest score is skipped, not ranked
    s = np.array([[0.99, 0.1, 0.2]])
    lab = np.array([[0, 0, 1]])
    assert M.precision_at_k(s, lab, np.array([[True, False, False]]), 1) == 1.0
    assert M.precision_at_k(s, lab, None, 1) == 0.0


def test_map_denominator_is_min_of_positives_and_k():
    s = np.array([[0.9, 0.8, 0.7, 0.6]])
    lab = np.array([[1, 1, 1, 0]])  # 3 positives, K = 2, both recommended are hits
    assert M.map_at_k(s, lab, None, 2) == pytest.approx(1.0)
    assert M.ndcg_at_k(s, lab, None, 2) == pytest.approx(1.0)
    lab2 = np.array([[0, 0, 0, 1]])  # the positive is ranked 4th
    assert M.map_at_k(s, lab2, None, 4) == pytest.approx(1 / 4)


def test_customers_without_positive_count_zero_in_map_and_ndcg_only():
    s = np.array([[0.9, 0.1], [0.9, 0.1]])
    lab = np.array([[1, 0], [0, 0]])
    assert M.map_at_k(s, lab, None, 1) == pytest.approx(0.5)  # (1 + 0) / 2 customers
    assert M.ndcg_at_k(s, lab, None, 1) == pytest.approx(0.5)
    assert M.recall_at_k(s, lab, None, 1) == pytest.approx(1.0)  # only the customer with one
    assert M.precision_at_k(s, lab, None, 1) == pytest.approx(1.0)


def test_lift_top_decile_by_hand():
    # 11 eligible cells, 3 eligible positives; top ceil(1.1) = 2 cells: .9 (-) and .8 (+)
    assert M.lift_top_decile(SCORES, LABELS, MASK) == pytest.approx(0.5 / (3 / 11))


def test_ranking_report_matches_single_functions():
    rep = M.ranking_report(SCORES, LABELS, MASK, ks=(1, 2, 3, 5))
    for k in (1, 2, 3, 5):
        assert rep[f"recall@{k}"] == pytest.approx(M.recall_at_k(SCORES, LABELS, MASK, k))
        assert rep[f"precision@{k}"] == pytest.approx(M.precision_at_k(SCORES, LABELS, MASK, k))
        assert rep[f"map@{k}"] == pytest.approx(M.map_at_k(SCORES, LABELS, MASK, k))
        assert rep[f"ndcg@{k}"] == pytest.approx(M.ndcg_at_k(SCORES, LABELS, MASK, k))
    assert rep["customers"] == 3 and rep["customers_with_positive"] == 2
    assert rep["eligible_cells"] == 11 and rep["positive_cells"] == 3
    # K larger than the product count: precision keeps dividing by K
    assert rep["precision@5"] == pytest.approx((2 / 5 + 1 / 5) / 2)


def _naive(scores, labels, mask, k):
    """Loop implementation of the documented definitions."""
    recalls, precisions, aps, ndcgs = [], [], [], []
    for c in range(scores.shape[0]):
        elig = [j for j in range(scores.shape[1]) if not mask[c, j]]
        ranked = sorted(elig, key=lambda j: (-scores[c, j], j))[:k]
        n_pos = sum(int(labels[c, j]) for j in elig)
        rel = [int(labels[c, j]) for j in ranked]
        hits = sum(rel)
        if n_pos:
            recalls.append(hits / n_pos)
            precisions.append(hits / k)
            ap = sum(sum(rel[: i + 1]) / (i + 1) * rel[i] for i in range(len(rel))) / min(n_pos, k)
            dcg = sum(r / math.log2(i + 2) for i, r in enumerate(rel))
            idcg = sum(1 / math.log2(i + 2) for i in range(min(n_pos, k, len(elig))))
            aps.append(ap)
            ndcgs.append(dcg / idcg)
        else:
            aps.append(0.0)
            ndcgs.append(0.0)
    return (np.mean(recalls) if recalls else math.nan, np.mean(precisions) if precisions else math.nan,
            np.mean(aps), np.mean(ndcgs))


@settings(max_examples=50, deadline=None)
@given(
    data=arrays(np.int8, st.tuples(st.integers(1, 12), st.integers(1, 7)), elements=st.integers(0, 3)),
    seed=st.integers(0, 10_000),
    k=st.integers(1, 8),
)
def test_ranking_matches_naive_loops(data, seed, k):
    rng = np.random.default_rng(seed)
    scores = data.astype(float)  # small integers: lots of ties
    labels = rng.random(data.shape) < 0.3
    mask = rng.random(data.shape) < 0.2
    got = (M.recall_at_k(scores, labels, mask, k), M.precision_at_k(scores, labels, mask, k),
           M.map_at_k(scores, labels, mask, k), M.ndcg_at_k(scores, labels, mask, k))
    want = _naive(scores, labels, mask, k)
    for g, w in zip(got, want):
        if math.isnan(w):
            assert math.isnan(g)
        else:
            assert g == pytest.approx(w)


def test_ranking_input_checks():
    with pytest.raises(ValueError):
        M.ranking_report(np.zeros(3), np.zeros(3))  # 1-D
    with pytest.raises(ValueError):
        M.ranking_report(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError):
        M.ranking_report(np.array([[np.nan, 1.0]]), np.array([[0, 1]]))
    # NaN in a masked cell is fine: it is never ranked
    rep = M.ranking_report(np.array([[np.nan, 1.0]]), np.array([[0, 1]]), np.array([[True, False]]), ks=(1,))
    assert rep["recall@1"] == 1.0


def test_ranking_is_vectorised_fast_enough():
    """300k customers x 19 products well within seconds (1.1M x 19 scales linearly)."""
    rng = np.random.default_rng(0)
    n, m = 300_000, 19
    scores = rng.random((n, m))
    labels = rng.random((n, m)) < 0.01
    mask = rng.random((n, m)) < 0.3
    t = time.perf_counter()
    rep = M.ranking_report(scores, labels, mask, ks=(1, 3, 5))
    elapsed = time.perf_counter() - t
    assert 0 < rep["recall@5"] < 1
    assert elapsed < 20, f"ranking_report took {elapsed:.1f}s on {n:,} x {m}"


# --------------------------------------------------------------------------------------------
# intervals
# --------------------------------------------------------------------------------------------

def test_poisson_bootstrap_intervals_cover_the_truth_and_pair_ratios():
    rng = np.random.default_rng(3)
    x = rng.random((5_000, 2))
    x[:, 1] = 2 * x[:, 0]  # a perfectly paired second figure
    sums, weights = M.poisson_bootstrap(x, replicates=400, seed=1)
    means = sums / weights[:, None]
    lo, hi = M.interval(means[:, 0])
    assert lo < 0.5 < hi and hi - lo < 0.04
    assert M.interval(sums[:, 1] / sums[:, 0]) == pytest.approx([2.0, 2.0])  # paired: no spread at all


def test_exact_binomial_interval():
    assert M.binomial_interval(0, 10)[0] == 0.0 and M.binomial_interval(10, 10)[1] == 1.0
    lo, hi = M.binomial_interval(13, 200)
    assert lo == pytest.approx(0.0351, abs=1e-3) and hi == pytest.approx(0.1087, abs=1e-3)


def test_binary_intervals_bracket_the_point_estimates():
    rng = np.random.default_rng(7)
    y = rng.random(3_000) < 0.05
    s = y + rng.normal(0, 1, 3_000)
    ci = M.binary_intervals(y, s, replicates=200)
    assert ci["roc_auc"][0] < M.roc_auc(y, s) < ci["roc_auc"][1]
    assert ci["lift_at_10"][0] < M.lift_at(y, s, 0.10) < ci["lift_at_10"][1]
