"""Request parsing and validation helpers: every failure is an ``ApiError`` (400/413/415/422) that
names the one offending field (its path and JSON pointer) and the rule it breaks.

The body and every object read from it with :func:`obj` are :class:`Located` dicts that know their
path, so ``integer(spec, "min", ...)`` on the ``age`` object of the body reports ``age/min``.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, overload

from flask import current_app, request
from flask_babel import lazy_gettext as _l

from .errors import ApiError

# Used with fullmatch (JSON Schema's "$" does not accept a trailing newline; Python's does).
HEX32 = re.compile(r"[0-9A-Fa-f]{32}")
PRODUCT_ID = re.compile(r"[A-Z][A-Z0-9_]{1,39}")
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_.:-]{8,128}")
MISSING: Any = object()  # absent field; an explicit JSON null is invalid (no request field is nullable)

# what a pattern means, in words (the rule an error message states)
RULES: dict[str, Any] = {
    HEX32.pattern: _l("32 hexadecimal characters (0-9, A-F)"),
    PRODUCT_ID.pattern: _l("a product id: an upper-case letter, then 1 to 39 upper-case letters, digits or _ "
                           "(e.g. SAV_TIME)"),
    IDEMPOTENCY_KEY.pattern: _l("8 to 128 characters from A-Z, a-z, 0-9 and _ . : -"),
}


class Located(dict):
    """A JSON object of the request that knows where it is (``path`` from the body's root)."""

    path: tuple[str | int, ...] = ()


def located(value: dict, path: Sequence[str | int]) -> Located:
    out = Located(value)
    out.path = tuple(path)
    return out


def path_of(body: Mapping[str, Any], field: str | int) -> tuple[str | int, ...]:
    return getattr(body, "path", ()) + (field,)


def display_name(path: Sequence[str | int]) -> str:
    """``("items", 2, "product_id")`` -> ``items[2].product_id`` (how a message names a field)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def invalid(body: Mapping[str, Any], field: str | int, message: str, status: int = 400, code: str = "invalid_value",
            **params: Any) -> ApiError:
    """An error about ``body[field]``: ``message`` may use ``%(name)s`` (the field) and ``params``."""
    path = path_of(body, field)
    return ApiError(status, code, message, params={"name": display_name(path), **params}, field=path)


def rule_of(pattern: re.Pattern) -> Any:
    return RULES.get(pattern.pattern, _l("text matching %(pattern)s", pattern=pattern.pattern))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_body(*, optional: bool = False) -> dict[str, Any]:
    """The request body as a JSON object. Empty bodies are ``{}`` when ``optional``."""
    raw = request.get_data(cache=True)  # raises 413 when a declared Content-Length is past the limit
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is not None and request.content_length is None and len(raw) >= limit:
        # a streamed (chunked) body is cut at the limit rather than refused: refuse it here
        raise ApiError(413, "payload_too_large", "the body must be smaller than %(limit)s bytes", params={"limit": limit})
    if optional and not raw.strip():
        return located({}, ())
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "the body must be application/json")
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    return located(body, ())


def reject_unknown(body: Mapping[str, Any], allowed: Iterable[str], where: str = "body") -> None:
    """400 ``unknown_field`` naming the first field (in sorted order) that ``allowed`` does not list."""
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise invalid(body, extra[0], "unknown field %(name)s (allowed: %(allowed)s)", code="unknown_field",
                      allowed=", ".join(sorted(allowed)))


def hex_id(value: Any, field: str, in_body: bool = False) -> str:
    """A 32-hex-character id (customer, recommendation), normalised to upper case."""
    if not isinstance(value, str) or not HEX32.fullmatch(value):
        raise ApiError(400, "invalid_id", "%(name)s must be %(rule)s", params={"name": field, "rule": RULES[HEX32.pattern]},
                       field=(field,), in_body=in_body)
    return value.upper()


@overload
def integer(body: Mapping[str, Any], field: str, *, lo: int, hi: int, default: int) -> int: ...
@overload
def integer(body: Mapping[str, Any], field: str, *, lo: int, hi: int, default: None = None) -> int | None: ...
def integer(body: Mapping[str, Any], field: str, *, lo: int, hi: int, default: int | None = None) -> int | None:
    value = body.get(field, MISSING)
    if value is MISSING:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON Schema: 4.0 is an integer
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise invalid(body, field, "%(name)s must be an integer between %(lo)s and %(hi)s", lo=lo, hi=hi)
    return value


@overload
def number(body: Mapping[str, Any], field: str, *, lo: float, hi: float, default: float) -> float: ...
@overload
def number(body: Mapping[str, Any], field: str, *, lo: float, hi: float, default: None = None) -> float | None: ...
def number(body: Mapping[str, Any], field: str, *, lo: float, hi: float, default: float | None = None) -> float | None:
    value = body.get(field, MISSING)
    if value is MISSING:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not lo <= value <= hi:
        raise invalid(body, field, "%(name)s must be a number between %(lo)s and %(hi)s", lo=_plain(lo), hi=_plain(hi))
    return float(value)


def _plain(x: float) -> str:
    return f"{x:g}" if abs(x) < 1e6 else f"{x:,.0f}"


def boolean(body: Mapping[str, Any], field: str, default: bool = False) -> bool:
    value = body.get(field, MISSING)
    if value is MISSING:
        return default
    if not isinstance(value, bool):
        raise invalid(body, field, "%(name)s must be true or false")
    return value


def string(body: Mapping[str, Any], field: str, *, pattern: re.Pattern | None = None, max_len: int = 200,
           required: bool = False) -> str | None:
    value = body.get(field, MISSING)
    if value is MISSING:
        if required:
            raise invalid(body, field, "%(name)s is required", code="missing_field")
        return None
    if not isinstance(value, str) or not 0 < len(value) <= max_len:
        raise invalid(body, field, "%(name)s must be a text of 1 to %(max)s characters", max=max_len)
    if pattern is not None and not pattern.fullmatch(value):
        raise invalid(body, field, "%(name)s must be %(rule)s", rule=rule_of(pattern))
    return value


def required_string(body: Mapping[str, Any], field: str, *, pattern: re.Pattern | None = None,
                    max_len: int = 200) -> str:
    value = string(body, field, pattern=pattern, max_len=max_len, required=True)
    assert value is not None  # string(required=True) raises instead
    return value


def enum_list(body: Mapping[str, Any], field: str, allowed: Iterable[str], *, max_items: int = 50) -> list[str] | None:
    """A non-empty list of unique strings from ``allowed``."""
    value = body.get(field, MISSING)
    if value is MISSING:
        return None
    allowed = list(allowed)
    if not isinstance(value, list) or not 0 < len(value) <= max_items:
        raise invalid(body, field, "%(name)s must be a list of 1 to %(max)s values from: %(allowed)s", max=max_items,
                      allowed=", ".join(sorted(allowed)))
    for i, item in enumerate(value):
        if not isinstance(item, str) or item not in allowed:
            raise invalid(located({}, path_of(body, field)), i, "%(name)s must be one of: %(allowed)s",
                          allowed=", ".join(sorted(allowed)))
    _unique(body, field, value)
    return value


def pattern_list(body: Mapping[str, Any], field: str, pattern: re.Pattern, *, max_items: int = 50) -> list[str] | None:
    value = body.get(field, MISSING)
    if value is MISSING:
        return None
    if not isinstance(value, list) or not 0 < len(value) <= max_items:
        raise invalid(body, field, "%(name)s must be a list of 1 to %(max)s values", max=max_items)
    for i, item in enumerate(value):
        if not isinstance(item, str) or not pattern.fullmatch(item):
            raise invalid(located({}, path_of(body, field)), i, "%(name)s must be %(rule)s", rule=rule_of(pattern))
    _unique(body, field, value)
    return value


def _unique(body: Mapping[str, Any], field: str, value: list) -> None:
    seen: set = set()
    for i, item in enumerate(value):
        key = json.dumps(item, sort_keys=True)
        if key in seen:
            raise invalid(located({}, path_of(body, field)), i, "%(name)s repeats an earlier value of %(list)s",
                          list=display_name(path_of(body, field)))
        seen.add(key)


def obj(body: Mapping[str, Any], field: str, allowed: Iterable[str]) -> Located | None:
    value = body.get(field, MISSING)
    if value is MISSING:
        return None
    if not isinstance(value, dict):
        raise invalid(body, field, "%(name)s must be an object")
    out = located(value, path_of(body, field))
    reject_unknown(out, allowed)
    return out
