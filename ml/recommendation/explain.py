"""Why a product is recommended: model contributions -> a few stable reason codes with short texts.

Two sources of per-feature contributions (log-odds, last column the bias), both *locally
accurate* (they sum to the booster's raw score):

* :meth:`ml.training.model.PropensityModel.contributions` — LightGBM's TreeSHAP (``pred_contrib``). Exact
  Shapley values, but ~2.5 ms per row for the 400-tree model: fine for batch reports, too slow
  for a 4 ms serving budget.
* :class:`PathExplainer` — path attributions (Saabas): along the path from a tree's root to the
  leaf a row falls in, each split's change in node value is credited to the split's feature. It
  depends only on the leaf, so a (leaf -> contributions) table is built once per model and a
  row's contributions are one ``pred_leaf`` call plus a gather-and-sum (~0.3 ms for five rows).
  Reason families agree with TreeSHAP's for most rows (``tests/ml/test_explain.py`` measures it).

Features are grouped into *families* (every ``holds_*`` effect is one "holds a related product"
reason naming the product; salary recency, payroll and salary amount are one trigger; ...). A
family becomes a reason when its summed contribution is positive *and* the customer's values
support a human statement (a "recent salary credit" reason needs a salary credit in the last 60
days; a trigger that pushed the score up because it *never* happened is not shown). Product-only
attributes (they explain the product, not the customer) and gender are never shown.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ml.core.catalogue import CATEGORIES, Catalogue, Product, load_catalogue
from ml.features.layout import POSITION
from ml.features.pairs import FIT_FEATURES, PRODUCT_ATTRIBUTES, feature_names
from ml.recommendation.contract import Reason

FEATURES: tuple[str, ...] = tuple(feature_names())

F_INDEX = {name: i for i, name in enumerate(FEATURES)}


RISK_NAMES = ("conservative", "cautious", "balanced", "growth", "aggressive")

CARD_NAMES = ("social-security card", "standard debit card", "gold debit card", "platinum debit card")

TRIGGER_DAYS = 60      # a trigger older than this is not "recent" (the bank's response window)

MATURITY_DAYS = 90

def reason(code: str, template: str, en: Mapping[str, object] | None = None, **params: object) -> Reason:
    """A reason whose English ``text`` is ``template % params`` (``en`` overrides how a param reads in
    English: a product id by its name, an amount rounded with its currency); serving translates the
    template and renders the params in the reader's language."""
    return Reason(code, template % {**params, **(en or {})}, template, tuple(sorted(params.items())))


def _cny(key: str, amount: float) -> dict[str, object]:
    """A rounded amount param (``key``) and its English reading."""
    return {key: _round2(amount)}


def _round2(amount: float) -> float:
    if not math.isfinite(amount) or amount <= 0:
        return 0.0
    return float(round(amount, -max(int(math.floor(math.log10(amount))) - 1, 0)))


FALLBACK = reason("BEST_SUITABLE_MATCH", "one of the best-scoring products this customer may be offered")


# ------------------------------------------------------------------------------------------------
# Path attributions
# ------------------------------------------------------------------------------------------------
class PathExplainer:
    """Per-feature path contributions of a LightGBM booster, from a precomputed leaf table."""

    def __init__(self, booster):
        self.booster = booster
        self.iterations = booster.current_iteration()
        dump = booster.dump_model(num_iteration=self.iterations)
        n_features = dump["max_feature_idx"] + 1
        tables, offsets, start = [], [], 0
        for tree in dump["tree_info"]:
            table = np.zeros((tree["num_leaves"], n_features + 1), dtype=np.float64)
            _walk(tree["tree_structure"], table, np.zeros(n_features + 1), None)
            tables.append(table)
            offsets.append(start)
            start += len(table)
        self.table = np.vstack(tables).astype(np.float32)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.n_features = n_features

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        """(n, F + 1) float64 contributions (last column the bias); rows sum to the raw score."""
        if len(rows) == 0:
            return np.zeros((0, self.n_features + 1))
        leaves = self.booster.predict(rows, pred_leaf=True, num_iteration=self.iterations, num_threads=1)
        leaves = np.asarray(leaves, dtype=np.int64).reshape(len(rows), -1)
        return self.table[leaves + self.offsets[None, :]].sum(axis=1, dtype=np.float64)


