"""JSON errors: every error response is ``{"error": {"code": ..., "message": ...}}``, in the request's
language (``serving.i18n``). An error about one value of the request also names it: ``field`` (its
path, ``filters/age/min``; a query parameter or header by its name) and, for a value of the JSON
body, ``pointer`` (the RFC 6901 JSON pointer, ``/filters/age/min``). One error names one field.

Status policy (also in the OpenAPI document):

- 400 the request is malformed (anything the OpenAPI schema can express): not JSON, wrong types,
  unknown fields, ids that are not 32 hex characters, values outside their enum or range, bad
  paging (limit out of range, malformed cursor), bad dates, repeated identical items.
- 401 no or unknown bearer token; 403 the token's role may not do this (``admin_read_only`` when
  admin would write in a manager's name), or a manager acting under another manager's id.
- 404 unknown customer or recommendation (or route) - and a customer outside the caller's book,
  or a list about one, with the very same body (``serving.access``).
- 409 an idempotency key reused by the same caller with a different body; a paging cursor from an
  older snapshot.
- 413 body too large; 415 body is not ``application/json``.
- 422 schema-valid but impossible: cross-field rules (a min above its max, ``from`` after ``to``),
  an unknown product or category, feedback for a product that the recommendation did not show or
  the same product twice with different responses, stage two on a stage-two recommendation or
  before any feedback, a cold-start product id that already exists.
- 429 the token's rate limit (``Retry-After`` says when to retry; ``serving.ratelimit``).
- 501 the loaded engine does not implement this capability (cold start).
- 503 a dependency is not loaded yet or unreachable (engine, customer snapshot, feedback store, tokens
  file), with the reason in the message and a ``Retry-After``; or a
  customer read could not be recorded in the audit log (``audit_unavailable``).
"""
from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from flask import Flask, g, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger("lingxi.serving")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "too_many_requests",
    431: "headers_too_large",
    500: "internal_error",
    501: "not_implemented",
    503: "unavailable",
}


class ApiError(Exception):
    """A client-facing error with a status, a stable machine code and a message.

    ``message`` is an English template (``%(name)s`` placeholders, filled from ``params``), translated
    when the answer is written. ``field``: the path of the offending value (``("filters", "age",
    "min")``, or a parameter's name); ``in_body`` says whether it is a value of the JSON body (then
    the answer carries its JSON pointer)."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None,
                 params: Mapping[str, Any] | None = None, field: Sequence[str | int] | str | None = None,
                 in_body: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.params = dict(params or {})
        self.field: tuple[str | int, ...] | None = (field,) if isinstance(field, str) else \
            (tuple(field) if field is not None else None)
        self.in_body = in_body
        self.headers = headers or {}

    def text(self) -> str:
        """The message in the request's language."""
        from .i18n import translate

        return translate(self.message, {k: str(v) for k, v in self.params.items()} if self.params else None)


def pointer(path: Sequence[str | int]) -> str:
    """The RFC 6901 JSON pointer of a path (``~`` and ``/`` escaped)."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def error_body(code: str, message: str, field: Sequence[str | int] | None = None, in_body: bool = True
               ) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code}
    if field:
        error["field"] = "/".join(str(part) for part in field)
        if in_body:
            error["pointer"] = pointer(field)
    error["message"] = message
    return {"error": error}


def _api_error(exc: ApiError):
    response = jsonify(error_body(exc.code, exc.text(), exc.field, exc.in_body))
    response.status_code = exc.status
    for key, value in exc.headers.items():
        response.headers[key] = value
    return response


def _http_error(exc: HTTPException):
    from .i18n import translate

    status = exc.code or 500
    message = translate(exc.description or exc.name)
    response = jsonify(error_body(_HTTP_CODES.get(status, exc.name.lower().replace(" ", "_")), message))
    response.status_code = status
    if status == 405 and exc.response is None:
        allowed = getattr(exc, "valid_methods", None)
        if allowed:
            response.headers["Allow"] = ", ".join(sorted(allowed))
    return response


def _unexpected(exc: Exception):
    # The type and the stack frames only: an exception's message may quote customer data.
    stack = "".join(traceback.format_tb(exc.__traceback__))
    log.error("unhandled %s", type(exc).__name__, extra={"request_id": g.get("request_id"), "stack": stack,
                                                         "event": "unhandled_exception"})
    from .i18n import translate

    response = jsonify(error_body("internal_error", translate("internal error")))
    response.status_code = 500
    return response


def _store_unavailable(exc: Exception):
    log.warning("feedback store unavailable: %s", exc, extra={"request_id": g.get("request_id"),
                                                              "event": "store_unavailable"})
    return _api_error(ApiError(503, "store_unavailable", "the feedback store is unavailable: %(reason)s",
                               params={"reason": str(exc)}, headers={"Retry-After": "1"}))


def init_app(app: Flask) -> None:
    """Register the app-level handlers (so 404/405 from routing are JSON too)."""
    from .store import StoreUnavailable

    app.register_error_handler(StoreUnavailable, _store_unavailable)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
