"""The recommendation engine as the API sees it: a small Protocol plus its result types.

The real engine comes from ``ml.engine`` (``LINGXI_ENGINE``, default
``ml.engine.loading:load_engine``); each worker calls ``load_engine(data_dir=Path)`` once per
published version (``serving.release``) and swaps the engine with the customer snapshot. Tests inject their own.

Contract (what the API relies on; the API re-checks the cheap parts):

- Every ranked product is *suitable* for the customer (risk tolerance, age limits, minimum
  investment, not already held): suitability is the engine's hard constraint.
- ``suppressed`` lists products the customer must not be offered now (product id -> reason code:
  ``SUPPRESSED_NOT_INTERESTED`` for a recent "not interested", ``ALREADY_HELD`` for a reported
  holding); the engine must leave them out. The API also drops them if they come back.
- Products are returned best first, at most ``k``, ordered by ``Ranking.ordered_by``:
  ``expected_value`` (``score`` x ``annual_value_cny``: the calibrated adoption probability times
  the product's yearly value to the bank) or ``interest`` (``score`` is P(interested | the answers
  on the shown products), stage two). ``match_score`` is an int 0..100 for display that never
  increases down the list (see ``ml.recommendation.match_score``).
- A ``Reason`` may carry its English ``template`` and ``params`` so that serving can say it in
  another language; ``text`` is always the English sentence.
- Unknown customers raise ``UnknownCustomer`` (the API answers 404); a capability the engine does not
  have yet raises ``NotImplementedError`` (the API answers 501).
- Methods may be called from several threads when gunicorn runs with ``--threads``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

Response = Literal["interested", "not_interested", "already_owns"]

RESPONSES: tuple[str, ...] = ("interested", "not_interested", "already_owns")

SUPPRESSED_NOT_INTERESTED = "SUPPRESSED_NOT_INTERESTED"

ALREADY_HELD = "ALREADY_HELD"


class UnknownCustomer(LookupError):
    """The engine has no features for this customer id."""


@dataclass(frozen=True)
class Reason:
    """Why a product is recommended: a stable code (e.g. ``SALARY_CREDIT_RECENT``) and an English text.

    ``template`` (``%(name)s`` placeholders) and ``params`` (name, value pairs) rebuild ``text``; they
    let serving translate the sentence. Params named ``product`` hold a product id, ``category`` a
    category code, ``risk`` a risk preference code: serving names them in the reader's language."""

    code: str
    text: str
    template: str = ""
    params: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class RankedProduct:
    product_id: str
    score: float                    # a probability: adoption (stage one) or interest (``ordered_by="interest"``)
    match_score: int
    reasons: tuple[Reason, ...] = ()
    tags: tuple[str, ...] = ()
    annual_value_cny: float | None = None  # the value the ranking multiplied by (None: the catalogue's)


@dataclass(frozen=True)
class Exclusion:
    """A product left out, with the suitability rule codes (``seeds/suitability_rules.csv``)."""

    product_id: str
    reason_codes: tuple[str, ...]


@dataclass(frozen=True)
class Ranking:
    """A ranked list, best first; ``excluded`` only when exclusions were asked for."""

    products: tuple[RankedProduct, ...]
    model_version: str
    excluded: tuple[Exclusion, ...] = ()
    ordered_by: Literal["expected_value", "interest"] = "expected_value"


@dataclass(frozen=True)
class Conflict:
    """An existing product that overlaps a new one. ``risk``: ``high`` / ``medium`` for a substitute or
    an overlap (cannibalisation), ``low`` for a complement (a cross-sell opportunity, not a conflict)."""

    product_id: str
    relation: Literal["substitute", "complement", "overlap"]
    similarity: float  # 0..1
    reason: str
    risk: Literal["high", "medium", "low"] = "medium"


@dataclass(frozen=True)
class ColdStartWarning:
    """A risk-concentration or suitability warning about a new product (e.g. ``AGE_LIMIT_HIGH_RISK``)."""

    code: str
    severity: Literal["high", "medium"]
    message: str
    template: str = ""                       # as in ``Reason``: lets serving translate the message
    params: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Target:
    customer_id: str
    match_score: int
    reasons: tuple[Reason, ...] = ()
    probability: float | None = None  # the model's adoption probability (targets come best first)


@dataclass(frozen=True)
class Forecast:
    """Uptake and revenue forecast with its assumptions stated."""

    horizon_months: int
    expected_adopters: float
    adopters_low: float
    adopters_high: float
    expected_revenue_cny: float
    similar_products: tuple[str, ...]
    assumptions: tuple[str, ...]
    revenue_low_cny: float | None = None
    revenue_high_cny: float | None = None
    # the numbers the forecast used, by name (those a caller may override: see ``cold_start``)
    parameters: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ColdStartResult:
    conflicts: tuple[Conflict, ...]
    targets: tuple[Target, ...]
    forecast: Forecast
    model_version: str
    warnings: tuple[ColdStartWarning, ...] = ()