def _walk(node: dict, table: np.ndarray, acc: np.ndarray, parent_value: float | None) -> None:
    """Fill ``table[leaf]`` with the path deltas to that leaf (bias column = the root value)."""
    value = node["leaf_value"] if "leaf_index" in node else node["internal_value"]
    if parent_value is None:
        acc = acc.copy()
        acc[-1] = value
    if "leaf_index" in node:
        table[node["leaf_index"]] = acc
        # the telescoping sum equals the leaf value exactly; fix float noise of the dump
        table[node["leaf_index"], -1] += value - acc.sum()
        return
    feature = node["split_feature"]
    for child in (node["left_child"], node["right_child"]):
        child_value = child["leaf_value"] if "leaf_index" in child else child["internal_value"]
        nxt = acc.copy()
        nxt[feature] += child_value - value
        _walk(child, table, nxt, value)


# ------------------------------------------------------------------------------------------------
# Reason families
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Context:
    """What a reason text may mention: the customer's features, the product, held products."""

    x: np.ndarray                      # the customer's stage-one vector (layout order)
    product: Product
    catalogue: Catalogue
    complement: np.ndarray | None      # (P_all,) complement strength held product -> this product
    contrib: np.ndarray                # this row's contributions (F + 1)

    def value(self, name: str) -> float:
        return float(self.x[POSITION[name]])

    def known(self, name: str) -> bool:
        return math.isfinite(self.value(name))

Describe = Callable[[Context], "Reason | None"]


def _amount(amount: float) -> str:
    """Round to two significant digits for display (CNY 53,000 rather than 52,916.43)."""
    if not math.isfinite(amount) or amount <= 0:
        return "CNY 0"
    digits = max(int(math.floor(math.log10(amount))) - 1, 0)
    return f"CNY {round(amount, -digits):,.0f}"


def _age(c: Context) -> Reason | None:
    if not c.known("age"):
        return None
    age, p = int(c.value("age")), c.product
    if p.target_age_min <= age <= p.target_age_max:
        return reason("AGE_FITS_PRODUCT", "age %(age)s fits the product's target range %(age_min)s-%(age_max)s",
                      age=age, age_min=p.target_age_min, age_max=p.target_age_max)
    return reason("AGE_FITS_PRODUCT", "age %(age)s is typical of this product's customers", age=age)


def _assets(c: Context) -> Reason | None:
    if not c.known("log_assets"):
        return None
    assets = math.expm1(c.value("log_assets"))
    if c.product.min_investment_cny > 0:
        if assets < c.product.min_investment_cny:
            return None
        return reason("ASSETS_COVER_MINIMUM", "assets of about %(assets_cny)s cover the %(minimum_cny)s minimum",
                      {"assets_cny": _amount(assets), "minimum_cny": _amount(c.product.min_investment_cny)},
                      **_cny("assets_cny", assets), **_cny("minimum_cny", c.product.min_investment_cny))
    return reason("ASSET_LEVEL", "assets of about %(assets_cny)s at the bank", {"assets_cny": _amount(assets)},
                  **_cny("assets_cny", assets))


def _risk(c: Context) -> Reason | None:
    if not c.known("risk_tolerance"):
        return None
    tol = int(c.value("risk_tolerance"))
    if not 1 <= tol <= 5 or tol < c.product.risk_level:
        return None
    return reason("RISK_APPETITE_FITS", "risk tolerance '%(risk)s' covers the product's %(risk_level)s",
                  risk=RISK_NAMES[tol - 1], risk_level=c.product.risk_label)


def _held_products(c: Context) -> list[tuple[float, str]]:
    """(contribution, product id) of each held product's holds_* feature, largest first."""
    out = []
    for pid in c.catalogue.ids:
        name = f"holds_{pid.lower()}"
        if pid != c.product.product_id and c.known(name) and c.value(name) > 0:
            out.append((float(c.contrib[F_INDEX[name]]), pid))
    return sorted(out, reverse=True)


