"""The manager workflow behind the views: lookup, stage one, feedback, stage two, dashboard.

Plain functions over a ``Services`` bundle (catalogue, snapshots, store, engine, settings) so the
views stay short and the logic is testable without HTTP.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import duckdb

from ml.core.catalogue import Catalogue
from ml.engine.arms import ArmShares
from ml.recommendation.contract import (
    ALREADY_HELD,
    SUPPRESSED_NOT_INTERESTED,
    ColdStartResult,
    Ranking,
    RecommendationEngine,
    UnknownCustomer,
)

from . import arms, labels, wording
from .access import Scope, require_visible_customer, require_visible_list
from .as_of import AsOf, AsOfSetting, resolve
from .engine import EngineSlot
from .errors import ApiError
from .feedback_push import FeedbackPusher
from .release import Release, ReleaseManager, pinned
from .snapshot import RECENT_EVENT_COLUMNS, Snapshot
from .store import FeedbackRow, Recommendation, ShownProduct, SqlStore

log = logging.getLogger("lingxi.serving")


@dataclass
class Services:
    catalogue: Catalogue
    releases: ReleaseManager
    store: SqlStore
    pusher: FeedbackPusher
    suppression_days: int = 90
    trigger_window_days: int = 30
    timezone: str = "Asia/Shanghai"
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    as_of_setting: AsOfSetting = field(default_factory=lambda: AsOfSetting("now"))
    metrics: Any = None  # serving.metrics.ServingMetrics once the app has metrics
    arm_shares: ArmShares = field(default_factory=ArmShares)
    _duck: threading.local = field(default_factory=threading.local)

    def release(self) -> Release | None:
        """The version this request answers from (snapshot and engine of one night)."""
        return pinned(self.releases)

    @property
    def engine_slot(self) -> EngineSlot:
        release = self.release()
        return release.engine_slot if release is not None else EngineSlot(None, self.releases.reason())

    @property
    def engine(self) -> RecommendationEngine:
        slot = self.engine_slot
        if slot.engine is None:
            raise self._unavailable("engine_unavailable", "the recommendation engine is not loaded", slot.error)
        return slot.engine

    def snapshot(self) -> Snapshot:
        release = self.release()
        if release is None or release.snapshot is None:
            raise self._unavailable("snapshot_unavailable", "no customer snapshot is loaded yet",
                                    release.snapshot_error if release is not None else self.releases.reason())
        return release.snapshot

    def _unavailable(self, code: str, message: str, reason: str | None) -> ApiError:
        retry = self.releases.retry_in()
        return ApiError(503, code, "%(message)s: %(reason)s" if reason else message,
                        params={"message": message, "reason": reason} if reason else None,
                        headers={"Retry-After": str(max(1, round(retry)) if retry is not None else 5)})

    def as_of(self) -> AsOf:
        """The date this request's answer counts from (``serving.as_of``)."""
        release = self.release()
        snapshot = release.snapshot if release is not None else None
        return resolve(self.as_of_setting, self.clock(), self.timezone, snapshot.as_of if snapshot else None)

    def duck(self) -> duckdb.DuckDBPyConnection:
        """A per-thread in-memory DuckDB connection (reads Parquet files; no database file)."""
        conn = getattr(self._duck, "conn", None)
        if conn is None:
            conn = self._duck.conn = duckdb.connect(":memory:")
        return conn


# -- customers ---------------------------------------------------------------------------------
def suppressions(services: Services, customer_id: str) -> dict[str, dict[str, Any]]:
    """product id -> {reason, since, until}: "not interested" for N days, "already owns" for good."""
    return suppressions_from(services, services.store.customer_judgements(customer_id))