@runtime_checkable
class RecommendationEngine(Protocol):
    """What the serving layer calls. ``ml.engine`` implements it."""

    def versions(self) -> Mapping[str, str]:
        """Versions of what is loaded, e.g. ``{"model": "2025-07-01.1", "features": "stage_one_v1"}``."""
        ...

    def customer_profile(self, customer_id: str) -> Mapping[str, Any] | None:
        """The ``profile_v1`` features of a customer (JSON-serialisable), or None if unknown."""
        ...

    def stage_one(self, customer_id: str, k: int, *, explain_exclusions: bool = False,
                  suppressed: Mapping[str, str] | None = None) -> Ranking:
        """Up to ``k`` suitable products for the customer, best first."""
        ...

    def stage_two(self, customer_id: str, shown: Sequence[str], feedback: Mapping[str, str], k: int, *,
                  explain_exclusions: bool = False, suppressed: Mapping[str, str] | None = None) -> Ranking:
        """Re-rank after feedback. ``shown``: the stage-one products in their order; ``feedback``:
        product id -> ``interested`` | ``not_interested`` | ``already_owns`` (latest per product)."""
        ...

    def cold_start(self, product: Mapping[str, Any], n: int,
                   assumptions: Mapping[str, float] | None = None) -> ColdStartResult:
        """Analyse a product that is not in the catalogue: conflicts, top ``n`` targets, forecast
        (``assumptions`` override the forecast's: horizon_months, contact_rate, contact_uplift, margin,
        average_balance_cny, n_similar; an unknown name raises ``ValueError``)."""
        ...

    def push_feedback(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Set the online feedback aggregates of the customers in ``rows`` from ``rows``: *every*
        committed feedback row of each of those customers (the feedback store is the source of
        truth), so a push is idempotent and a later push supersedes an earlier one. Rows have the
        feedback export columns: feedback_id, recommendation_id, customer_id, product_id,
        manager_id, response, recorded_at (aware UTC datetime), idempotency_key. Called from a
        background thread (``serving.feedback_push``); may raise: serving logs and goes on."""
        ...


def check_engine(engine: RecommendationEngine, customer_id: str, k: int = 5) -> list[str]:
    """Contract problems of an engine on one customer (empty list: conforms). For the ML team's tests:
    ``assert not check_engine(load_engine(data_dir=...), some_customer_id)``."""
    problems: list[str] = []
    if not isinstance(engine, RecommendationEngine):
        return ["does not implement RecommendationEngine"]
    versions = engine.versions()
    if not versions or not all(isinstance(k_, str) and isinstance(v, str) for k_, v in versions.items()):
        problems.append("versions() must be a non-empty str -> str mapping")

    def ranking(name: str, result: object, suppressed: Mapping[str, str]) -> None:
        if not isinstance(result, Ranking):
            problems.append(f"{name} must return a Ranking")
            return
        ids = [p.product_id for p in result.products]
        if len(ids) > k or len(set(ids)) != len(ids):
            problems.append(f"{name}: at most k={k} distinct products expected, got {ids}")
        if any(p in suppressed for p in ids):
            problems.append(f"{name}: returned a suppressed product")
        for p in result.products:
            if not isinstance(p.match_score, int) or not 0 <= p.match_score <= 100:
                problems.append(f"{name}: match_score of {p.product_id} must be an int in 0..100")
            if not all(isinstance(r, Reason) for r in p.reasons):
                problems.append(f"{name}: reasons of {p.product_id} must be Reason objects")
        if not isinstance(result.model_version, str) or not result.model_version:
            problems.append(f"{name}: model_version must be a non-empty str")

    first = engine.stage_one(customer_id, k, explain_exclusions=True, suppressed={})
    ranking("stage_one", first, {})
    if isinstance(first, Ranking) and first.products:
        top = first.products[0].product_id
        suppressed = {top: SUPPRESSED_NOT_INTERESTED}
        ranking("stage_one(suppressed)", engine.stage_one(customer_id, k, suppressed=suppressed), suppressed)
        shown = [p.product_id for p in first.products]
        ranking("stage_two", engine.stage_two(customer_id, shown, {top: "not_interested"}, k, suppressed=suppressed),
                suppressed)
    try:
        engine.stage_one("0" * 32, k)
        problems.append("stage_one of an unknown customer must raise UnknownCustomer")
    except UnknownCustomer:
        pass
    if engine.customer_profile("0" * 32) is not None:
        problems.append("customer_profile of an unknown customer must be None")
    return problems
