"""Request parsing and validation helpers: every failure is an ``ApiError`` (400/413/415/422)."""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, overload

from flask import current_app, request

from .errors import ApiError

# Used with fullmatch (JSON Schema's "$" does not accept a trailing newline; Python's does).
HEX32 = re.compile(r"[0-9A-Fa-f]{32}")
PRODUCT_ID = re.compile(r"[A-Z][A-Z0-9_]{1,39}")
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_.:-]{8,128}")
MISSING: Any = object()  # absent field; an explicit JSON null is invalid (no request field is nullable)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_body(*, optional: bool = False) -> dict[str, Any]:
    """The request body as a JSON object. Empty bodies are ``{}`` when ``optional``."""
    raw = request.get_data(cache=True)  # raises 413 when a declared Content-Length is past the limit
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is not None and request.content_length is None and len(raw) >= limit:
        # a streamed (chunked) body is cut at the limit rather than refused: refuse it here
        raise ApiError(413, "payload_too_large", f"the body must be smaller than {limit} bytes")
    if optional and not raw.strip():
        return {}
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "the body must be application/json")
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    return body


def reject_unknown(body: Mapping[str, Any], allowed: Iterable[str], where: str = "body") -> None:
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise ApiError(400, "unknown_field", f"unknown field(s) in {where}: {', '.join(extra[:5])}")


def hex_id(value: Any, field: str) -> str:
    """A 32-hex-character id (customer, recommendation), normalised to upper case."""
    if not isinstance(value, str) or not HEX32.fullmatch(value):
        raise ApiError(400, "invalid_id", f"{field} must be 32 hexadecimal characters")
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
        raise ApiError(400, "invalid_value", f"{field} must be an integer in [{lo}, {hi}]")
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
        raise ApiError(400, "invalid_value", f"{field} must be a number in [{lo}, {hi}]")
    return float(value)


def boolean(body: Mapping[str, Any], field: str, default: bool = False) -> bool:
    value = body.get(field, MISSING)
    if value is MISSING:
        return default
    if not isinstance(value, bool):
        raise ApiError(400, "invalid_value", f"{field} must be true or false")
    return value


def string(body: Mapping[str, Any], field: str, *, pattern: re.Pattern | None = None, max_len: int = 200,
           required: bool = False) -> str | None:
    value = body.get(field, MISSING)
    if value is MISSING:
        if required:
            raise ApiError(400, "missing_field", f"{field} is required")
        return None
    if not isinstance(value, str) or not 0 < len(value) <= max_len or (pattern and not pattern.fullmatch(value)):
        raise ApiError(400, "invalid_value", f"{field} is not a valid value")
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
    allowed = set(allowed)
    if (not isinstance(value, list) or not 0 < len(value) <= max_items
            or not all(isinstance(v, str) and v in allowed for v in value) or len(set(value)) != len(value)):
        raise ApiError(400, "invalid_value", f"{field} must be a non-empty list of unique values from {sorted(allowed)}")
    return value


def pattern_list(body: Mapping[str, Any], field: str, pattern: re.Pattern, *, max_items: int = 50) -> list[str] | None:
    value = body.get(field, MISSING)
    if value is MISSING:
        return None
    if (not isinstance(value, list) or not 0 < len(value) <= max_items
            or not all(isinstance(v, str) and pattern.fullmatch(v) for v in value) or len(set(value)) != len(value)):
        raise ApiError(400, "invalid_value", f"{field} must be a non-empty list of unique, well-formed values")
    return value


def obj(body: Mapping[str, Any], field: str, allowed: Iterable[str]) -> dict[str, Any] | None:
    value = body.get(field, MISSING)
    if value is MISSING:
        return None
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_value", f"{field} must be an object")
    reject_unknown(value, allowed, where=field)
    return value
