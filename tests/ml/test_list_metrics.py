"""ml.evaluation.list_metrics: lists as served judged per customer, matching the ranking metrics."""
from __future__ import annotations

import numpy as np
import pytest

from ml.core import metrics as M
from ml.evaluation import list_metrics as L


def _random_case(seed: int, n: int = 400, p: int = 7):
    rng = np.random.default_rng(seed)
    scores = rng.random((n, p))
    scores[:, 2] = scores[:, 3]  # ties
    labels = rng.random((n, p)) < 0.08
    mask = rng.random((n, p)) < 0.3
    return scores, labels, mask


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_list_parts_of_the_score_ranking_match_the_ranking_report(seed):
    scores, labels, mask = _random_case(seed)
    top = L.top_k_positions(scores, mask, 5)
    parts = L.list_parts(top, labels, mask, lift_scores=scores)
    figures = L.list_figures(parts.sum(axis=0), len(scores))
    report = M.ranking_report(scores, labels, mask, ks=(5,))
    assert figures["map_at_5"] == pytest.approx(report["map@5"])
    assert figures["recall_at_5"] == pytest.approx(report["recall@5"])
    assert figures["top_decile_lift"] == pytest.approx(report["lift_top_decile"])
    assert figures["value_captured_at_5"] == pytest.approx(
        (parts[:, 1] * parts[:, 8]).sum() / labels[~mask].sum())  # unit values: recall pooled over adoptions


def test_list_parts_by_hand_with_values_and_a_short_list():
    labels = np.array([[1, 0, 1, 0], [0, 0, 0, 0]], bool)
    top = np.array([[2, 1, -1], [0, 1, 3]])  # the first customer's list has two products
    values = np.array([100.0, 10.0, 50.0, 1.0])
    parts = L.list_parts(top, labels, values=values)
    figures = L.list_figures(parts.sum(axis=0), 2)
    assert figures["map_at_5"] == pytest.approx((1.0 / 2) / 2)  # AP = (1/1) / min(2, 3), second customer 0
    assert figures["recall_at_5"] == pytest.approx(0.5)
    assert figures["value_captured_at_5"] == pytest.approx(50 / 150)


def test_top_n_lift_interval_brackets_the_lift():
    rng = np.random.default_rng(5)
    y = np.concatenate([rng.random(200) < 0.3, rng.random(20_000) < 0.02]).astype(float)
    lift = y[:200].mean() / y.mean()
    lo, hi = L.top_n_lift_interval(y, 200, replicates=300)
    assert lo < lift < hi and hi / lo < 2.5