def _holdings(c: Context) -> Reason | None:
    held = _held_products(c)
    if c.complement is not None:  # the graph's complements among held products come first
        strengths = [(float(c.complement[c.catalogue.index(pid)]), pid) for _, pid in held]
        strong = [s for s in strengths if s[0] > 0]
        if strong:
            pid = max(strong)[1]
            return reason("HOLDS_COMPLEMENT", "holds a complementary product: %(product)s",
                          {"product": c.catalogue[pid].name_en}, product=pid)
    held = [h for h in held if h[0] > 0 and h[1] != "SAV_DEMAND"]
    if held:
        return reason("HOLDS_RELATED_PRODUCT", "holds %(product)s, often held together with this product",
                      {"product": c.catalogue[held[0][1]].name_en}, product=held[0][1])
    return None


def _category_use(c: Context) -> Reason | None:
    cat = c.product.category
    n_cat = c.value(f"n_held_{cat}") if c.known(f"n_held_{cat}") else 0
    if n_cat > 0:
        if n_cat > 1:
            return reason("USES_CATEGORY", "already uses %(n)s %(category)s products", n=int(n_cat), category=cat)
        return reason("USES_CATEGORY", "already uses one %(category)s product", category=cat)
    n_all = c.value("n_products_held") if c.known("n_products_held") else 0
    if n_all >= 2:
        return reason("PRODUCT_BREADTH", "holds %(n)s products with the bank", n=int(n_all))
    return None


def _category_activity(c: Context) -> Reason | None:
    best = None
    for cat in CATEGORIES:
        n90 = c.value(f"n_{cat}_events_90d") if c.known(f"n_{cat}_events_90d") else 0
        if n90 > 0:
            weight = sum(float(c.contrib[F_INDEX[f]]) for f in FAMILY_FEATURES["category_activity"] if cat in f)
            if best is None or weight > best[0]:
                best = (weight, cat, int(n90))
    if best is None:
        return None
    if best[2] > 1:
        return reason("RECENT_ACTIVITY", "%(n)s %(category)s transactions in the last 90 days", n=best[2],
                      category=best[1])
    return reason("RECENT_ACTIVITY", "one %(category)s transaction in the last 90 days", category=best[1])


def _salary(c: Context) -> Reason | None:
    first = c.value("days_since_first_salary_credit")
    last = c.value("days_since_salary_credit")
    if math.isfinite(first) and first <= TRIGGER_DAYS:
        return reason("SALARY_CREDIT_NEW", "salary started arriving at this bank %(days)s days ago", days=int(first))
    if math.isfinite(last) and last <= TRIGGER_DAYS:
        amount = c.value("avg_salary_amount_180d")
        if math.isfinite(amount) and amount > 0:
            return reason("SALARY_CREDIT_RECENT", "salary credited %(days)s days ago (about %(salary_cny)s a month)",
                          {"salary_cny": _amount(amount)}, days=int(last), **_cny("salary_cny", amount))
        return reason("SALARY_CREDIT_RECENT", "salary credited %(days)s days ago", days=int(last))
    return None


def _deposit(c: Context) -> Reason | None:
    days = c.value("days_since_deposit_maturity")
    if not math.isfinite(days) or days > MATURITY_DAYS:
        return None
    amount = c.value("last_deposit_maturity_amount")
    if math.isfinite(amount) and amount > 0:
        return reason("DEPOSIT_MATURED", "a deposit of about %(deposit_cny)s matured %(days)s days ago",
                      {"deposit_cny": _amount(amount)}, days=int(days), **_cny("deposit_cny", amount))
    return reason("DEPOSIT_MATURED", "a deposit matured %(days)s days ago", days=int(days))


def _card(c: Context) -> Reason | None:
    days = c.value("days_since_card_replacement")
    if not math.isfinite(days) or days > TRIGGER_DAYS:
        return None
    return reason("CARD_REPLACED", "bank card replaced %(days)s days ago", days=int(days))


def _digital(c: Context) -> Reason | None:
    if c.known("has_mobile_banking") and c.value("has_mobile_banking") > 0:
        return reason("ACTIVE_MOBILE_USER", "uses mobile banking")
    for name, text in (("has_wechat", "uses WeChat banking"), ("has_online_banking", "uses online banking")):
        if c.known(name) and c.value(name) > 0:
            return reason("DIGITAL_CHANNEL", text)
    return None


