"""The records the store reads and writes: lists shown, their products, shadow lists, feedback rows,
and the idempotency keys they are stored under (the tables themselves: ``serving.store.base``)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ml.core.feedback_log import EXPORT_COLUMNS


@dataclass(frozen=True)
class ShownProduct:
    product_id: str
    rank: int
    score: float
    match_score: int
    reasons: tuple[dict[str, Any], ...] = ()  # code, English text; template and params when translatable
    tags: tuple[str, ...] = ()
    annual_value_cny: float | None = None     # the value the engine ranked with (not stored: the catalogue's)


@dataclass(frozen=True)
class Recommendation:
    recommendation_id: str
    customer_id: str
    manager_id: str | None
    stage: int
    parent_recommendation_id: str | None
    model_version: str
    created_at: datetime
    products: tuple[ShownProduct, ...]
    ordered_by: str | None = None  # the engine's Ranking.ordered_by (not stored)
    arm: str | None = None  # champion | challenger | control (None: logged before arms)


@dataclass(frozen=True)
class ShadowList:
    """The challenger's list for a request it did not serve: logged, never shown."""

    arm: str
    model_version: str
    product_ids: tuple[str, ...]


@dataclass(frozen=True)
class FeedbackRow:
    feedback_id: str
    recommendation_id: str
    customer_id: str
    product_id: str
    manager_id: str
    response: str
    recorded_at: datetime
    idempotency_key: str
    request_key: str

    def as_dict(self) -> dict[str, Any]:
        """The export columns (what the online store push receives)."""
        return {name: getattr(self, name) for name in EXPORT_COLUMNS["feedback"]}


def scoped_key(caller: str, client_key: str) -> str:
    """The stored idempotency key: the client's key within its caller's scope."""
    return f"{caller}/{client_key}"


def row_key(request_key: str, product_id: str) -> str:
    """The per-row idempotency key of one product in a feedback request."""
    return f"{request_key}#{product_id}"


@dataclass(frozen=True)
class FeedbackResult:
    status: Literal["created", "replayed", "conflict"]
    rows: tuple[FeedbackRow, ...] = ()
