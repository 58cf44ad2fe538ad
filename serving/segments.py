"""Segment filters over a snapshot: vectorised masks, a match count and stable cursor paging.

Customers are ordered by customer id; a cursor is the last id of a page plus the snapshot version,
base64url-encoded JSON. A cursor from another snapshot is refused (409) so that a paged export
never mixes two nights' data: the client starts again from the first page.

A query on behalf of a manager (a manager token, or the CRM naming ``manager_id``) only matches
customers of that manager's book, and its pages together reach at most the first ``cap`` matches
(``LINGXI_SEGMENT_BOOK_CAP``, in id order; ``capped`` says when more matched). Admin queries the
whole snapshot (or one book, if it names a manager) without a cap.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.core.catalogue import Catalogue

from . import validation as v
from .errors import ApiError
from .snapshot import ASSET_LEVELS, RISK_PREFERENCES, TRIGGER_COLUMNS, Snapshot

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
REGION = re.compile(r"[0-9]{6}")
CATEGORY = re.compile(r"[a-z]{1,32}")
FIELDS = ("age", "assets_cny", "asset_levels", "risk_preferences", "regions", "holds", "not_holds",
          "trigger", "limit", "cursor", "manager_id")


@dataclass(frozen=True)
class SegmentFilter:
    age: tuple[int | None, int | None] = (None, None)
    assets: tuple[float | None, float | None] = (None, None)
    asset_levels: tuple[str, ...] | None = None
    risk_preferences: tuple[str, ...] | None = None
    regions: tuple[str, ...] | None = None
    holds_products: tuple[str, ...] = ()
    holds_categories: tuple[str, ...] = ()
    not_holds_products: tuple[str, ...] = ()
    not_holds_categories: tuple[str, ...] = ()
    trigger_types: tuple[str, ...] | None = None
    trigger_within_days: int | None = None


def _range(body: dict, field: str, lo: int, hi: int, integral: bool) -> tuple:
    spec = v.obj(body, field, ("min", "max"))
    if spec is None:
        return (None, None)
    low: float | None
    high: float | None
    if integral:
        low, high = v.integer(spec, "min", lo=lo, hi=hi), v.integer(spec, "max", lo=lo, hi=hi)
    else:
        low, high = v.number(spec, "min", lo=lo, hi=hi), v.number(spec, "max", lo=lo, hi=hi)
    if low is not None and high is not None and low > high:
        raise v.invalid(spec, "min", "%(name)s must not exceed %(other)s", status=422, code="invalid_range",
                        other=v.display_name(v.path_of(spec, "max")))
    return (low, high)


def _holdings(body: dict, field: str, catalogue: Catalogue) -> tuple[tuple[str, ...], tuple[str, ...]]:
    spec = v.obj(body, field, ("products", "categories"))
    if spec is None:
        return (), ()
    products = v.pattern_list(spec, "products", v.PRODUCT_ID) or []
    categories = v.pattern_list(spec, "categories", CATEGORY) or []
    listed = v.located({}, v.path_of(spec, "products"))
    for i, p in enumerate(products):
        if p not in catalogue:
            raise v.invalid(listed, i, "%(name)s: %(value)s is not a product of the catalogue", status=422,
                            code="unknown_product", value=p)
    listed = v.located({}, v.path_of(spec, "categories"))
    for i, c in enumerate(categories):
        if c not in catalogue.category_names:
            raise v.invalid(listed, i, "%(name)s must be one of: %(allowed)s", status=422, code="unknown_category",
                            allowed=", ".join(sorted(catalogue.category_names)))
    return tuple(products), tuple(categories)


def parse_request(body: dict[str, Any], catalogue: Catalogue) -> tuple[SegmentFilter, int, str | None]:
    """Validate a segment query body into (filter, limit, cursor)."""
    v.reject_unknown(body, FIELDS)
    trigger = v.obj(body, "trigger", ("types", "within_days"))
    trigger_types = trigger_days = None
    if trigger is not None:
        trigger_types = v.enum_list(trigger, "types", TRIGGER_COLUMNS)
        trigger_days = v.integer(trigger, "within_days", lo=0, hi=3660)
        if trigger_days is None:
            raise v.invalid(trigger, "within_days", "%(name)s is required", code="missing_field")
    holds = _holdings(body, "holds", catalogue)
    not_holds = _holdings(body, "not_holds", catalogue)
    levels = v.enum_list(body, "asset_levels", ASSET_LEVELS)
    risks = v.enum_list(body, "risk_preferences", RISK_PREFERENCES)
    regions = v.pattern_list(body, "regions", REGION)
    spec = SegmentFilter(
        age=_range(body, "age", 0, 150, True),
        assets=_range(body, "assets_cny", 0, 10**13, False),
        asset_levels=tuple(levels) if levels else None,
        risk_preferences=tuple(risks) if risks else None,
        regions=tuple(regions) if regions else None,
        holds_products=holds[0], holds_categories=holds[1],
        not_holds_products=not_holds[0], not_holds_categories=not_holds[1],
        trigger_types=tuple(trigger_types) if trigger_types else (tuple(TRIGGER_COLUMNS) if trigger else None),
        trigger_within_days=trigger_days,
    )
    limit = v.integer(body, "limit", lo=0, hi=MAX_LIMIT, default=DEFAULT_LIMIT)
    cursor = v.string(body, "cursor", max_len=512)
    return spec, limit, cursor


def _in_labels(pair: tuple[np.ndarray, list[str]], wanted) -> np.ndarray:
    codes, labels = pair
    lookup = np.zeros(len(labels) + 1, dtype=bool)  # last slot: code -1 (null) never matches
    for i, label in enumerate(labels):
        lookup[i] = wanted(label)
    return lookup[codes]


def _region_matcher(regions: tuple[str, ...]):
    """``320200`` matches the city (prefix 3202), ``320000`` the province (32), else exact."""
    prefixes = tuple(r[:2] if r.endswith("0000") else r[:4] if r.endswith("00") else r for r in regions)
    return lambda label: label.startswith(prefixes)


def mask(snapshot: Snapshot, spec: SegmentFilter) -> np.ndarray:
    """Boolean mask over the snapshot rows matching every condition of ``spec``."""
    out = np.ones(snapshot.rows, dtype=bool)
    low, high = spec.age
    if low is not None:
        out &= snapshot.age >= low
    if high is not None:
        out &= (snapshot.age <= high) & (snapshot.age >= 0)
    low_assets, high_assets = spec.assets
    if low_assets is not None:
        out &= snapshot.assets >= low_assets  # NaN compares False
    if high_assets is not None:
        out &= snapshot.assets <= high_assets
    if spec.asset_levels:
        out &= _in_labels(snapshot.asset_level, set(spec.asset_levels).__contains__)
    if spec.risk_preferences:
        out &= _in_labels(snapshot.risk, set(spec.risk_preferences).__contains__)
    if spec.regions:
        out &= _in_labels(snapshot.region, _region_matcher(spec.regions))
    for product in spec.holds_products:
        out &= snapshot.holds[product]
    for category in spec.holds_categories:
        out &= snapshot.holds_category[category]
    for product in spec.not_holds_products:
        out &= ~snapshot.holds[product]
    for category in spec.not_holds_categories:
        out &= ~snapshot.holds_category[category]
    if spec.trigger_types:
        recent = np.zeros(snapshot.rows, dtype=bool)
        for trigger in spec.trigger_types:
            recent |= snapshot.days_since[trigger] <= spec.trigger_within_days
        out &= recent
    return out


def encode_cursor(version: str, after: str) -> str:
    raw = json.dumps({"s": version, "a": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, version: str) -> str:
    """The last customer id of the previous page (400 if malformed, 409 if from another snapshot)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        snapshot_version, after = data["s"], data["a"]
        if not isinstance(snapshot_version, str) or not isinstance(after, str) or not v.HEX32.fullmatch(after):
            raise ValueError
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):
        raise ApiError(400, "invalid_cursor", "the cursor is not valid", field="cursor") from None
    if snapshot_version != version:
        raise ApiError(409, "snapshot_changed", "the customer snapshot changed since this cursor was issued; "
                                                "start again without a cursor", field="cursor")
    return after.upper()


