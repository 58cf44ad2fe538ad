"""Stage-two strategies: the fixed rule, the learned re-ranker (it must learn what feedback means),
persistence and the feedback-export log format it trains from."""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from test_recommend import tiny_relations

from ml.core.catalogue import load_catalogue
from ml.evaluation.simulated_logs import write_export
from ml.recommendation.rerank_training import (
    TrainingSet,
    fit,
    load_logs,
    sessions_from_logs,
)
from ml.recommendation.rerankers import (
    ALREADY_OWNS,
    CROSS_SELL,
    INTERESTED,
    NOT_INTERESTED,
    CategoryRule,
    LearnedReranker,
    OneStep,
    PriorOnly,
    Sessions,
    relation_inputs,
)
from ml.training.dataset import target_products

CAT = load_catalogue()
PRODUCTS = tuple(target_products())
CATS = np.array([CAT[p].category for p in PRODUCTS])


def simulate(n: int, seed: int, k: int = 5, taste_sd: float = 1.5):
    """Sessions where interest = stage-one propensity + a latent taste shared within a category."""
    rng = np.random.default_rng(seed)
    P = len(PRODUCTS)
    p = 1 / (1 + np.exp(-rng.normal(-4.5, 1.0, (n, P))))
    taste = rng.normal(0, taste_sd, (n, len(CROSS_SELL)))
    cat_index = np.array([CROSS_SELL.index(c) for c in CATS])
    z = -1.0 + 0.6 * (np.log(p) - np.log1p(-p)) + 2.0 + taste[:, cat_index]
    interest = 1 / (1 + np.exp(-z))
    owns = rng.random((n, P)) < 0.02
    answer = np.where(owns, ALREADY_OWNS, np.where(rng.random((n, P)) < interest, INTERESTED, NOT_INTERESTED))
    order = np.argsort(-p, axis=1)
    first = np.zeros((n, P), np.int8)
    second = np.zeros((n, P), np.int8)
    rows = np.arange(n)[:, None]
    first[rows, order[:, :k]] = answer[rows, order[:, :k]]
    explore = np.array([rng.permutation(order[i, k:])[:k] for i in range(n)])
    second[rows, explore] = answer[rows, explore]
    return Sessions(PRODUCTS, p, first), second, interest


@pytest.fixture(scope="module")
def learned():
    sessions, second, _ = simulate(4000, seed=1)
    data = TrainingSet(sessions, np.arange(4000).astype(str), second)
    return fit(data, tiny_relations(), metadata={"trained_on": "synthetic"})


def test_one_step_and_rule_lifts():
    sessions, _, _ = simulate(50, seed=2)
    assert np.all(OneStep().lift(sessions) == 1.0)
    rule = CategoryRule(up=2.0, down=0.5)
    lift = rule.lift(sessions)
    ans = sessions.answers
    for i in range(50):
        for j, c in enumerate(CATS):
            same = CATS == c
            expect = 2.0 ** np.sum(ans[i, same] == INTERESTED) * 0.5 ** np.sum(ans[i, same] == NOT_INTERESTED)
            assert lift[i, j] == pytest.approx(expect)
    prior = np.zeros((50, 3, 4))
    prior[:, 1, CROSS_SELL.index("wealth")] = 1                    # one earlier "not interested" in wealth
    with_prior = rule.lift(Sessions(PRODUCTS, sessions.p, ans, prior))
    assert np.allclose(with_prior[:, CATS == "wealth"], 0.5 * lift[:, CATS == "wealth"])


def test_learned_reranker_learns_the_category_taste(learned):
    sessions, second, interest = simulate(3000, seed=3)
    lift = learned.lift(sessions)
    ans = sessions.answers
    for c in CROSS_SELL:
        liked = (ans[:, CATS == c] == INTERESTED).any(axis=1) & ~(ans[:, CATS == c] == NOT_INTERESTED).any(axis=1)
        disliked = (ans[:, CATS == c] == NOT_INTERESTED).sum(axis=1) >= 2
        cols = CATS == c
        if liked.any() and disliked.any():
            assert np.median(lift[liked][:, cols]) > np.median(lift[disliked][:, cols])
    # better held-out fit than the prior alone, and better second lists than the one-step list
    base, full = learned.logits(sessions)
    rows, cols = np.nonzero(second > 0)
    y = (second[rows, cols] == INTERESTED).astype(float)
    def loss(z):
        q = 1 / (1 + np.exp(-z))
        return -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))
    assert loss(full[rows, cols]) < loss(base[rows, cols])
    remaining = sessions.answers == 0

    def expected_hits(score):
        score = np.where(remaining, score, -np.inf)
        top = np.argsort(-score, axis=1)[:, :5]
        return np.take_along_axis(interest, top, axis=1).sum(axis=1).mean()
    assert expected_hits(sessions.p * lift) > 1.05 * expected_hits(sessions.p)


