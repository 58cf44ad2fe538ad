"""Stage one and the engine: suitability is law, suppressions, holding corrections, reasons, scale.

Most tests use a tiny booster trained here on synthetic customers (seconds), served through a
stub of the online store; the end-to-end tests at the bottom load the engine with
``load_engine`` over the session's test bank (Feast online store included). ``tiny_model`` and
``synthetic_features`` are imported by the other stage-two / cold-start test modules.
"""
from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml.core import suitability
from ml.core.catalogue import load_catalogue
from ml.engine.engine import Engine
from ml.features.layout import (
    FEEDBACK_COLUMNS,
    POSITION,
    STAGE_ONE_FEATURES,
    VECTOR_FEATURE,
)
from ml.features.online import CustomerNotFound
from ml.features.pairs import pair_matrix, product_table
from ml.recommendation.config import RecommendConfig
from ml.recommendation.contract import (
    ALREADY_HELD,
    SUPPRESSED_NOT_INTERESTED,
    RecommendationEngine,
    UnknownCustomer,
)
from ml.recommendation.explain import FALLBACK, family_contributions, reason_families
from ml.recommendation.rerankers import (
    ALREADY_OWNS,
    INTERESTED,
    NOT_INTERESTED,
    CategoryRule,
    OneStep,
)
from ml.recommendation.stage_one import (
    StageOne,
    apply_reported_holdings,
    held_from_features,
    suitability_inputs,
)
from ml.recommendation.stage_two import stage_two_batch
from ml.training.dataset import target_products
from ml.training.model import PropensityModel, fit_booster, fit_calibrator

CAT = load_catalogue()
PRODUCTS = target_products()