def _everyday(c: Context) -> Reason | None:
    n90 = c.value("n_everyday_txn_90d") if c.known("n_everyday_txn_90d") else 0
    if n90 <= 0:
        return None
    trend = c.value("activity_trend") if c.known("activity_trend") else 0.0
    if trend > 0.3:
        return reason("ACTIVE_ACCOUNT", "active account: %(n)s everyday transactions in 90 days, rising", n=int(n90))
    return reason("ACTIVE_ACCOUNT", "active account: %(n)s everyday transactions in 90 days", n=int(n90))


def _family(c: Context) -> Reason | None:
    if c.known("marital_status_code") and int(c.value("marital_status_code")) == 1:
        return reason("FAMILY_STAGE", "married: family needs")
    return None


def _education(c: Context) -> Reason | None:
    if c.known("education_level") and c.value("education_level") >= 4:
        return reason("EDUCATION_PROFILE", "university education")
    return None


def _card_tier(c: Context) -> Reason | None:
    if c.known("card_tier") and c.value("card_tier") >= 2:
        return reason("PREMIUM_CARD", "holds a %(card)s", card=CARD_NAMES[int(c.value("card_tier"))])
    return None


def _tenure(c: Context) -> Reason | None:
    if c.known("tenure_years") and c.value("tenure_years") >= 5:
        return reason("LONG_RELATIONSHIP", "customer for %(years)s years", years=int(c.value("tenure_years")))
    return None


def _location(c: Context) -> Reason | None:
    if c.known("urbanisation_code") and int(c.value("urbanisation_code")) == 2:
        return reason("URBAN_CUSTOMER", "lives in an urban district")
    if c.known("is_wuxi") and c.value("is_wuxi") > 0:
        return reason("LOCAL_CUSTOMER", "local (Wuxi) customer")
    return None

_ACTIVITY = [f"n_{cat}_events_{w}" for cat in CATEGORIES for w in ("30d", "90d", "180d")] + \
    [f"amount_{cat}_180d" for cat in CATEGORIES] + [f"days_since_{cat}_event" for cat in CATEGORIES] + \
    ["n_opens_180d", "n_redeems_180d", "n_closes_180d"]


# family -> (features, describe); features not listed anywhere are hidden (see HIDDEN)
FAMILY_FEATURES: dict[str, tuple[str, ...]] = {
    "age": ("age", "age_to_target_mid", "age_in_target"),
    "assets": ("log_assets", "asset_level", "asset_margin"),
    "risk": ("risk_tolerance", "risk_headroom"),
    "holdings": tuple(n for n in FEATURES if n.startswith("holds_")) + ("complement_score", "substitute_held"),
    "category_use": ("held_in_category", "n_held_savings", "n_held_protection", "n_held_credit", "n_held_wealth",
                     "n_products_held"),
    "category_activity": tuple(_ACTIVITY),
    "salary": ("days_since_salary_credit", "n_salary_credits_90d", "avg_salary_amount_180d",
               "days_since_first_salary_credit"),
    "deposit": ("days_since_deposit_maturity", "last_deposit_maturity_amount"),
    "card": ("days_since_card_replacement",),
    "digital": ("has_mobile_banking", "has_wechat", "has_online_banking", "n_channels_bound"),
    "everyday": ("n_everyday_txn_30d", "n_everyday_txn_90d", "n_everyday_txn_prev_90d", "amount_everyday_90d",
                 "activity_trend", "days_since_everyday_txn"),
    "family": ("marital_status_code",),
    "education": ("education_level",),
    "card_tier": ("card_tier",),
    "tenure": ("tenure_years",),
    "location": ("is_wuxi", "urbanisation_code"),
}

DESCRIBE: dict[str, Describe] = {
    "age": _age, "assets": _assets, "risk": _risk, "holdings": _holdings, "category_use": _category_use,
    "category_activity": _category_activity, "salary": _salary, "deposit": _deposit, "card": _card,
    "digital": _digital, "everyday": _everyday, "family": _family, "education": _education,
    "card_tier": _card_tier, "tenure": _tenure, "location": _location,
}

HIDDEN: tuple[str, ...] = ("gender_male", *PRODUCT_ATTRIBUTES)  # never a reason shown to anyone

FAMILIES: tuple[str, ...] = tuple(FAMILY_FEATURES)

