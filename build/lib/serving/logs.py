"""Structured JSON request logs: one line per request, no customer data beyond the id.

A line carries: time, level, event, request id, method, the *route template* (never the raw path
or query string, which may hold ids), status, latency in ms, the caller's token name and role, and
``customer_id`` / ``recommendation_id`` when a view set them on ``g``. Bodies are never logged.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import datetime, timezone

from flask import Flask, g, request

LOGGER_NAME = "lingxi.serving"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_EXTRA_FIELDS = ("request_id", "method", "route", "status", "latency_ms", "token", "role",
                 "customer_id", "recommendation_id", "event", "stack")


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object; only whitelisted extra fields are included."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in _EXTRA_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logger(level: str = "INFO") -> logging.Logger:
    """Attach one JSON stderr handler to the ``lingxi.serving`` logger (idempotent)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level.upper())
    if not any(getattr(h, "_lingxi", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._lingxi = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False
    return logger


def _start() -> None:
    g.started = time.perf_counter()
    incoming = request.headers.get("X-Request-Id", "")
    g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex


def _finish(response):
    started = g.get("started")
    latency_ms = round((time.perf_counter() - started) * 1000, 3) if started else None
    rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
    principal = g.get("principal")
    logging.getLogger(LOGGER_NAME).info(
        "request",
        extra={
            "event": "request",
            "request_id": g.get("request_id"),
            "method": request.method,
            "route": rule,
            "status": response.status_code,
            "latency_ms": latency_ms,
            "token": principal.name if principal else None,
            "role": principal.role if principal else None,
            "customer_id": g.get("log_customer_id"),
            "recommendation_id": g.get("log_recommendation_id"),
        },
    )
    if g.get("request_id"):
        response.headers["X-Request-Id"] = g.request_id
    return response


def init_app(app: Flask) -> None:
    configure_logger(app.config.get("LINGXI_LOG_LEVEL", "INFO"))
    app.before_request(_start)
    app.after_request(_finish)