def test_interest_objective_strategies(learned):
    sessions, _, interest = simulate(2000, seed=6)
    p = sessions.p
    prior = PriorOnly(learned)
    assert np.allclose(prior.interest(sessions, p), learned.base_interest(p))
    assert np.allclose(learned.interest(sessions, p), learned.predict(sessions))
    rule = CategoryRule(prior=learned)
    assert np.allclose(rule.interest(sessions, p), np.clip(learned.base_interest(p) * rule.lift(sessions), 0, 1))
    assert CategoryRule().interest is None and OneStep.interest is None
    remaining = sessions.answers == 0

    def expected_hits(score):
        top = np.argsort(-np.where(remaining, score, -np.inf), axis=1)[:, :5]
        return np.take_along_axis(interest, top, axis=1).sum(axis=1).mean()
    assert expected_hits(learned.interest(sessions, p)) > expected_hits(prior.interest(sessions, p))


def test_lift_is_one_without_feedback(learned):
    sessions, _, _ = simulate(100, seed=4)
    empty = Sessions(PRODUCTS, sessions.p, np.zeros_like(sessions.answers))
    assert np.allclose(learned.lift(empty), 1.0)


def test_save_and_load_round_trip(learned, tmp_path):
    path = tmp_path / "reranker.json"
    learned.save(path)
    again = LearnedReranker.load(path)
    sessions, _, _ = simulate(200, seed=5)
    assert np.allclose(again.lift(sessions), learned.lift(sessions))
    assert again.version == learned.version == "learned-synthetic"


def test_relation_inputs_follow_the_products():
    comp, sim = relation_inputs(PRODUCTS, tiny_relations())
    i, j = PRODUCTS.index("CRD_MORTGAGE"), PRODUCTS.index("PRO_LIFE")
    assert comp[i, j] == pytest.approx(0.6) and np.all(np.diag(comp) == 0) and np.all(np.diag(sim) == 0)
    same = PRODUCTS.index("WLT_BOND_FUND"), PRODUCTS.index("WLT_WMP")
    other = PRODUCTS.index("WLT_BOND_FUND"), PRODUCTS.index("CRD_CARD")
    assert sim[same] > sim[other]


def test_sessions_from_the_feedback_export(tmp_path):
    at = datetime(2025, 2, 1, 10)
    recs = [("R1", "C1", "m", 1, None, "PRO_CAR", 1, 0.1, 50, "v", at),
            ("R1", "C1", "m", 1, None, "WLT_WMP", 2, 0.05, 40, "v", at),
            ("R2", "C1", "m", 2, "R1", "CRD_CARD", 1, 0.02, 30, "v", at + timedelta(minutes=5)),
            ("R3", "C2", "m", 1, None, "PRO_LIFE", 1, 0.1, 50, "v", at)]            # no stage two: ignored
    fb = [("F1", "R1", "C1", "PRO_CAR", "m", "interested", at, "k1"),
          ("F2", "R1", "C1", "WLT_WMP", "m", "interested", at, "k2"),
          ("F3", "R1", "C1", "WLT_WMP", "m", "not_interested", at + timedelta(minutes=1), "k3"),  # latest wins
          ("F4", "R2", "C1", "CRD_CARD", "m", "already_owns", at + timedelta(minutes=6), "k4")]
    write_export(tmp_path, recs, fb, {"source": "test"})
    frame, first, second = sessions_from_logs(*load_logs(tmp_path), PRODUCTS)
    assert list(frame.customer_id) == ["C1"]
    assert first[0, PRODUCTS.index("PRO_CAR")] == INTERESTED
    assert first[0, PRODUCTS.index("WLT_WMP")] == NOT_INTERESTED
    assert second[0, PRODUCTS.index("CRD_CARD")] == ALREADY_OWNS
    assert (first > 0).sum() == 2 and (second > 0).sum() == 1
    exported = pd.read_parquet(tmp_path / "recommendations")
    from serving.export import SCHEMAS
    assert list(exported.columns) == SCHEMAS["recommendations"].names