REASON_CODES: tuple[str, ...] = (
    "AGE_FITS_PRODUCT", "ASSETS_COVER_MINIMUM", "ASSET_LEVEL", "RISK_APPETITE_FITS", "HOLDS_COMPLEMENT",
    "HOLDS_RELATED_PRODUCT", "USES_CATEGORY", "PRODUCT_BREADTH", "RECENT_ACTIVITY", "SALARY_CREDIT_NEW",
    "SALARY_CREDIT_RECENT", "DEPOSIT_MATURED", "CARD_REPLACED", "ACTIVE_MOBILE_USER", "DIGITAL_CHANNEL",
    "ACTIVE_ACCOUNT", "FAMILY_STAGE", "EDUCATION_PROFILE", "PREMIUM_CARD", "LONG_RELATIONSHIP",
    "URBAN_CUSTOMER", "LOCAL_CUSTOMER", FALLBACK.code)


def _family_matrix() -> np.ndarray:
    """(F + 1, n_families) 0/1: which family each contribution column belongs to (bias: none)."""
    matrix = np.zeros((len(FEATURES) + 1, len(FAMILIES)), dtype=np.float64)
    seen: set[str] = set()
    for j, family in enumerate(FAMILIES):
        for name in FAMILY_FEATURES[family]:
            if name in seen:
                raise ValueError(f"feature {name} is in two reason families")
            seen.add(name)
            matrix[F_INDEX[name], j] = 1.0
    missing = set(FEATURES) - seen - set(HIDDEN)
    if missing:
        raise ValueError(f"features without a reason family: {sorted(missing)}")
    return matrix

FAMILY_MATRIX = _family_matrix()

assert set(FIT_FEATURES) <= {f for fs in FAMILY_FEATURES.values() for f in fs}


def family_contributions(contrib: np.ndarray) -> np.ndarray:
    """(..., F + 1) contributions -> (..., n_families) summed per family."""
    return np.asarray(contrib, dtype=np.float64) @ FAMILY_MATRIX


def reasons(contrib: np.ndarray, x: np.ndarray, product: Product, *, catalogue: Catalogue | None = None,
            complement: np.ndarray | None = None, max_reasons: int = 3) -> tuple[Reason, ...]:
    """Up to ``max_reasons`` reasons for one (customer, product) row, strongest first.

    ``contrib``: the row's (F + 1) contributions; ``x``: the customer's stage-one vector;
    ``complement``: optional (P_all,) complement strengths from each catalogue product to
    ``product`` (column of the relation graph). Never empty: falls back to ``BEST_SUITABLE_MATCH``.
    """
    cat = catalogue if catalogue is not None else load_catalogue()
    by_family = family_contributions(contrib)
    ctx = Context(x=np.asarray(x, dtype=np.float64), product=product, catalogue=cat,
                  complement=complement, contrib=np.asarray(contrib, dtype=np.float64))
    out: list[Reason] = []
    for j in np.argsort(-by_family, kind="stable"):
        if by_family[j] <= 0 or len(out) >= max_reasons:
            break
        reason = DESCRIBE[FAMILIES[j]](ctx)
        if reason is not None:
            out.append(reason)
    return tuple(out) if out else (FALLBACK,)


def reason_families(reason_list: Sequence[Reason]) -> list[str]:
    """The family of each reason code (for checks against contributions)."""
    return [CODE_FAMILY.get(r.code, "") for r in reason_list]

CODE_FAMILY: Mapping[str, str] = {
    "AGE_FITS_PRODUCT": "age", "ASSETS_COVER_MINIMUM": "assets", "ASSET_LEVEL": "assets",
    "RISK_APPETITE_FITS": "risk", "HOLDS_COMPLEMENT": "holdings", "HOLDS_RELATED_PRODUCT": "holdings",
    "USES_CATEGORY": "category_use", "PRODUCT_BREADTH": "category_use", "RECENT_ACTIVITY": "category_activity",
    "SALARY_CREDIT_NEW": "salary", "SALARY_CREDIT_RECENT": "salary", "DEPOSIT_MATURED": "deposit",
    "CARD_REPLACED": "card", "ACTIVE_MOBILE_USER": "digital", "DIGITAL_CHANNEL": "digital",
    "ACTIVE_ACCOUNT": "everyday", "FAMILY_STAGE": "family", "EDUCATION_PROFILE": "education",
    "PREMIUM_CARD": "card_tier", "LONG_RELATIONSHIP": "tenure", "URBAN_CUSTOMER": "location",
    "LOCAL_CUSTOMER": "location",
}