# ------------------------------------------------------------------------------------------------
# Synthetic customers and a tiny model (shared with the other test modules)
# ------------------------------------------------------------------------------------------------
def synthetic_features(n: int, seed: int = 0) -> np.ndarray:
    """(n, 75) float32 stage-one vectors with plausible values (NaN = never happened)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, len(STAGE_ONE_FEATURES)), dtype=np.float32)

    def put(name, values):
        x[:, POSITION[name]] = values

    put("age", rng.integers(16, 95, n))
    put("gender_male", rng.integers(0, 2, n))
    put("is_wuxi", rng.integers(0, 2, n))
    put("urbanisation_code", rng.integers(0, 3, n))
    put("education_level", rng.integers(1, 6, n))
    put("marital_status_code", rng.integers(0, 4, n))
    assets = np.exp(rng.normal(10.5, 2.0, n))
    put("log_assets", np.log1p(assets))
    put("asset_level", np.searchsorted([50_000, 200_000, 500_000, 2_000_000], assets, side="right") + 1)
    put("risk_tolerance", rng.integers(1, 6, n))
    put("card_tier", rng.integers(0, 4, n))
    put("tenure_years", rng.uniform(0, 30, n))
    held = rng.random((n, len(CAT))) < 0.06
    held[:, 0] = rng.random(n) < 0.95
    for j, pid in enumerate(CAT.ids):
        put(f"holds_{pid.lower()}", held[:, j])
    for cat in ("savings", "protection", "credit", "wealth"):
        put(f"n_held_{cat}", held[:, CAT.categories == cat].sum(axis=1))
        for w in ("30d", "90d", "180d"):
            put(f"n_{cat}_events_{w}", rng.poisson(0.3, n))
        put(f"amount_{cat}_180d", rng.exponential(5000, n))
        put(f"days_since_{cat}_event", np.where(rng.random(n) < 0.5, np.nan, rng.uniform(0, 400, n)))
    put("n_products_held", held.sum(axis=1))
    for name in ("n_opens_180d", "n_redeems_180d", "n_closes_180d"):
        put(name, rng.poisson(0.2, n))
    for name in ("has_mobile_banking", "has_wechat", "has_online_banking"):
        put(name, rng.integers(0, 2, n))
    put("n_channels_bound", x[:, POSITION["has_mobile_banking"]] + x[:, POSITION["has_wechat"]]
        + x[:, POSITION["has_online_banking"]])
    for name in ("n_everyday_txn_30d", "n_everyday_txn_90d", "n_everyday_txn_prev_90d"):
        put(name, rng.poisson(5, n))
    put("amount_everyday_90d", rng.exponential(3000, n))
    put("activity_trend", np.log((1 + x[:, POSITION["n_everyday_txn_90d"]])
                                 / (1 + x[:, POSITION["n_everyday_txn_prev_90d"]])))
    put("days_since_everyday_txn", rng.uniform(0, 90, n))
    salary = rng.random(n) < 0.4
    put("days_since_salary_credit", np.where(salary, rng.uniform(0, 120, n), np.nan))
    put("n_salary_credits_90d", np.where(salary, rng.integers(0, 4, n), 0))
    put("avg_salary_amount_180d", np.where(salary, rng.uniform(3000, 30000, n), np.nan))
    put("days_since_first_salary_credit", np.where(salary, rng.uniform(0, 900, n), np.nan))
    put("days_since_deposit_maturity", np.where(rng.random(n) < 0.2, rng.uniform(0, 200, n), np.nan))
    put("last_deposit_maturity_amount", np.where(np.isnan(x[:, POSITION["days_since_deposit_maturity"]]),
                                                 np.nan, rng.uniform(1e4, 5e5, n)))
    put("days_since_card_replacement", np.where(rng.random(n) < 0.3, rng.uniform(0, 400, n), np.nan))
    return x


def tiny_relations() -> dict[str, np.ndarray]:
    comp = np.zeros((len(CAT), len(CAT)))
    for a, b, s in (("CRD_MORTGAGE", "PRO_LIFE", 0.6), ("CRD_CARD", "CRD_CONSUMER", 0.5),
                    ("SAV_LCD", "WLT_WMP", 0.4)):
        comp[CAT.index(a), CAT.index(b)] = comp[CAT.index(b), CAT.index(a)] = s
    return {"complement": comp, "substitute": np.zeros_like(comp)}


def tiny_model(seed: int = 0, n: int = 3000, rounds: int = 40) -> PropensityModel:
    """A small calibrated booster over pair rows with planted structure (age fit, salary, complements)."""
    rng = np.random.default_rng(seed)
    x = synthetic_features(n, seed)
    relations = tiny_relations()
    rows = pair_matrix(x, product_table(PRODUCTS), relations)
    names = list(STAGE_ONE_FEATURES)
    f = lambda name: rows[:, names.index(name)]  # noqa: E731
    code = rows[:, len(names)]
    logit = (-4.0 - 0.04 * np.abs(rows[:, len(names) + 7 + 1]) + 1.5 * rows[:, -2]
             + 0.8 * (np.nan_to_num(f("days_since_salary_credit"), nan=999) < 60) + 0.3 * (code % 4)
             + 0.4 * np.clip(rows[:, len(names) + 7], 0, 2))
    y = (rng.random(len(rows)) < 1 / (1 + np.exp(-logit))).astype(int)
    params = {"num_leaves": 7, "min_child_samples": 20, "learning_rate": 0.2, "num_threads": 1}
    booster = fit_booster(rows, y, None, seed, rounds=rounds, params=params)
    calibrator = fit_calibrator(booster.predict(rows), y, None)
    return PropensityModel(booster, calibrator, list(PRODUCTS), relations, {"version": f"tiny-{seed}"})


class _Response:
    def __init__(self, values: dict):
        self.values = values

    def to_dict(self) -> dict:
        return {k: [v] for k, v in self.values.items()}


class FakeOnline:
    """The bits of ``ml.features.OnlineFeatures`` the engine uses, over an in-memory table."""

    def __init__(self, ids, x):
        self.rows = {cid: row for cid, row in zip(ids, x)}
        self.feedback: dict[str, dict] = {}
        self.pushed: list[pd.DataFrame] = []
        self.store = self

    def _values(self, customer_id):
        if customer_id not in self.rows:
            return {VECTOR_FEATURE: None}
        fb = self.feedback.get(customer_id, {})
        return {VECTOR_FEATURE: [float(v) for v in self.rows[customer_id]],
                **{c: fb.get(c) for c in FEEDBACK_COLUMNS}, "fb_last_response_ts": fb.get("fb_last_response_ts")}

    def get(self, customer_id, contact_ts=None):
        values = self._values(customer_id)
        if not values[VECTOR_FEATURE]:
            raise CustomerNotFound(customer_id)
        return values

    def get_feature_service(self, name):
        return name

    def get_online_features(self, features, entity_rows):
        return _Response(self._values(entity_rows[0]["customer_id"]))

    def push_feedback(self, frame: pd.DataFrame) -> None:
        self.pushed.append(frame)
        for row in frame.to_dict("records"):
            self.feedback[row["customer_id"]] = row


@pytest.fixture(scope="module")
def model() -> PropensityModel:
    return tiny_model()


@pytest.fixture(scope="module")
def customers() -> tuple[np.ndarray, np.ndarray]:
    x = synthetic_features(400, seed=11)
    ids = np.array([f"{i:032X}" for i in range(len(x))], dtype=object)
    return ids, x


@pytest.fixture()
def engine(model, customers, tmp_path) -> Engine:
    from ml.core.config import Paths

    ids, x = customers
    return Engine(Paths(data=tmp_path, reports=tmp_path), model, FakeOnline(ids, x), RecommendConfig(),
                  reranker=CategoryRule())


def _audit(lists_top: np.ndarray, s1: StageOne, x: np.ndarray, held: np.ndarray | None = None) -> int:
    """Violations of ranked lists against the rules on the *exact* inputs (no asset margin)."""
    exact = pd.DataFrame({"age": x[:, POSITION["age"]], "risk_tolerance": x[:, POSITION["risk_tolerance"]],
                          "assets_cny": np.expm1(x[:, POSITION["log_assets"]].astype(float))})
    held_all = held_from_features(x) | (held if held is not None else False)
    ranked = np.where(lists_top >= 0, s1.positions[np.maximum(lists_top, 0)], -1)
    return suitability.audit(ranked, exact, held_all).n_violations


# ------------------------------------------------------------------------------------------------
# Rows, calibration, ranking
# ------------------------------------------------------------------------------------------------
def test_rows_equal_pair_matrix(model):
    x = synthetic_features(300, seed=3)
    s1 = StageOne(model)
    assert np.array_equal(s1.rows(x), pair_matrix(x, product_table(PRODUCTS), model.relations), equal_nan=True)
    some = [2, 7, 11]
    assert np.array_equal(s1.rows(x[:5], some), pair_matrix(x[:5], product_table(PRODUCTS).iloc[some],
                                                             model.relations), equal_nan=True)
    raw = model.booster.predict(s1.rows(x))
    assert np.allclose(s1.calibrate(raw), model.calibrate(raw))


def test_stage_one_ranks_by_probability_times_value(model):
    x = synthetic_features(500, seed=4)
    s1 = StageOne(model)
    lists = s1.score_batch(x, 5)
    key = s1.ranking_key(lists.probabilities, lists.raw)
    for i in range(len(x)):
        top = lists.top[i][lists.top[i] >= 0]
        assert np.all(np.diff(key[i, top]) <= 0)
        rest = np.setdiff1d(np.flatnonzero(lists.allowed[i]), top)
        if len(rest) and len(top) == 5:
            assert key[i, top].min() >= key[i, rest].max()
        assert len(top) == min(5, lists.allowed[i].sum())


def test_value_override_changes_the_ranking(model):
    x = synthetic_features(300, seed=5)
    base = StageOne(model).score_batch(x, 1).top[:, 0]
    boosted = StageOne(model, RecommendConfig(product_values={"WLT_BOND_FUND": 1e7})).score_batch(x, 1)
    j = PRODUCTS.index("WLT_BOND_FUND")
    assert np.all(boosted.top[boosted.allowed[:, j], 0] == j)
    assert (base != boosted.top[:, 0]).any()
    with pytest.raises(ValueError):
        StageOne(model, RecommendConfig(product_values={"NOPE": 1.0}))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), k=st.integers(1, 10), adversarial=st.booleans())
def test_suitability_holds_for_any_scores(model, seed, k, adversarial):
    """Even when the model says +inf for every excluded product, no excluded product is listed."""
    x = synthetic_features(200, seed=seed)
    rng = np.random.default_rng(seed)
    # borderline assets: exactly at a product's minimum, or a hair below
    mins = np.array([CAT[p].min_investment_cny for p in PRODUCTS if CAT[p].min_investment_cny > 0])
    edge = rng.choice(mins, len(x)) * rng.choice([0.999999, 1.0, 1.000001], len(x))
    x[:50, POSITION["log_assets"]] = np.log1p(edge[:50])
    x[50:60, POSITION["age"]] = rng.choice([17, 18, 55, 56, 60, 61, 65, 66, np.nan], 10)
    x[60:70, POSITION["risk_tolerance"]] = np.nan
    s1 = StageOne(model)
    if adversarial:
        def predict(xx, mask=None):
            n = len(xx)
            p = np.where(np.ones((n, len(PRODUCTS)), bool), rng.random((n, len(PRODUCTS))), 0.0)
            elig = s1.eligibility(xx)
            p = np.where(s1.allowed(elig), p, np.inf)          # unsuitable cells score +inf
            return p, p
        s1.predict = predict
    lists = s1.score_batch(x, k)
    assert _audit(lists.top, s1, x) == 0
    shown = np.zeros_like(lists.allowed)
    np.put_along_axis(shown, np.maximum(lists.top, 0), lists.top >= 0, axis=1)
    answers = np.where(shown, rng.choice([INTERESTED, NOT_INTERESTED, ALREADY_OWNS], shown.shape), 0).astype(np.int8)
    owns = np.zeros((len(x), len(CAT)), bool)
    owns[:, s1.positions] = answers == ALREADY_OWNS

    class Wild:  # a re-ranker that tries to push everything, excluded or not
        version = "wild"

        def lift(self, sessions):
            return np.full(sessions.p.shape, 1e300)

    second = stage_two_batch(s1, Wild(), x, shown, answers, k, p_first=lists.probabilities, raw_first=lists.raw)
    assert _audit(second.top, s1, x, owns) == 0
    assert not np.any(np.take_along_axis(shown, np.maximum(second.top, 0), axis=1) & (second.top >= 0))
    if not adversarial:  # the nightly batch runs stage two in blocks of customers: same lists
        import ml.recommendation.stage_two as rec

        rule = CategoryRule()
        whole = stage_two_batch(s1, rule, x, shown, answers, k, p_first=lists.probabilities, raw_first=lists.raw)
        saved, rec.STAGE_TWO_CHUNK = rec.STAGE_TWO_CHUNK, 37
        try:
            blocks = stage_two_batch(s1, rule, x, shown, answers, k, p_first=lists.probabilities, raw_first=lists.raw)
        finally:
            rec.STAGE_TWO_CHUNK = saved
        np.testing.assert_array_equal(whole.top, blocks.top)
        np.testing.assert_array_equal(whole.allowed, blocks.allowed)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1000), values=st.lists(st.floats(0, 1), min_size=2, max_size=40))
def test_match_score_is_a_monotone_percentile(seed, values):
    from ml.recommendation.match_score import MatchReference

    rng = np.random.default_rng(seed)
    p = rng.beta(0.3, 30, size=(2000, 3))
    allowed = rng.random((2000, 3)) < 0.7
    ref = MatchReference.fit(p, allowed, ("A", "B", "C"), "v")
    for j in range(3):
        probe = np.sort(np.asarray(values))
        scores = ref.score(probe, j)
        assert np.all(np.diff(scores) >= 0) and scores.min() >= 0 and scores.max() <= 100
        share = np.mean(p[allowed[:, j], j] <= np.median(p[allowed[:, j], j]))
        assert abs(ref.score(np.array([np.median(p[allowed[:, j], j])]), j)[0] - 100 * share) <= 1.5


def test_match_score_agrees_with_the_ranking_key(model, customers, tmp_path):
    """The display score is a percentile of the expected value (the ranking key) among every suitable
    offer: within any list it never increases down the list, and it survives a save / load."""
    from ml.recommendation.match_score import MatchReference, log_scale

    s1 = StageOne(model)
    _, x = customers
    n = len(x)
    lists = s1.score_batch(x, 5)
    reference = MatchReference.fit(lists.probabilities, lists.allowed, s1.products, s1.model_version, s1.values)
    reference.save(tmp_path / "ref.json")
    s1.reference = MatchReference.load(tmp_path / "ref.json")
    assert s1.reference.value_quantiles is not None
    for i in range(n):
        top = lists.top[i][lists.top[i] >= 0]
        match = s1.match(lists.probabilities[i, top], top)
        assert np.all(np.diff(match) <= 0), (match, lists.probabilities[i, top] * s1.values[top])
    assert np.all(np.diff(log_scale(np.array([0.001, 0.5, 3.0, 40.0, 900.0]))) >= 0)


def test_asset_margin_fails_closed(model):
    x = synthetic_features(3, seed=1)
    x[:, POSITION["risk_tolerance"]] = 5
    x[:, POSITION["age"]] = 40
    x[:, POSITION["log_assets"]] = np.float32(np.log1p(10_000.0))   # WMP / pension minimum exactly
    inputs = suitability_inputs(x)
    assert (inputs["assets_cny"] < 10_000.0).all()
    assert (inputs["assets_cny"] > 10_000.0 * (1 - 1e-4)).all()


def test_reported_holdings_become_features_and_exclusions(model):
    x = synthetic_features(50, seed=6)
    j = CAT.index("CRD_MORTGAGE")
    x[:, POSITION["holds_crd_mortgage"]] = 0
    reported = np.zeros((len(x), len(CAT)), bool)
    reported[:, j] = True
    y = apply_reported_holdings(x, reported)
    assert (y[:, POSITION["holds_crd_mortgage"]] == 1).all()
    assert np.array_equal(y[:, POSITION["n_held_credit"]], x[:, POSITION["n_held_credit"]] + 1)
    assert np.array_equal(y[:, POSITION["n_products_held"]], x[:, POSITION["n_products_held"]] + 1)
    again = apply_reported_holdings(y, reported)                       # idempotent: held already
    assert np.array_equal(again, y, equal_nan=True)
    s1 = StageOne(model)
    lists = s1.score_batch(x, 10, reported=reported)
    assert not (lists.top == PRODUCTS.index("CRD_MORTGAGE")).any()
    # the complement effect of the reported mortgage reaches the life-insurance rows
    rows = s1.rows(lists.x)
    comp_col = len(STAGE_ONE_FEATURES) + 7 + 5
    life = PRODUCTS.index("PRO_LIFE")
    assert np.all(rows.reshape(len(x), len(PRODUCTS), -1)[:, life, comp_col] >= 0.6 - 1e-6)


# ------------------------------------------------------------------------------------------------
# The engine (stub online store)
# ------------------------------------------------------------------------------------------------
def test_engine_implements_the_protocol(engine):
    assert isinstance(engine, RecommendationEngine)
    versions = engine.versions()
    assert versions["model"] == "tiny-0" and versions["features"] == "stage_one_v1"


def test_stage_one_lists_are_complete_and_explained(engine, customers):
    ids, x = customers
    s1 = engine.stage_one_scorer
    for cid in ids[:60]:
        ranking = engine.stage_one(cid, 5, explain_exclusions=True)
        listed = [p.product_id for p in ranking.products]
        excluded = {e.product_id for e in ranking.excluded}
        assert len(listed) == len(set(listed)) <= 5
        assert not set(listed) & excluded
        assert len(listed) == min(5, len(PRODUCTS) - len(excluded))
        for item in ranking.products:
            assert 0 <= item.match_score <= 100 and 0.0 <= item.score <= 1.0
            assert item.reasons and item.tags == CAT[item.product_id].tags
        for e in ranking.excluded:
            assert e.reason_codes
    assert ranking.model_version == s1.model_version


def test_reasons_follow_the_contributions(engine, customers):
    ids, x = customers
    s1 = engine.stage_one_scorer
    checked = 0
    for cid, row in zip(ids[:40], x[:40]):
        for item in engine.stage_one(cid, 5).products:
            j = PRODUCTS.index(item.product_id)
            fam = family_contributions(s1.contributions(row, [j])[0])
            names = reason_families(item.reasons)
            if item.reasons == (FALLBACK,):
                continue
            from ml.recommendation.explain import FAMILIES
            values = [fam[FAMILIES.index(name)] for name in names]
            assert all(v > 0 for v in values)
            assert values == sorted(values, reverse=True)
            assert "gender" not in " ".join(r.text for r in item.reasons)
            checked += 1
    assert checked > 20


def test_not_interested_suppression_is_respected_and_shown(engine, customers):
    ids, _ = customers
    for cid in ids[:30]:
        first = engine.stage_one(cid, 5)
        if not first.products:
            continue
        top = first.products[0].product_id
        again = engine.stage_one(cid, 5, explain_exclusions=True, suppressed={top: SUPPRESSED_NOT_INTERESTED})
        assert top not in [p.product_id for p in again.products]
        codes = {e.product_id: e.reason_codes for e in again.excluded}
        assert SUPPRESSED_NOT_INTERESTED in codes[top]


def test_already_owns_is_never_recommended_again(engine, customers):
    ids, _ = customers
    for cid in ids[:30]:
        first = engine.stage_one(cid, 5)
        shown = [p.product_id for p in first.products]
        if len(shown) < 2:
            continue
        owned = shown[0]
        feedback = {owned: "already_owns", shown[1]: "interested"}
        second = engine.stage_two(cid, shown, feedback, 5, explain_exclusions=True,
                                  suppressed={owned: ALREADY_HELD})
        assert not set(shown) & {p.product_id for p in second.products}
        later = engine.stage_one(cid, 10, explain_exclusions=True, suppressed={owned: ALREADY_HELD})
        assert owned not in [p.product_id for p in later.products]
        assert ALREADY_HELD in {e.product_id: e.reason_codes for e in later.excluded}[owned]
        # even if serving forgot the suppression, an "already owns" answer is a holding correction
        forgot = engine.stage_two(cid, shown[1:], {owned: "already_owns"}, 10)
        assert owned not in [p.product_id for p in forgot.products]


@pytest.mark.parametrize("strategy", [OneStep(), CategoryRule()])
def test_stage_two_never_reshows(model, customers, tmp_path, strategy):
    from ml.core.config import Paths

    ids, x = customers
    eng = Engine(Paths(data=tmp_path, reports=tmp_path), model, FakeOnline(ids, x), reranker=strategy)
    rng = np.random.default_rng(0)
    for cid in ids[:40]:
        shown = [p.product_id for p in eng.stage_one(cid, 5).products]
        answers = {p: rng.choice(["interested", "not_interested", "already_owns"]) for p in shown}
        second = eng.stage_two(cid, shown, answers, 5)
        assert not set(shown) & {p.product_id for p in second.products}
        assert second.model_version.endswith(strategy.version)


def test_stage_two_by_interest_with_a_learned_reranker(model, customers, tmp_path):
    from test_rerank import simulate

    from ml.core.config import Paths
    from ml.recommendation.rerank_training import TrainingSet, fit

    sessions, second, _ = simulate(1500, seed=9)
    learned = fit(TrainingSet(sessions, np.arange(1500).astype(str), second), tiny_relations(),
                  metadata={"trained_on": "synthetic"})
    ids, x = customers
    eng = Engine(Paths(data=tmp_path, reports=tmp_path), model, FakeOnline(ids, x), reranker=learned)
    assert eng.versions()["stage_two_objective"] == "interest"
    for cid in ids[:40]:
        shown = [p.product_id for p in eng.stage_one(cid, 5).products]
        if not shown:
            continue
        second = eng.stage_two(cid, shown, {shown[0]: "interested"}, 5)
        scores = [p.score for p in second.products]
        assert scores == sorted(scores, reverse=True)                 # ranked by P(interested | answers)
        assert all(p.match_score == round(100 * p.score) for p in second.products)
        assert not set(shown) & {p.product_id for p in second.products}
        same = [p for p in second.products if CAT[p.product_id].category == CAT[shown[0]].category]
        assert all(p.reasons[0].code in ("FEEDBACK_SAME_CATEGORY", "FEEDBACK_COMPLEMENT") for p in same)


def test_k_is_bounded(engine, customers):
    ids, _ = customers
    assert len(engine.stage_one(ids[0], 50).products) <= 10
    assert len(engine.stage_one(ids[0], 0).products) <= 5


def test_unknown_customer(engine):
    with pytest.raises(UnknownCustomer):
        engine.stage_one("F" * 32, 5)
    with pytest.raises(UnknownCustomer):
        engine.stage_two("F" * 32, [], {}, 5)
    assert engine.customer_profile("F" * 32) is None


def test_push_feedback_sets_the_aggregates_from_all_answers(engine, customers):
    ids, _ = customers
    at = datetime(2025, 7, 2, 9, 30, tzinfo=timezone.utc)
    row = {"feedback_id": "f1", "recommendation_id": "r1", "customer_id": ids[0], "product_id": "WLT_WMP",
           "manager_id": "m", "response": "not_interested", "recorded_at": at, "idempotency_key": "k#WLT_WMP"}
    engine.push_feedback([row])
    assert engine.customer_profile(ids[0])["fb_not_interested_wealth"] == 1
    every = [row, {**row, "feedback_id": "f2", "product_id": "PRO_CAR", "response": "interested"},
             {**row, "feedback_id": "f3", "product_id": "WLT_BOND_FUND"},
             {**row, "feedback_id": "f4", "customer_id": ids[1]}]
    engine.push_feedback(every)
    engine.push_feedback(every)  # the rows are all of the customers' answers: pushing again changes nothing
    profile = engine.customer_profile(ids[0])
    assert profile["fb_not_interested_wealth"] == 2 and profile["fb_interested_protection"] == 1
    assert profile["fb_last_response_ts"].startswith("2025-07-02")
    assert set(FEEDBACK_COLUMNS) <= set(profile) and profile["age"] is not None
    assert engine.customer_profile(ids[1])["fb_not_interested_wealth"] == 1


# ------------------------------------------------------------------------------------------------
# End to end over the test bank's Feast store (tiny model registered in a private data dir)
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bank_dir(feature_data_dir, tmp_path_factory) -> Path:
    """A private data dir: the test bank's raw/, marts/, oracle/ and Feast registry, a copy of the
    online store (pushes stay private) and its own model registry with the tiny model."""
    from ml.training.registry import Registry

    root = tmp_path_factory.mktemp("rec_bank")
    for name in ("raw", "marts", "oracle"):
        (root / name).symlink_to(feature_data_dir / name)
    (root / "feast").mkdir()
    for name in ("registry.db", "online_store.db"):
        shutil.copy(feature_data_dir / "feast" / name, root / "feast" / name)
    (root / "feast" / "sources").symlink_to(feature_data_dir / "feast" / "sources")
    registry = Registry(root / "models")
    folder = registry.new_version()
    tiny_model(seed=1).save(folder)
    registry.promote(folder.name)
    return root


def test_engine_end_to_end_over_feast(bank_dir, tmp_path):
    import time

    from ml.core.config import Paths
    from ml.engine.loading import load_engine
    from ml.features.snapshot import snapshot_features
    from ml.recommendation.batch import audit_lists

    engine = load_engine(bank_dir)
    paths = Paths(data=bank_dir, reports=tmp_path)
    ids, x = snapshot_features(paths, limit=300)
    tops, took = [], []
    for cid in ids:
        started = time.perf_counter()
        ranking = engine.stage_one(cid, 5)
        took.append(time.perf_counter() - started)
        tops.append([engine.stage_one_scorer.products.index(p.product_id) for p in ranking.products]
                    + [-1] * (5 - len(ranking.products)))
    audit = audit_lists(paths, ids, x, [(np.array(tops), None)], engine.stage_one_scorer)
    assert audit["violations"] == 0 and audit["recommendations"] > 300
    assert np.median(took) < 0.25                                      # generous: shared CI machines
    cid = ids[0]
    shown = [p.product_id for p in engine.stage_one(cid, 5).products]
    engine.push_feedback([{"feedback_id": "x", "recommendation_id": "r", "customer_id": cid,
                           "product_id": shown[0], "manager_id": "m", "response": "interested",
                           "recorded_at": datetime.now(timezone.utc), "idempotency_key": "k"}])
    category = CAT[shown[0]].category
    assert engine.customer_profile(cid)[f"fb_interested_{category}"] >= 1
    second = engine.stage_two(cid, shown, {shown[0]: "interested"}, 5)
    assert not set(shown) & {p.product_id for p in second.products}
    # cold start through the engine: the API's product definition, targets from the whole snapshot
    definition = {"product_id": "WLT_ESG_FUND", "name": "ESG fund", "name_zh": None, "category": "wealth",
                  "risk_level": "R3", "min_investment_cny": 1000.0, "expected_return_pct": 5.0,
                  "target_age_min": 25, "target_age_max": 60, "tags": ["balanced"], "annual_value_cny": None}
    result = engine.cold_start(definition, 25)
    assert len(result.targets) == 25 and len({t.customer_id for t in result.targets}) == 25
    assert result.forecast.adopters_low <= result.forecast.expected_adopters <= result.forecast.adopters_high
    assert result.conflicts and result.model_version == engine.stage_one_scorer.model_version


def test_batch_scoring_and_full_population_check(bank_dir, tmp_path):
    import json

    from ml.core.config import Paths
    from ml.recommendation.batch import batch_score

    paths = Paths(data=bank_dir, reports=tmp_path)
    result = batch_score(paths, k=5, sample=4000)
    assert result["suitability"]["violations"] == 0
    assert result["suitability"]["customers_checked"] == 4000
    assert result["suitability"]["stage_two_reshown"] == 0
    written = json.loads((tmp_path / "metrics.json").read_text())["suitability"]
    assert written["violations"] == 0
    scores = pd.read_parquet(bank_dir / "scores" / "stage_one.parquet")
    assert scores.groupby("customer_id")["rank"].max().max() <= 5
    assert (bank_dir / "scores" / "match_reference.json").exists()
    from ml.engine.loading import load_engine
    assert load_engine(bank_dir).versions()["match_reference"].startswith("tiny-1:")


def test_shown_mask_ignores_the_padding_of_short_lists():
    from ml.recommendation.stage_two import shown_mask

    top = np.array([[2, 0, -1, -1], [-1, -1, -1, -1], [1, 3, 0, 2]])
    expected = np.array([[True, False, True, False], [False] * 4, [True] * 4])
    np.testing.assert_array_equal(shown_mask(top, 4), expected)


def test_nightly_table_answers_exactly_as_live_scoring(bank_dir, tmp_path):
    """Stage one from the nightly table (``ml.recommendation.stage_one_table``) equals live scoring over Feast:
    same products, scores, match scores, reasons and exclusions, with and without "not interested"
    suppressions; a reported holding, a customer outside the table and a stale table score live."""
    from ml.core.config import Paths
    from ml.engine.loading import load_engine
    from ml.recommendation.batch import batch_score
    from ml.recommendation.stage_one_table import StageOneTable

    batch_score(Paths(data=bank_dir, reports=tmp_path), k=5, sample=600, check=False)
    engine = load_engine(bank_dir)
    table = engine.table
    assert table is not None and engine.versions()["stage_one_table"] == table.version()
    ids = [i.decode() for i in table.ids[::6]]
    compared = 0
    for cid in ids:
        for explain in (False, True):
            fast = engine.stage_one(cid, 10, explain_exclusions=explain)
            shown = [p.product_id for p in fast.products]
            suppressed = {p: SUPPRESSED_NOT_INTERESTED for p in shown[:3:2]}
            fast_suppressed = engine.stage_one(cid, 5, explain_exclusions=explain, suppressed=suppressed)
            engine.table = None
            assert fast == engine.stage_one(cid, 10, explain_exclusions=explain)
            assert fast_suppressed == engine.stage_one(cid, 5, explain_exclusions=explain, suppressed=suppressed)
            engine.table = table
            compared += bool(shown)
    assert compared > 150
    assert engine._table_row(ids[0], {"PRO_CAR": ALREADY_HELD}) is None     # features change: live
    assert table.row("F" * 32) is None and table.row("F" * 40) is None
    assert engine.stage_one(ids[0], 5).model_version == engine.stage_one_scorer.model_version

    s1 = engine.stage_one_scorer
    source = Path(table.meta["feature_source"]["path"])
    assert table.problems(s1.model_version, s1.products, s1.values, source) == []
    assert table.problems("another-model", s1.products, s1.values, source)
    assert table.problems(s1.model_version, s1.products, s1.values * 2, source)
    assert table.problems(s1.model_version, s1.products, s1.values, tmp_path / "rebuilt.parquet")
    reloaded = StageOneTable.load(bank_dir / "scores")
    assert reloaded is not None and reloaded.meta == table.meta