def page(snapshot: Snapshot, matches: np.ndarray, after: str | None, limit: int) -> tuple[np.ndarray, str | None]:
    """Row indices of the next page and the id to continue after (None on the last page)."""
    start = int(np.searchsorted(snapshot.ids, after.encode("ascii"), side="right")) if after else 0
    if limit == 0:
        return np.empty(0, dtype=np.int64), None
    hits = np.flatnonzero(matches[start:])[: limit + 1] + start
    if len(hits) > limit:
        return hits[:limit], snapshot.ids[hits[limit - 1]].decode("ascii")
    return hits, None


def first_matches(matches: np.ndarray, cap: int) -> np.ndarray:
    """Only the first ``cap`` matches (in id order) stay reachable."""
    hits = np.flatnonzero(matches)
    if len(hits) <= cap:
        return matches
    kept = np.zeros_like(matches)
    kept[hits[:cap]] = True
    return kept


def query(snapshot: Snapshot, spec: SegmentFilter, limit: int, cursor: str | None, *,
          book: str | None = None, cap: int | None = None) -> dict[str, Any]:
    """The response body of a segment query, within ``book`` (None: every customer) and ``cap``."""
    assert snapshot.books is not None
    after = decode_cursor(cursor, snapshot.version) if cursor else None
    matches = mask(snapshot, spec)
    if book is not None:
        matches &= snapshot.books.mask(book)
    count = int(np.count_nonzero(matches))
    capped = False
    if cap is not None and count > cap:
        matches, capped = first_matches(matches, cap), True
    rows, next_after = page(snapshot, matches, after, limit)
    return {
        "count": count,
        "customers": [snapshot.summary(int(i)) for i in rows],
        "next_cursor": encode_cursor(snapshot.version, next_after) if next_after else None,
        "snapshot": snapshot.version,
        "capped": capped,
    }
