"""The training sample (whole customers, weighted back) and the ranking metrics computed on it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.core import metrics
from ml.training.dataset import (
    adopted_any,
    candidate_pairs,
    choose_customer_rate,
    sample_customers,
)
from ml.training.validation import CutoffRanking, weighted_lift

PRODUCTS = ["PRO_LIFE", "CRD_CARD", "WLT_WMP"]


def _labels(n: int = 20_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"customer_id": [f"C{i:06d}" for i in range(n)],
                          "snapshot_ts": pd.Timestamp("2024-07-01")})
    for p in PRODUCTS:
        column = (rng.random(n) < 0.01).astype(np.float32)
        column[rng.random(n) < 0.1] = np.nan  # held at the cut-off: not a candidate
        frame[f"label_{p.lower()}"] = column
    return frame


def test_every_adopter_is_kept_and_weights_restore_the_population():
    labels = _labels()
    rate = choose_customer_rate(labels, PRODUCTS, non_adopters_per_adopter=2.0)
    adopters = adopted_any(labels, PRODUCTS)
    assert rate == pytest.approx(2 * adopters.sum() / (~adopters).sum())
    kept = sample_customers(labels, PRODUCTS, rate, seed=7)
    assert set(labels.customer_id[adopters]) <= set(kept.customer_id)
    assert (kept.weight[adopted_any(kept, PRODUCTS)] == 1.0).all()
    assert kept.weight.max() == pytest.approx(1 / rate)
    pairs, full = candidate_pairs(kept, PRODUCTS), candidate_pairs(labels, PRODUCTS)
    assert pairs.label.sum() == full.label.sum()                                   # every positive pair
    estimate = pairs.weight[pairs.label == 0].sum()
    assert estimate == pytest.approx((full.label == 0).sum(), rel=0.05)          # Horvitz-Thompson
    again = sample_customers(labels, PRODUCTS, rate, seed=7)
    assert again.customer_id.equals(kept.customer_id)                              # reproducible


def test_rate_one_keeps_everyone_unweighted():
    labels = _labels(2_000)
    assert choose_customer_rate(labels, PRODUCTS, non_adopters_per_adopter=1e6) == 1.0
    kept = sample_customers(labels, PRODUCTS, 1.0, seed=7)
    assert len(kept) == len(labels) and (kept.weight == 1.0).all()


def _long_rows(rng, n_customers: int, n_products: int):
    customer, product, y = [], [], []
    for c in range(n_customers):
        offered = np.flatnonzero(rng.random(n_products) < 0.7)
        customer += [c] * len(offered)
        product += offered.tolist()
        y += (rng.random(len(offered)) < 0.15).astype(int).tolist()
    return np.array(customer), np.array(product), np.array(y)


def test_fast_map_matches_the_dense_metric_with_ties_and_non_adopters():
    rng = np.random.default_rng(3)
    customer, product, y = _long_rows(rng, 3_000, 8)
    w = np.where(y == 1, 1.0, 3.0)
    ranking = CutoffRanking(customer, product, y, w, n_products=8, n_customers=5_000)
    scores = np.round(rng.random(len(y)) + 0.2 * y, 1)  # coarse: many ties
    dense = np.full((3_000, 8), 0.0)
    labels = np.zeros((3_000, 8), dtype=bool)
    ineligible = np.ones((3_000, 8), dtype=bool)
    dense[customer, product], labels[customer, product], ineligible[customer, product] = scores, y == 1, False
    expected = metrics.map_at_k(dense, labels, ineligible, 5) * 3_000 / 5_000  # 2,000 more customers at 0
    assert ranking.map_at_5(scores) == pytest.approx(expected, rel=1e-12)
    report = ranking.report(scores)
    assert report["map_at_5"] == pytest.approx(expected, rel=1e-12)
    assert report["recall_at_5"] == pytest.approx(metrics.recall_at_k(dense, labels, ineligible, 5))
    name, value, higher_is_better = ranking.lightgbm_metric()(scores, None)
    assert name == "map@5" and value == pytest.approx(expected) and higher_is_better


def test_weighted_lift_matches_the_unweighted_one_and_splits_ties():
    rng = np.random.default_rng(1)
    y = (rng.random(10_000) < 0.05).astype(int)
    s = rng.random(10_000) + 0.3 * y
    assert weighted_lift(y, s, np.ones(10_000)) == pytest.approx(metrics.lift_at(y, s, 0.10))
    assert weighted_lift(y, np.zeros(10_000), rng.random(10_000)) == pytest.approx(1.0)
    # a row of weight 10 counts like ten rows of weight 1
    repeated = np.repeat(np.arange(10_000), np.where(np.arange(10_000) % 7 == 0, 10, 1))
    w = np.where(np.arange(10_000) % 7 == 0, 10.0, 1.0)
    assert weighted_lift(y, s, w) == pytest.approx(metrics.lift_at(y[repeated], s[repeated], 0.10), rel=0.01)
