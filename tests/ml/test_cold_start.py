"""New-product cold start: definitions, conflicts and warnings, suitable targets, the forecast."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_recommend import synthetic_features, tiny_model

from ml.cold_start.analyser import ColdStartAnalyser
from ml.cold_start.conflicts import conflicts, warnings
from ml.cold_start.definition import extended_catalogue, to_product
from ml.cold_start.forecast import ForecastAssumptions, ProductHistory, forecast
from ml.core import suitability
from ml.core.catalogue import load_catalogue
from ml.core.config import Paths
from ml.evaluation.cold_start import precision_curve
from ml.features.layout import POSITION
from ml.recommendation.contract import ColdStartResult

CAT = load_catalogue()
ESG = {"product_id": "WLT_ESG_FUND", "name": "ESG balanced fund", "category": "wealth", "risk_level": "R3",
       "min_investment_cny": 1000, "expected_return_pct": 5.0, "target_age_min": 25, "target_age_max": 60,
       "tags": ["balanced", "diversified", "sustainable"]}


@pytest.fixture(scope="module")
def history() -> ProductHistory:
    adopters = {p: 20 + 5 * i for i, p in enumerate(CAT.ids)}
    at_risk = {p: 10_000 for p in CAT.ids}
    return ProductHistory(adopters, at_risk, ("2024-07-01",))


@pytest.fixture(scope="module")
def analyser(history, tmp_path_factory) -> ColdStartAnalyser:
    x = synthetic_features(3000, seed=8)
    ids = np.array([f"{i:032X}" for i in range(len(x))], dtype=object)
    root = tmp_path_factory.mktemp("cold")
    return ColdStartAnalyser(Paths(data=root, reports=root), tiny_model(seed=3), ids, x, history=history)


def test_definitions_parse_and_must_be_new():
    product = to_product(ESG)
    assert product.risk_level == 3 and product.tags == ("balanced", "diversified", "sustainable")
    assert to_product({**ESG, "risk_level": 4, "tags": "a|b"}).tags == ("a", "b")
    with pytest.raises(ValueError):
        to_product({**ESG, "category": "crypto"})
    with pytest.raises(ValueError):
        extended_catalogue(to_product({**ESG, "product_id": "WLT_WMP"}))


def test_conflicts_find_the_twin_and_the_cross_category_substitute():
    found = {c.product_id: c for c in conflicts(to_product(ESG), CAT)}
    assert found["WLT_MIXED_FUND"].relation == "substitute" and found["WLT_MIXED_FUND"].risk == "high"
    assert all(c.risk in ("high", "medium", "low") and 0 <= c.strength <= 1 for c in found.values())
    pension = to_product({"product_id": "PRO_RETIRE", "name": "retirement income insurance",
                          "category": "protection", "risk_level": "R2", "min_investment_cny": 10000,
                          "target_age_min": 40, "target_age_max": 65, "tags": ["retirement", "long-term"]})
    found = {c.product_id: c for c in conflicts(pension, CAT)}
    assert found["WLT_PENSION"].relation == "substitute"            # across categories: shared role
    assert found["PRO_ANNUITY"].relation == "substitute"
    # complements of the nearest existing product become cross-sell opportunities
    comp = np.zeros((len(CAT), len(CAT)))
    comp[CAT.index("WLT_MIXED_FUND"), CAT.index("SAV_LCD")] = 0.5
    found = {c.product_id: c for c in conflicts(to_product(ESG), CAT, comp)}
    assert found["SAV_LCD"].relation == "complement" and found["SAV_LCD"].risk == "low"


def test_warnings():
    x = synthetic_features(500, seed=2)
    risky = to_product({**ESG, "product_id": "WLT_TECH", "risk_level": "R5", "target_age_max": 80,
                        "min_investment_cny": 5_000_000, "expected_return_pct": 20.0})
    codes = {w["code"] for w in warnings(risky, x)}
    assert {"AGE_LIMIT_HIGH_RISK", "MIN_INVESTMENT_REACH", "RETURN_ABOVE_RISK_PEERS"} <= codes
    crowded = to_product({**ESG, "risk_level": "R2"})                # four wealth products at R2 already
    assert "RISK_CONCENTRATION" in {w["code"] for w in warnings(crowded)}
    assert not {w["code"] for w in warnings(to_product(ESG), x)} & {"AGE_LIMIT_HIGH_RISK", "BELOW_ADULT_AGE"}


@pytest.mark.parametrize("scorer", ["model", "rule"])
def test_targets_are_all_suitable_and_explained(analyser, scorer):
    product = to_product({**ESG, "risk_level": "R4", "min_investment_cny": 50_000})
    targets = analyser.targets(product, 300, scorer)
    assert 0 < len(targets) <= 300 and targets.customer_id.is_unique
    rows = pd.Index(analyser.customer_ids).get_indexer(targets.customer_id)
    x = analyser.x[rows]
    exact = pd.DataFrame({"age": x[:, POSITION["age"]], "risk_tolerance": x[:, POSITION["risk_tolerance"]],
                          "assets_cny": np.expm1(x[:, POSITION["log_assets"]].astype(float))})
    ext = extended_catalogue(product)
    assert suitability.eligibility(exact, catalogue=ext).allowed[:, -1].all()
    assert (np.diff(targets.score.to_numpy()) <= 1e-12).all()
    assert targets.match_score.between(0, 100).all()
    assert (np.diff(targets.match_score.to_numpy()) <= 0).all()
    assert all(len(r) > 0 for r in targets.reasons)


def test_forecast_is_a_range_with_explicit_assumptions(history):
    product = to_product(ESG)
    fc = forecast(product, 5000, history)
    assert 0 <= fc["adopters_low"] <= fc["expected_adopters"] <= fc["adopters_high"]
    assert fc["revenue_low_cny"] <= fc["expected_revenue_cny"] <= fc["revenue_high_cny"]
    stated = fc["assumptions"]
    for key in ("horizon_months", "contact_rate", "contact_uplift", "margin", "average_balance_cny",
                "uptake_rate_3m", "similar_products", "suitable_population"):
        assert key in stated
    assert fc["similar_products"][0] == "WLT_MIXED_FUND"
    double = forecast(product, 5000, history, ForecastAssumptions(margin=2 * stated["margin"]))
    assert double["expected_revenue_cny"] == pytest.approx(2 * fc["expected_revenue_cny"], rel=1e-3)
    organic = forecast(product, 5000, history, ForecastAssumptions(contact_rate=0.0))
    assert organic["expected_adopters"] < fc["expected_adopters"]
    longer = forecast(product, 5000, history, ForecastAssumptions(horizon_months=24))
    assert longer["expected_adopters"] > fc["expected_adopters"]
    with pytest.raises(ValueError):
        ForecastAssumptions.from_mapping({"conversion": 0.5})


def test_engine_view_carries_risk_tags_warnings_and_assumptions(analyser):
    result = analyser.analyse(ESG, n=10, assumptions={"contact_rate": 0.1})
    assert isinstance(result, ColdStartResult) and len(result.targets) == 10
    risk = {c.product_id: c.risk for c in result.conflicts}
    assert risk["WLT_MIXED_FUND"] == "high" and set(risk.values()) <= {"high", "medium", "low"}
    assert all(c.risk == "low" for c in result.conflicts if c.relation == "complement")
    assert not any(c.reason.startswith("[") for c in result.conflicts)       # the tag is a field, not text
    crowded = analyser.analyse({**ESG, "risk_level": "R2"}, n=1)
    assert [w.code for w in crowded.warnings] == [w["code"] for w in warnings(to_product({**ESG, "risk_level": "R2"}),
                                                                             analyser.x, None)][:len(crowded.warnings)]
    assert "RISK_CONCENTRATION" in {w.code for w in crowded.warnings}
    assert all(w.severity in ("high", "medium") and w.message for w in crowded.warnings)
    assert not any(a.startswith("warning") for a in crowded.forecast.assumptions)
    assert result.forecast.assumptions and any("contact rate: 10%" in a for a in result.forecast.assumptions)
    assert result.forecast.adopters_low <= result.forecast.expected_adopters <= result.forecast.adopters_high
    assert all(t.reasons for t in result.targets)


def test_history_from_the_marts(warehouse_data_dir):
    paths = Paths(data=warehouse_data_dir, reports=warehouse_data_dir)
    history = ProductHistory.from_marts(paths, exclude=["PRO_CAR"])
    assert "PRO_CAR" not in history.at_risk
    rates = [history.rate(p) for p in history.at_risk if history.at_risk[p] > 0]
    assert rates and all(0 <= r < 0.2 for r in rates)
    assert history.at_risk["WLT_STOCK_FUND"] < history.at_risk["WLT_BOND_FUND"]  # R5: fewer suitable


def test_precision_curve():
    score = np.array([0.9, 0.8, 0.8, 0.1])
    y = np.array([1, 0, 1, 0])
    curve = precision_curve(score, y, [1, 2, 3, 10], tie_break=np.array([0, 1, 2, 3]))
    assert curve == {1: 1.0, 2: 0.5, 3: pytest.approx(2 / 3), 10: 0.5}


def test_precision_interval_is_exact_for_the_hits_and_brackets_the_lift():
    import numpy as np

    from ml.evaluation.cold_start import _precision_interval

    rng = np.random.default_rng(0)
    score = rng.random(20_000)
    y = (rng.random(20_000) < 0.01 + 0.2 * (score > 0.99)).astype(float)
    out = _precision_interval(score, y, 200, np.arange(20_000))
    order = np.argsort(-score)
    assert out["hits"] == int(y[order[:200]].sum()) and out["n"] == 200
    lo, hi = out["precision_ci"]
    assert lo < out["hits"] / 200 < hi
    lift = (out["hits"] / 200) / y.mean()
    assert out["lift_ci"][0] < lift < out["lift_ci"][1]
