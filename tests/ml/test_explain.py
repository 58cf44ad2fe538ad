"""Contributions -> reasons: local accuracy, families, value-aware texts, agreement with TreeSHAP."""
from __future__ import annotations

import numpy as np
import pytest
from test_recommend import synthetic_features, tiny_model

from ml.core.catalogue import load_catalogue
from ml.features.layout import POSITION
from ml.features.pairs import pair_matrix, product_table
from ml.recommendation.explain import (
    CODE_FAMILY,
    F_INDEX,
    FALLBACK,
    FAMILIES,
    FAMILY_MATRIX,
    FEATURES,
    HIDDEN,
    REASON_CODES,
    PathExplainer,
    family_contributions,
    reason_families,
    reasons,
)
from ml.training.dataset import target_products

CAT = load_catalogue()
PRODUCTS = target_products()


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=2)


@pytest.fixture(scope="module")
def rows(model):
    x = synthetic_features(120, seed=21)
    return x, pair_matrix(x, product_table(PRODUCTS), model.relations)


def test_path_contributions_sum_to_the_raw_score(model, rows):
    _, r = rows
    contrib = PathExplainer(model.booster).contributions(r)
    raw = model.booster.predict(r, raw_score=True)
    assert contrib.shape == (len(r), len(FEATURES) + 1)
    assert np.allclose(contrib.sum(axis=1), raw, atol=1e-5)


def test_path_families_agree_with_treeshap(model, rows):
    _, r = rows
    path = family_contributions(PathExplainer(model.booster).contributions(r))
    shap = family_contributions(model.booster.predict(r, pred_contrib=True))
    assert np.corrcoef(path.ravel(), shap.ravel())[0, 1] > 0.8
    top3 = np.argsort(-path, axis=1)[:, :3]
    assert np.mean([shap[i].argmax() in top3[i] for i in range(len(r))]) > 0.6


def test_every_feature_has_one_family_or_is_hidden():
    counts = FAMILY_MATRIX[:-1].sum(axis=1)
    hidden = np.array([name in HIDDEN for name in FEATURES])
    assert np.all(counts[~hidden] == 1) and np.all(counts[hidden] == 0)
    assert FAMILY_MATRIX[-1].sum() == 0                       # the bias is nobody's reason
    assert set(CODE_FAMILY.values()) <= set(FAMILIES)
    assert set(CODE_FAMILY) | {FALLBACK.code} == set(REASON_CODES)


def _contrib(**families: float) -> np.ndarray:
    """A contribution row where each named family gets its value on its first feature."""
    from ml.recommendation.explain import FAMILY_FEATURES

    c = np.zeros(len(FEATURES) + 1)
    for family, value in families.items():
        c[F_INDEX[FAMILY_FEATURES[family][0]]] = value
    return c


def _customer(**values: float) -> np.ndarray:
    x = synthetic_features(1, seed=5)[0].astype(np.float64)
    for name, value in values.items():
        x[POSITION[name]] = value
    return x


def test_reasons_are_ordered_capped_and_value_aware():
    product = CAT["PRO_LIFE"]
    x = _customer(age=40, days_since_salary_credit=12, days_since_first_salary_credit=500,
                  avg_salary_amount_180d=8000, days_since_card_replacement=np.nan)
    out = reasons(_contrib(salary=0.9, age=0.5, card=0.7, risk=-0.2, everyday=0.1), x, product, max_reasons=2)
    # the card family contributes, but the customer had no card replacement: no such reason
    assert [r.code for r in out] == ["SALARY_CREDIT_RECENT", "AGE_FITS_PRODUCT"]
    assert "12 days ago" in out[0].text and "25-60" in out[1].text
    stale = _customer(days_since_salary_credit=200, days_since_first_salary_credit=900)
    assert "salary" not in reason_families(reasons(_contrib(salary=1.0), stale, product))


def test_reasons_never_empty_and_never_about_gender():
    product = CAT["WLT_BOND_FUND"]
    x = _customer()
    assert reasons(_contrib(risk=-1.0), x, product) == (FALLBACK,)
    c = np.zeros(len(FEATURES) + 1)
    c[F_INDEX["gender_male"]] = 5.0
    c[F_INDEX["product_code"]] = 5.0
    assert reasons(c, x, product) == (FALLBACK,)


def test_holdings_reason_names_the_complement():
    product = CAT["PRO_LIFE"]
    x = _customer(holds_crd_mortgage=1)
    c = np.zeros(len(FEATURES) + 1)
    c[F_INDEX["complement_score"]] = 1.0
    complement = np.zeros(len(CAT))
    complement[CAT.index("CRD_MORTGAGE")] = 0.6
    (first,) = reasons(c, x, product, complement=complement, max_reasons=1)
    assert first.code == "HOLDS_COMPLEMENT" and "Home mortgage" in first.text


def test_trigger_texts():
    product = CAT["WLT_WMP"]
    x = _customer(days_since_deposit_maturity=20, last_deposit_maturity_amount=123_456,
                  days_since_card_replacement=10)
    codes = [r.code for r in reasons(_contrib(deposit=1.0, card=0.5), x, product)]
    assert codes == ["DEPOSIT_MATURED", "CARD_REPLACED"]
    assert "CNY 120,000" in reasons(_contrib(deposit=1.0), x, product)[0].text
