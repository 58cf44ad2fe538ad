"""Suitability rules: one test per rule and boundary, the rule file, ranking and auditing, and
hypothesis properties over random customers, random catalogues and adversarial scores."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ml.core import suitability as s
from ml.core import suitability_rules as rules
from ml.core.catalogue import CATEGORIES, Catalogue, Product, load_catalogue
from ml.core.config import SEEDS_DIR

CAT = load_catalogue()
PREFS = ("conservative", "cautious", "balanced", "growth", "aggressive")


def codes_for(customer: dict, product_id: str, held: tuple[str, ...] = ()) -> list[str]:
    excluded = {e["product_id"]: e["reason_codes"] for e in s.check_customer(customer, held)}
    return excluded.get(product_id, [])


RICH_AGGRESSIVE_40 = {"age": 40, "risk_preference": "aggressive", "assets_cny": 5e6}


# -- the rule file ------------------------------------------------------------------------------
def test_rule_file_matches_seed():
    seed = pd.read_csv(SEEDS_DIR / "suitability_rules.csv")
    assert set(seed["rule_version"].astype(str)) == {rules.RULES_VERSION}
    by_id = {r.rule_id: r for r in s.RULES.rules}
    assert set(seed["rule_id"]) == set(by_id)
    for row in seed.itertuples():
        assert by_id[row.rule_id].reason_code == row.reason_code
        assert by_id[row.rule_id].bit == row.reason_bit


def test_rules_are_versioned_and_decodable():
    assert rules.RULES_VERSION == "2" and len(s.RULES.digest) == 12
    everything = sum(r.mask for r in s.RULES.rules)
    assert s.RULES.decode(everything) == [r.reason_code for r in sorted(s.RULES.rules, key=lambda r: r.bit)]
    assert s.RULES.decode(0) == []


def test_a_rich_aggressive_40_year_old_may_have_everything_not_held():
    assert s.check_customer(RICH_AGGRESSIVE_40) == []
    assert s.check_customer(RICH_AGGRESSIVE_40, ["SAV_DEMAND", "NOT_A_PRODUCT"]) == [
        {"product_id": "SAV_DEMAND", "reason_codes": ["ALREADY_HELD"]}]


# -- risk tolerance -----------------------------------------------------------------------------
@pytest.mark.parametrize("tolerance", range(1, 6))
def test_risk_tolerance_text_and_int_forms_agree(tolerance):
    base = {"age": 40, "assets_cny": 5e6}
    by_text = s.check_customer({**base, "risk_preference": PREFS[tolerance - 1]})
    by_int = s.check_customer({**base, "risk_tolerance": tolerance})
    assert by_text == by_int
    blocked = {e["product_id"] for e in by_text}
    assert blocked == {p.product_id for p in CAT if p.risk_level > tolerance}
    assert all(e["reason_codes"] == ["RISK_ABOVE_TOLERANCE"] for e in by_text)


def test_risk_preference_spellings():
    frame = pd.DataFrame({"risk_preference": [" Growth ", "AGGRESSIVE", "C3", "激进型", "3", "R9", None, "??"]})
    assert s.risk_tolerance(frame).tolist() == [4, 5, 3, 5, 3, 0, 0, 0]


def test_conflicting_risk_columns_take_the_more_cautious():
    frame = pd.DataFrame({"risk_preference": ["aggressive", None, "cautious"],
                          "risk_tolerance": [2, 4, np.nan]})
    assert s.risk_tolerance(frame).tolist() == [2, 4, 2]


def test_invalid_int_tolerance_is_unknown():
    frame = pd.DataFrame({"risk_tolerance": [0, 6, 2.5, -1, 5.0]})
    assert s.risk_tolerance(frame).tolist() == [0, 0, 0, 0, 5]


def test_credit_products_follow_the_risk_rule():
    balanced = {"age": 40, "risk_preference": "cautious", "assets_cny": 5e6}
    assert codes_for(balanced, "CRD_BUSINESS") == ["RISK_ABOVE_TOLERANCE"]  # R3 credit
    assert codes_for(balanced, "CRD_MORTGAGE") == []                         # R2 credit


# -- high-risk age limit ------------------------------------------------------------------------
@pytest.mark.parametrize("age, blocked", [(64, False), (65, False), (66, True), (90, True)])
def test_high_risk_age_limit_boundary(age, blocked):
    customer = {**RICH_AGGRESSIVE_40, "age": age}
    for pid in ("WLT_STOCK_FUND", "WLT_INDEX_FUND"):  # R5, R4
        assert ("AGE_LIMIT_HIGH_RISK" in codes_for(customer, pid)) is blocked
    assert "AGE_LIMIT_HIGH_RISK" not in codes_for(customer, "WLT_MIXED_FUND")  # R3


# -- minimum investment ------------------------------------------------------------------------
@pytest.mark.parametrize("pid", ["SAV_LCD", "WLT_WMP", "PRO_CAR", "WLT_STOCK_FUND"])
def test_assets_exactly_the_minimum_are_enough(pid):
    minimum = CAT[pid].min_investment_cny
    at = {**RICH_AGGRESSIVE_40, "assets_cny": minimum}
    below = {**RICH_AGGRESSIVE_40, "assets_cny": minimum - 0.01}
    assert codes_for(at, pid) == []
    assert codes_for(below, pid) == ["BELOW_MIN_INVESTMENT"]


def test_zero_assets_still_allow_products_without_minimum():
    poor = {**RICH_AGGRESSIVE_40, "assets_cny": 0}
    allowed = {p.product_id for p in CAT} - {e["product_id"] for e in s.check_customer(poor)}
    assert allowed == {p.product_id for p in CAT if p.min_investment_cny == 0}


def test_asset_level_floor_used_only_when_assets_missing():
    frame = pd.DataFrame({"assets_cny": [np.nan, 10.0, np.nan, -5.0],
                          "asset_level": ["L3", "L5", None, "L2"]})
    assert s.customer_assets(frame).tolist()[:2] == [200_000.0, 10.0]
    assert math.isnan(s.customer_assets(frame)[2])
    assert s.customer_assets(frame)[3] == 50_000.0  # negative assets are invalid -> level floor


# -- target age (hard for credit and protection only) ------------------------------------------
@pytest.mark.parametrize("age, blocked", [(22, True), (23, False), (55, False), (56, True), (90, True)])
def test_mortgage_age_range_boundaries(age, blocked):
    customer = {**RICH_AGGRESSIVE_40, "age": age}
    assert ("OUTSIDE_TARGET_AGE" in codes_for(customer, "CRD_MORTGAGE")) is blocked


def test_no_lending_or_new_insurance_at_90():
    customer = {"age": 90, "risk_preference": "balanced", "assets_cny": 1e6}
    blocked = {e["product_id"] for e in s.check_customer(customer)}
    assert {p.product_id for p in CAT if p.category in ("credit", "protection")} <= blocked


def test_target_age_is_soft_for_savings_and_wealth():
    customer = {"age": 70, "risk_preference": "balanced", "assets_cny": 1e6}
    assert codes_for(customer, "SAV_EDU") == []        # target 25-50
    assert codes_for(customer, "WLT_PENSION") == []    # target 40-65
    assert codes_for(customer, "WLT_MIXED_FUND") == []  # target 25-70


# -- adults only --------------------------------------------------------------------------------
def test_minors_get_savings_only():
    minor = {"age": 17, "risk_preference": "aggressive", "assets_cny": 1e7}
    allowed = {p.product_id for p in CAT} - {e["product_id"] for e in s.check_customer(minor)}
    assert allowed == {p.product_id for p in CAT if p.category == "savings"}
    assert codes_for(minor, "WLT_BOND_FUND") == ["BELOW_ADULT_AGE"]
    assert codes_for({**minor, "age": 18}, "WLT_BOND_FUND") == []


# -- already held -------------------------------------------------------------------------------
def test_already_held_excludes_even_otherwise_suitable_products():
    assert codes_for(RICH_AGGRESSIVE_40, "WLT_WMP", ("WLT_WMP",)) == ["ALREADY_HELD"]
    assert codes_for(RICH_AGGRESSIVE_40, "WLT_WMP", ("WLT_BOND_FUND",)) == []


def test_held_matrix_from_long_table():
    holdings = pd.DataFrame({"customer_id": ["A", "B", "B", "Z", "A"],
                             "product_id": ["SAV_DEMAND", "CRD_CARD", "NOPE", "SAV_TIME", "SAV_DEMAND"]})
    held = s.held_matrix(["A", "B", "C"], holdings)
    assert held.shape == (3, len(CAT)) and held.sum() == 2
    assert held[0, CAT.index("SAV_DEMAND")] and held[1, CAT.index("CRD_CARD")]


def test_held_shape_is_checked():
    frame = pd.DataFrame([RICH_AGGRESSIVE_40])
    with pytest.raises(ValueError, match="held has shape"):
        s.eligibility(frame, np.zeros((1, 3), dtype=bool))


# -- missing data fails closed ------------------------------------------------------------------
def test_missing_risk_preference_allows_r1_only():
    customer = {"age": 40, "risk_preference": None, "assets_cny": 1e7}
    excluded = {e["product_id"]: e["reason_codes"] for e in s.check_customer(customer)}
    assert set(excluded) == {p.product_id for p in CAT if p.risk_level > 1}
    assert set(map(tuple, excluded.values())) == {("MISSING_CUSTOMER_DATA",)}


@pytest.mark.parametrize("age", [None, "unknown", -3, 130])
def test_missing_or_impossible_age_blocks_every_age_governed_product(age):
    customer = {"age": age, "risk_preference": "aggressive", "assets_cny": 1e7}
    allowed = {p.product_id for p in CAT} - {e["product_id"] for e in s.check_customer(customer)}
    assert allowed == {p.product_id for p in CAT if p.category == "savings"}


def test_missing_assets_allow_only_products_without_minimum():
    customer = {"age": 40, "risk_preference": "aggressive", "assets_cny": None}
    excluded = {e["product_id"]: e["reason_codes"] for e in s.check_customer(customer)}
    assert set(excluded) == {p.product_id for p in CAT if p.min_investment_cny > 0}
    assert all(v == ["MISSING_CUSTOMER_DATA"] for v in excluded.values())


def test_missing_columns_raise():
    with pytest.raises(ValueError, match="risk_preference or risk_tolerance"):
        s.eligibility(pd.DataFrame({"age": [40], "assets_cny": [1.0]}))
    with pytest.raises(ValueError, match="age"):
        s.eligibility(pd.DataFrame({"risk_tolerance": [3], "assets_cny": [1.0]}))


def test_several_reasons_are_all_kept():
    customer = {"age": 70, "risk_preference": "conservative", "assets_cny": 10}
    assert codes_for(customer, "WLT_STOCK_FUND", ("WLT_STOCK_FUND",)) == [
        "RISK_ABOVE_TOLERANCE", "AGE_LIMIT_HIGH_RISK", "BELOW_MIN_INVESTMENT", "ALREADY_HELD"]


def test_to_long_and_counts():
    frame = pd.DataFrame([RICH_AGGRESSIVE_40, {"age": 70, "risk_preference": "conservative", "assets_cny": 10}])
    elig = s.eligibility(frame)
    long = elig.to_long(["C1", "C2"])
    assert set(long["customer"]) == {"C2"}
    assert int(elig.reasons.astype(bool).sum()) == len(long)
    assert sum(elig.reason_counts().values()) == sum(len(c.split("|")) for c in long["reason_codes"])
    assert (long["rules_version"] == rules.RULES_VERSION).all()


# -- ranking ------------------------------------------------------------------------------------
def test_apply_masks_excluded_scores():
    allowed = np.array([[True, False, True]])
    out = s.apply(np.array([[1.0, np.inf, 3.0]]), allowed)
    assert out.tolist() == [[1.0, -np.inf, 3.0]]


def test_rank_pads_instead_of_returning_excluded_products():
    scores = np.array([[1e9, np.inf, 0.5, 0.2], [0.1, 0.2, 0.3, 0.4]])
    allowed = np.array([[False, False, True, False], [True, True, True, True]])
    assert s.rank(scores, allowed, 3).tolist() == [[2, -1, -1], [3, 2, 1]]


def test_rank_nan_counts_as_minus_inf_and_ties_keep_catalogue_order():
    scores = np.array([[np.nan, 1.0, 1.0, -np.inf, -5.0]])
    assert s.rank(scores, np.ones((1, 5), bool), 5).tolist() == [[1, 2, 4, 0, 3]]


def test_audit_finds_each_kind_of_violation():
    frame = pd.DataFrame([RICH_AGGRESSIVE_40, {"age": 70, "risk_preference": "conservative", "assets_cny": 10}])
    ok = [["WLT_STOCK_FUND", "CRD_MORTGAGE"], ["SAV_DEMAND", None, ""]]
    assert s.assert_all_suitable(ok, frame).n_recommendations == 3
    bad = [["WLT_STOCK_FUND", "MYSTERY"], ["WLT_STOCK_FUND", "SAV_DEMAND"]]
    result = s.audit(bad, frame)
    assert (result.n_violations, result.violating_rows.tolist()) == (2, [0, 1])
    assert result.by_reason["UNKNOWN_PRODUCT"] == 1 and result.by_reason["RISK_ABOVE_TOLERANCE"] == 1
    with pytest.raises(AssertionError, match="2 unsuitable recommendations"):
        s.assert_all_suitable(bad, frame)
    positions = np.array([[CAT.index("SAV_TIME"), -1], [CAT.index("CRD_CARD"), 99]])
    assert s.audit(positions, frame).n_violations == 2  # CRD_CARD at 70 and an out-of-range index


# -- properties ---------------------------------------------------------------------------------
products = st.builds(
    lambda i, cat, risk, minimum, lo, span, tags: Product(
        product_id=f"P{i}", name_zh="", name_en="", category=cat, category_zh="", risk_level=risk,
        min_investment_cny=float(minimum), expected_return_pct=0.0, target_age_min=lo,
        target_age_max=lo + span, tags=tags, annual_value_cny=0.0),
    st.just(0), st.sampled_from(CATEGORIES), st.integers(1, 5),
    st.sampled_from([0, 50, 100, 1000, 10_000, 200_000]), st.integers(16, 60), st.integers(0, 60),
    st.just(()),
)
catalogues = st.lists(products, min_size=1, max_size=8).map(
    lambda ps: Catalogue(tuple(Product(**{**p.__dict__, "product_id": f"P{i}"}) for i, p in enumerate(ps))))
customer_rows = st.fixed_dictionaries({
    "age": st.one_of(st.integers(0, 110), st.sampled_from([17, 18, 64, 65, 66, None, -1, 200])),
    "risk_preference": st.sampled_from([*PREFS, "GROWTH ", "C2", None, "nonsense"]),
    "assets_cny": st.one_of(st.floats(0, 1e7), st.sampled_from([0.0, 49.99, 50.0, 1000.0, 200_000.0, None])),
})


def reference_reasons(customer: dict, product: Product, held: bool) -> set[str]:
    """Cell-by-cell statement of the rule file, written independently of the vectorised code."""
    reasons = set()
    pref = customer["risk_preference"]
    tol = {"conservative": 1, "cautious": 2, "balanced": 3, "growth": 4, "aggressive": 5,
           "c2": 2}.get(str(pref).strip().lower()) if pref is not None else None
    age = customer["age"]
    age = age if age is not None and 0 <= age <= 120 else None
    assets = customer["assets_cny"]
    age_rules = product.risk_level >= 4 or product.category != "savings"  # any age rule applies
    if tol is None:
        if product.risk_level > 1:
            reasons.add("MISSING_CUSTOMER_DATA")
    elif product.risk_level > tol:
        reasons.add("RISK_ABOVE_TOLERANCE")
    if age is None:
        if age_rules:
            reasons.add("MISSING_CUSTOMER_DATA")
    else:
        if product.risk_level >= 4 and age > 65:
            reasons.add("AGE_LIMIT_HIGH_RISK")
        if product.category in ("credit", "protection") and not (
                product.target_age_min <= age <= product.target_age_max):
            reasons.add("OUTSIDE_TARGET_AGE")
        if product.category != "savings" and age < 18:
            reasons.add("BELOW_ADULT_AGE")
    if assets is None:
        if product.min_investment_cny > 0:
            reasons.add("MISSING_CUSTOMER_DATA")
    elif assets < product.min_investment_cny:
        reasons.add("BELOW_MIN_INVESTMENT")
    if held:
        reasons.add("ALREADY_HELD")
    return reasons


@st.composite
def cases(draw):
    cat = draw(catalogues)
    rows = draw(st.lists(customer_rows, min_size=1, max_size=12))
    held = draw(hnp.arrays(bool, (len(rows), len(cat))))
    scores = draw(hnp.arrays(np.float64, (len(rows), len(cat)), elements=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e9, np.inf, -np.inf]))))
    return cat, rows, held, scores


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_vectorised_rules_equal_the_cell_by_cell_reference(case):
    cat, rows, held, _ = case
    elig = s.eligibility(pd.DataFrame(rows), held, catalogue=cat)
    for i, row in enumerate(rows):
        for j, product in enumerate(cat):
            assert set(elig.codes(i, j)) == reference_reasons(row, product, held[i, j]), (row, product)
    assert np.array_equal(elig.allowed, elig.reasons == 0)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.integers(1, 10))
def test_no_score_brings_back_an_excluded_product(case, k):
    cat, rows, held, scores = case
    frame = pd.DataFrame(rows)
    elig = s.eligibility(frame, held, catalogue=cat)
    adversarial = np.where(elig.allowed, scores, np.inf)  # excluded products get the best score
    top = s.rank(adversarial, elig.allowed, k)
    assert top.shape == (len(rows), min(k, len(cat)))
    for i in range(len(rows)):
        chosen = [j for j in top[i] if j >= 0]
        assert all(elig.allowed[i, j] for j in chosen)
        assert len(chosen) == min(k, int(elig.allowed[i].sum()))   # nothing suitable is dropped
        assert len(set(chosen)) == len(chosen)
    assert s.assert_all_suitable(top, frame, held, catalogue=cat).ok
    masked = s.apply(adversarial, elig.allowed)
    assert np.all(masked[~elig.allowed] == -np.inf)
    assert np.array_equal(masked[elig.allowed], adversarial[elig.allowed], equal_nan=True)


@settings(max_examples=100, deadline=None)
@given(cases())
def test_audit_counts_every_excluded_product_pushed_into_a_ranking(case):
    cat, rows, held, _ = case
    frame = pd.DataFrame(rows)
    elig = s.eligibility(frame, held, catalogue=cat)
    everything = [list(cat.ids) for _ in rows]  # recommend the whole catalogue to everyone
    result = s.audit(everything, frame, held, catalogue=cat)
    assert result.n_violations == int((~elig.allowed).sum())
    assert result.n_recommendations == len(rows) * len(cat)
