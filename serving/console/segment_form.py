"""The segment filter builder's form fields, turned into the API's segment query.

The form posts plain fields (``age_min``, ``asset_level`` twice, ...); ``query_body`` builds the same
JSON body ``POST /api/v1/segments/query`` takes, so ``serving.segments`` validates and filters it
with the API's rules, within the caller's book and the API's cap on what a manager's segment reaches.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np
from werkzeug.datastructures import MultiDict

from .. import access, segments
from ..errors import ApiError
from ..snapshot import Snapshot
from .context import book_mask, segment_cap, services

PAGE_SIZE = 20
MAX_CALL_LIST_CUSTOMERS = 5000   # a segment turned into a call list: its first customers by id
DEFAULT_TRIGGER_DAYS = 30
FIELDS = ("age_min", "age_max", "assets_min", "assets_max", "asset_level", "risk", "region", "holds_category",
          "holds_product", "not_holds_category", "not_holds_product", "trigger", "trigger_days")


def _number(args: MultiDict, name: str, integral: bool) -> float | int | None:
    text = (args.get(name) or "").strip().replace(",", "")
    if not text:
        return None
    try:
        return int(text) if integral else float(text)
    except ValueError:
        raise ApiError(400, "invalid_value", f"{name} must be a number") from None


def _range(args: MultiDict, prefix: str, integral: bool) -> dict[str, Any] | None:
    low, high = _number(args, f"{prefix}_min", integral), _number(args, f"{prefix}_max", integral)
    if low is None and high is None:
        return None
    return {key: value for key, value in (("min", low), ("max", high)) if value is not None}


def _holdings(args: MultiDict, prefix: str) -> dict[str, list[str]] | None:
    products = [p for p in args.getlist(f"{prefix}_product") if p]
    categories = [c for c in args.getlist(f"{prefix}_category") if c]
    if not products and not categories:
        return None
    return {key: value for key, value in (("products", products), ("categories", categories)) if value}


def query_body(args: MultiDict) -> dict[str, Any]:
    """The API's segment query body from the form's fields (absent fields: no condition)."""
    body: dict[str, Any] = {}
    for field, prefix, integral in (("age", "age", True), ("assets_cny", "assets", False)):
        if (spec := _range(args, prefix, integral)) is not None:
            body[field] = spec
    for field, name in (("asset_levels", "asset_level"), ("risk_preferences", "risk")):
        if values := [v for v in args.getlist(name) if v]:
            body[field] = values
    if regions := re.findall(r"[^\s,，]+", args.get("region", "")):
        body["regions"] = regions
    for field in ("holds", "not_holds"):
        if (spec := _holdings(args, field)) is not None:
            body[field] = spec
    types = [t for t in args.getlist("trigger") if t]
    days = _number(args, "trigger_days", True)
    if types or days is not None:
        body["trigger"] = {"types": types or list(segments.TRIGGER_COLUMNS),
                           "within_days": DEFAULT_TRIGGER_DAYS if days is None else days}
    return body


def parse(args: MultiDict) -> segments.SegmentFilter:
    spec, _limit, _cursor = segments.parse_request(query_body(args), services().catalogue)
    return spec


def segment_matches(snapshot: Snapshot, args: MultiDict, reach: access.Scope) -> tuple[np.ndarray, bool]:
    """Rows of the snapshot in the segment and the caller's reach (the first ``cap`` of a manager's
    book, as through the API), and whether the cap cut it."""
    matches = segments.mask(snapshot, parse(args)) & book_mask(reach)
    cap = segment_cap(reach)
    if cap is not None and int(np.count_nonzero(matches)) > cap:
        return segments.first_matches(matches, cap), True
    return matches, False


def filter_args(args: MultiDict) -> list[tuple[str, str]]:
    """The filter's own fields (no cursor, page or source) as pairs for a link's query string."""
    return [(key, value) for key in FIELDS for value in args.getlist(key) if value]