def suppressions_from(services: Services, judgements: Mapping[str, tuple[str, datetime]]) -> dict[str, dict[str, Any]]:
    """``suppressions`` from a customer's latest judgements (product id -> (response, when))."""
    now = services.clock()
    out: dict[str, dict[str, Any]] = {}
    for product_id, (response, recorded_at) in judgements.items():
        if response == "already_owns":
            out[product_id] = {"reason": ALREADY_HELD, "since": recorded_at, "until": None}
        elif response == "not_interested":
            until = recorded_at + timedelta(days=services.suppression_days)
            if until > now:
                out[product_id] = {"reason": SUPPRESSED_NOT_INTERESTED, "since": recorded_at, "until": until}
    return out


def recent_events(services: Services, snapshot: Snapshot, customer_id: str, limit: int = 20) -> list[dict]:
    if snapshot.recent_events is None:
        return []
    cols = RECENT_EVENT_COLUMNS
    try:
        rows = services.duck().execute(
            f"SELECT {', '.join(cols[1:])} FROM read_parquet(?) WHERE {cols[0]} = ? ORDER BY {cols[1]} DESC LIMIT ?",
            [str(snapshot.recent_events), customer_id, limit]).fetchall()
    except duckdb.Error as exc:  # e.g. an old snapshot directory removed by the pipeline
        log.warning("recent events unavailable: %s", type(exc).__name__, extra={"event": "recent_events_failed"})
        return []
    return [{"event_time": r[0].isoformat() if hasattr(r[0], "isoformat") else str(r[0]), "event_type": r[1],
             "event_name": labels.label(labels.EVENT_TYPES, r[1]), "product_id": r[2],
             "product_name": wording.product_name(services.catalogue, r[2]) if r[2] else None,
             "amount": round(float(r[3]), 2) if r[3] is not None else None, "channel": r[4],
             "channel_name": labels.label(labels.CHANNELS, r[4]) if r[4] else None}
            for r in rows]


def require_customer(services: Services, customer_id: str, scope: Scope) -> tuple[Snapshot, int]:
    """The customer's snapshot row; 404 when unknown or outside the caller's book (``serving.access``)."""
    snapshot = services.snapshot()
    return snapshot, require_visible_customer(snapshot, customer_id, scope)


def readable_attributes(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot's attributes with their names in the reader's language next to the codes."""
    out = dict(summary)
    if out.get("assets_cny") is not None:
        out["assets_cny"] = round(float(out["assets_cny"]), 2)
    out["asset_level_name"] = labels.label(labels.ASSET_LEVELS, out.get("asset_level")) or None
    out["risk_preference_name"] = labels.label(labels.RISK_PREFERENCES, out.get("risk_preference")) or None
    return out


def holding_body(services: Services, product_id: str, source: str) -> dict[str, Any]:
    product = services.catalogue.get(product_id)
    return {"product_id": product_id, "name": wording.product_name(services.catalogue, product_id),
            "category": product.category if product else None,
            "category_name": labels.label(labels.CATEGORIES, product.category) if product else None,
            "source": source, "source_name": labels.label(labels.HOLDING_SOURCES, source)}


def customer_view(services: Services, customer_id: str, scope: Scope, include_features: bool = False
                  ) -> dict[str, Any]:
    """Everything a manager sees when looking a customer up (the model's inputs only on request)."""
    snapshot, i = require_customer(services, customer_id, scope)
    assert snapshot.books is not None
    as_of = services.as_of()
    suppressed = suppressions(services, customer_id)
    held = snapshot.holdings(i)
    holdings = [holding_body(services, p, "bank") for p in held]
    holdings += [holding_body(services, p, "reported") for p, s in sorted(suppressed.items())
                 if s["reason"] == ALREADY_HELD and p not in held]
    window = services.trigger_window_days
    triggers = []
    for trigger, days in snapshot.triggers(i).items():
        days = days + as_of.data_age_days if days is not None else None
        triggers.append({"trigger": trigger, "name": labels.label(labels.TRIGGERS, trigger), "days_since": days,
                         "window_days": window, "active": days is not None and 0 <= days <= window})
    body: dict[str, Any] = {
        "customer_id": customer_id,
        "snapshot": snapshot.version,
        "as_of": as_of.body(),
        "attributes": readable_attributes(snapshot.summary(i)),
        "book": snapshot.books.entry(i),
        "holdings": holdings,
        "recent_events": recent_events(services, snapshot, customer_id),
        "trigger_windows": triggers,
        "suppressions": [{"product_id": p, "name": wording.product_name(services.catalogue, p), "reason": s["reason"],
                          "reason_text": labels.label(labels.SUPPRESSION_REASONS, s["reason"]),
                          "since": _iso(as_of.shift(s["since"])), "until": _iso(as_of.shift(s["until"]))}
                         for p, s in sorted(suppressed.items())],
    }
    if include_features:
        profile = None
        if services.engine_slot.engine is not None:
            profile = services.engine.customer_profile(customer_id)
        body["features"] = {str(k): _jsonable(v) for k, v in profile.items()} if profile is not None else None
    return body


# -- recommendations ---------------------------------------------------------------------------
def _products_from(ranking: Ranking, services: Services, suppressed: Mapping[str, Any], k: int) -> tuple[ShownProduct, ...]:
    """Check the engine's list: catalogue products only, none suppressed, no repeats, at most k."""
    shown: list[ShownProduct] = []
    for item in ranking.products:
        product = services.catalogue.get(item.product_id)
        if product is None or item.product_id in suppressed or any(s.product_id == item.product_id for s in shown):
            if product is None:
                log.warning("engine returned a product outside the catalogue", extra={"event": "engine_contract"})
            continue
        match = int(min(100, max(0, round(item.match_score))))
        reasons = tuple(wording.reason_record(r) for r in item.reasons)
        shown.append(ShownProduct(item.product_id, len(shown) + 1, float(item.score), match, reasons,
                                  tuple(item.tags) or product.tags, getattr(item, "annual_value_cny", None)))
        if len(shown) == k:
            break
    return tuple(shown)


def _excluded(services: Services, ranking: Ranking, suppressed: Mapping[str, dict]) -> list[dict[str, Any]]:
    """Every product left out, with its reasons as codes and as words."""
    out = {e.product_id: list(e.reason_codes) for e in ranking.excluded}
    for product_id, s in suppressed.items():
        out.setdefault(product_id, [])
        if s["reason"] not in out[product_id]:
            out[product_id].append(s["reason"])
    return [{"product_id": p, "name": wording.product_name(services.catalogue, p), "reason_codes": codes,
             "reasons": wording.exclusion_reasons(codes)} for p, codes in sorted(out.items())]


def _summary(catalogue: Catalogue, product_id: str) -> dict[str, Any]:
    product = catalogue.get(product_id)
    if product is None:  # logged earlier, since removed from the catalogue
        return {"product_id": product_id, "name": None, "name_zh": None, "display_name": product_id,
                "category": None, "category_name": None, "risk_level": None}
    summary = product.summary()
    return {"product_id": product_id, "name": summary["name"], "name_zh": summary["name_zh"],
            "display_name": wording.product_name(catalogue, product_id), "category": product.category,
            "category_name": labels.label(labels.CATEGORIES, product.category), "risk_level": summary["risk_level"]}


def product_summary(catalogue: Catalogue, product_id: str) -> dict[str, Any]:
    """A catalogue product as answers name it (codes, and names in the reader's language)."""
    return _summary(catalogue, product_id)


ORDERED_BY = {"expected_value": "expected_value_cny", "interest": "probability"}


def _ordered_by(rec: Recommendation, services: Services) -> str:
    """How the list is ordered: the engine's answer; for a list read back from the log, stage one by
    expected value and stage two as the loaded engine's re-ranker orders."""
    if rec.ordered_by is not None:
        return rec.ordered_by
    if rec.stage == 1:
        return "expected_value"
    slot = services.engine_slot
    try:
        objective = slot.engine.versions().get("stage_two_objective") if slot.engine is not None else None
    except Exception:  # noqa: BLE001 - a label, not worth failing the read
        objective = None
    return "expected_value" if objective == "value" else "interest"


def _item(services: Services, p: ShownProduct, ordered_by: str, feedback: str | None, shift_days: int
          ) -> dict[str, Any]:
    product = services.catalogue.get(p.product_id)
    value = p.annual_value_cny if p.annual_value_cny is not None else (product.annual_value_cny if product else None)
    expected = round(p.score * value, 4) if value is not None and ordered_by == "expected_value" else None
    return {**_summary(services.catalogue, p.product_id), "rank": p.rank,
            "probability": p.score, "probability_of": "adoption" if ordered_by == "expected_value" else "interest",
            "annual_value_cny": value, "expected_value_cny": expected, "match_score": p.match_score,
            "score": p.score,
            "reasons": wording.reasons(services.catalogue, p.reasons, shift_days), "tags": list(p.tags),
            "tag_names": wording.tag_names(p.tags), "feedback": feedback}


def recommendation_body(rec: Recommendation, services: Services, feedback: Sequence[FeedbackRow] = (),
                        excluded: list[dict] | None = None, requested: int | None = None) -> dict[str, Any]:
    latest: dict[str, str] = {}
    for row in feedback:
        latest[row.product_id] = row.response
    ordered_by = _ordered_by(rec, services)
    as_of = services.as_of()
    body: dict[str, Any] = {
        "recommendation_id": rec.recommendation_id,
        "customer_id": rec.customer_id,
        "manager_id": rec.manager_id,
        "stage": rec.stage,
        "parent_recommendation_id": rec.parent_recommendation_id,
        "model_version": rec.model_version,
        "created_at": _iso(rec.created_at),
        "as_of": as_of.date.isoformat(),
        "ordered_by": ORDERED_BY[ordered_by],
        "products": [_item(services, p, ordered_by, latest.get(p.product_id), as_of.data_age_days)
                     for p in rec.products],
    }
    if requested is not None:
        body["requested"] = requested
        if len(rec.products) < requested:
            body["shortfall"] = shortfall(services, len(rec.products), requested, excluded or [])
    if excluded is not None:
        body["excluded"] = excluded
    return body


def shortfall(services: Services, shown: int, requested: int, excluded: Sequence[Mapping[str, Any]]
              ) -> dict[str, Any]:
    """Why a list is shorter than asked, in words: how many products each reason left out."""
    counts: dict[str, int] = {}
    for entry in excluded:
        for code in entry["reason_codes"]:
            counts[code] = counts.get(code, 0) + 1
    from .i18n import translate

    if shown == 0:
        message = translate("No product can be offered to this customer now: every product is left out for the "
                            "reasons below.")
    else:
        message = translate("Only %(shown)s of the %(requested)s products asked for can be offered to this customer "
                            "now; the others are left out for the reasons below.",
                            {"shown": shown, "requested": requested})
    return {"message": message,
            "reasons": [{"code": code, "text": labels.label(labels.EXCLUSIONS, code), "products": n}
                        for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]}


def stage_one(services: Services, customer_id: str, k: int, scope: Scope, explain: bool,
              reads: Sequence[Any] = ()) -> dict[str, Any]:
    """Rank, log the list (with the audit ``reads`` in the same commit) and return it."""
    require_customer(services, customer_id, scope)
    manager_id = scope.acting_manager
    engine = services.engine
    suppressed = suppressions(services, customer_id)
    reasons = {p: s["reason"] for p, s in suppressed.items()}
    try:
        arm, ranking, shadow = arms.stage_one(engine, services.arm_shares, customer_id, k, explain, reasons)
        products = _products_from(ranking, services, suppressed, k)
        if len(products) < k and not explain:
            # a short list always says why: ask the same arm again with the engine's exclusions (the same list)
            arm, ranking, shadow = arms.stage_one(engine, services.arm_shares, customer_id, k, True, reasons)
            products = _products_from(ranking, services, suppressed, k)
    except UnknownCustomer:
        raise ApiError(404, "unknown_customer", "the engine has no features for this customer") from None
    if services.metrics is not None:
        services.metrics.stage_one_served(ranking)
    rec = Recommendation(uuid.uuid4().hex.upper(), customer_id, manager_id, 1, None, ranking.model_version,
                         services.clock(), products, getattr(ranking, "ordered_by", "expected_value"), arm)
    services.store.log_recommendation(rec, reads, shadow=shadow)
    short = len(products) < k
    return recommendation_body(rec, services, excluded=_excluded(services, ranking, suppressed)
                               if explain or short else None, requested=k)


def load_recommendation(services: Services, recommendation_id: str, scope: Scope) -> Recommendation:
    """A logged list whose customer is in the caller's book now (404 otherwise, as for an unknown id)."""
    rec = services.store.get_recommendation(recommendation_id)
    if rec is None:
        raise ApiError(404, "unknown_recommendation", "no recommendation with this id")
    if scope.book is not None:  # admin reads every list, with or without a snapshot
        require_visible_list(services.snapshot(), rec.customer_id, scope)
    return rec


def stage_two(services: Services, parent: Recommendation, k: int, manager_id: str | None, explain: bool,
              reads: Sequence[Any] = ()) -> dict[str, Any]:
    if parent.stage != 1:
        raise ApiError(422, "not_stage_one", "stage two re-ranks a stage-one recommendation")
    feedback = services.store.latest_feedback(parent.recommendation_id)
    if not feedback:
        raise ApiError(422, "no_feedback", "record feedback on this recommendation before asking for stage two")
    suppressed = suppressions(services, parent.customer_id)
    services.pusher.sync(parent.customer_id)  # the re-ranker reads the online aggregates: they must hold these answers
    reasons = {p: s["reason"] for p, s in suppressed.items()}
    try:
        arm, ranking = arms.stage_two(services.engine, parent, feedback, k, explain, reasons)
    except UnknownCustomer:
        raise ApiError(404, "unknown_customer", "the engine has no features for this customer") from None
    rec = Recommendation(uuid.uuid4().hex.upper(), parent.customer_id, manager_id, 2, parent.recommendation_id,
                         ranking.model_version, services.clock(), _products_from(ranking, services, suppressed, k),
                         getattr(ranking, "ordered_by", "expected_value"), arm)
    services.store.log_recommendation(rec, reads)
    body = recommendation_body(rec, services, excluded=_excluded(services, ranking, suppressed) if explain else None)
    body["stage_one_feedback"] = [{"product_id": p, "response": r} for p, r in sorted(feedback.items())]
    return body


# -- feedback ----------------------------------------------------------------------------------
def request_hash(recommendation_id: str, manager_id: str, items: Sequence[tuple[str, str]]) -> str:
    canonical = json.dumps([recommendation_id, manager_id, sorted(items)], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def feedback_body(rec: Recommendation, manager_id: str, key: str, rows: Sequence[FeedbackRow]) -> dict[str, Any]:
    return {
        "recommendation_id": rec.recommendation_id,
        "customer_id": rec.customer_id,
        "manager_id": manager_id,
        "idempotency_key": key,
        "recorded_at": _iso(rows[0].recorded_at) if rows else None,
        "items": [{"feedback_id": r.feedback_id, "product_id": r.product_id, "response": r.response} for r in rows],
    }


def record_feedback(services: Services, rec: Recommendation, manager_id: str, key: str,
                    items: Sequence[tuple[str, str]], caller: str) -> tuple[int, dict[str, Any]]:
    """Validate against the recommendation, store durably, queue the push; (status, body). 201 new, 200
    replay. ``key`` is scoped to ``caller``: another caller's identical key is another request."""
    shown = {p.product_id for p in rec.products}
    unknown = [p for p, _ in items if p not in services.catalogue]
    if unknown:
        i = next(n for n, (p, _) in enumerate(items) if p in unknown)
        raise ApiError(422, "unknown_product", "items[%(i)s].product_id: %(product)s is not a product of the catalogue",
                       params={"i": i, "product": unknown[0]}, field=("items", i, "product_id"))
    not_shown = [p for p, _ in items if p not in shown]
    if not_shown:
        i = next(n for n, (p, _) in enumerate(items) if p in not_shown)
        raise ApiError(422, "product_not_shown",
                       "items[%(i)s].product_id: %(product)s was not shown in this recommendation",
                       params={"i": i, "product": not_shown[0]}, field=("items", i, "product_id"))
    result = services.store.record_feedback(
        idempotency_key=key, request_hash=request_hash(rec.recommendation_id, manager_id, items),
        recommendation=rec, manager_id=manager_id, items=items, recorded_at=services.clock(), caller=caller)
    if result.status == "conflict":
        raise ApiError(409, "idempotency_conflict", "this idempotency key was used with a different request")
    if result.status == "created":
        if services.metrics is not None:
            services.metrics.feedback_stored(rec.stage, [row.response for row in result.rows])
        services.pusher.submit([rec.customer_id])  # best effort, off the request path (feedback_push)
        return 201, feedback_body(rec, manager_id, key, result.rows)
    return 200, feedback_body(rec, manager_id, key, result.rows)


# -- cold start --------------------------------------------------------------------------------
def cold_start(services: Services, product: dict[str, Any], n: int,
               assumptions: Mapping[str, float] | None = None) -> dict[str, Any]:
    if product["product_id"] in services.catalogue:
        raise ApiError(422, "product_exists", "cold start analyses a product that is not in the catalogue yet",
                       field=("product", "product_id"))
    try:
        # without overrides, call as the contract's first version did (engines that take no assumptions)
        result: ColdStartResult = (services.engine.cold_start(product, n, assumptions) if assumptions
                                   else services.engine.cold_start(product, n))
    except NotImplementedError:
        raise ApiError(501, "not_implemented", "this engine version has no cold-start analysis") from None
    except ValueError as exc:
        raise ApiError(422, "invalid_assumptions", str(exc)) from None
    f = result.forecast
    return {
        "product_id": product["product_id"],
        "model_version": result.model_version,
        "conflicts": [{"product_id": c.product_id, "name": wording.product_name(services.catalogue, c.product_id),
                       "relation": c.relation, "relation_name": labels.label(labels.RELATIONS, c.relation),
                       "similarity": round(float(c.similarity), 4), "risk": c.risk,
                       "risk_name": labels.label(labels.SEVERITIES, c.risk), "reason": c.reason}
                      for c in result.conflicts],
        "warnings": [{"code": w.code, "severity": w.severity, "severity_name": labels.label(labels.SEVERITIES, w.severity),
                      "message": wording.sentence(services.catalogue, {"template": getattr(w, "template", ""),
                                                                       "params": dict(getattr(w, "params", ())),
                                                                       "message": w.message}, text_key="message")}
                     for w in result.warnings],
        "targets": [{"customer_id": t.customer_id, "match_score": int(t.match_score),
                     "probability": (round(float(t.probability), 6) if getattr(t, "probability", None) is not None
                                     else None),
                     "reasons": wording.reasons(services.catalogue, [wording.reason_record(r) for r in t.reasons])}
                    for t in result.targets[:n]],
        "forecast": {"horizon_months": f.horizon_months, "expected_adopters": float(f.expected_adopters),
                     "adopters_low": float(f.adopters_low), "adopters_high": float(f.adopters_high),
                     "expected_revenue_cny": float(f.expected_revenue_cny),
                     "similar_products": list(f.similar_products), "assumptions": list(f.assumptions),
                     "revenue_low_cny": _float_or_none(f.revenue_low_cny),
                     "revenue_high_cny": _float_or_none(f.revenue_high_cny),
                     "parameters": {name: float(value) for name, value in f.parameters}},
    }


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)


def _jsonable(value: Any) -> Any:
    """Engine values as JSON: numpy scalars and arrays unwrapped, NaN/inf as null, dates as ISO text."""
    if hasattr(value, "tolist"):  # numpy scalar or array
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
