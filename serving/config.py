"""Serving configuration, read from the environment when the app is created (never at import).

Every key is a ``LINGXI_*`` name; ``create_app(test_config)`` may override any of them.

| key | default | meaning |
|---|---|---|
| LINGXI_DATA_DIR | ``ml.core.config.Paths`` default (``data/``) | data directory (marts, feedback.db, tokens) |
| LINGXI_FEEDBACK_DB_URL | ``sqlite:///$LINGXI_DATA_DIR/feedback.db`` | ``sqlite:///path`` or ``postgresql://...`` |
| LINGXI_TOKENS_FILE | ``$LINGXI_DATA_DIR/tokens.json`` | hashed API tokens (JSON or TOML), see ``serving.tokens`` |
| LINGXI_TOKENS | (empty) | the same structure as JSON text, merged with the file |
| LINGXI_ENGINE | ``ml.engine.loading:load_engine`` | ``module:callable`` returning the engine; called with ``data_dir=``. Tests set e.g. ``serving_fakes:FakeEngine`` (testing hook) or inject an object |
| LINGXI_PRODUCTS_CSV | ``seeds/products.csv`` | product catalogue |
| LINGXI_MAX_BODY_BYTES | 65536 | larger bodies get 413 |
| LINGXI_SUPPRESSION_DAYS | 90 | "not interested" hides a product from a customer for this many days |
| LINGXI_TRIGGER_WINDOW_DAYS | 30 | a trigger event this recent counts as an open window |
| LINGXI_TIMEZONE | Asia/Shanghai | dashboard date ranges are local dates in this zone |
| LINGXI_AS_OF | now | the date answers count from (suppressions, days in reasons and triggers, the dashboard): ``now``, ``data`` (the served snapshot's date; the demo) or ``YYYY-MM-DD``; see ``serving.as_of`` |
| LINGXI_LANGUAGE | zh-CN | the language of answers and pages when the request names none we speak (``zh-CN`` or ``en``; the API follows ``Accept-Language``, the console its cookie) |
| LINGXI_PUSH_INTERVAL_SECONDS | 0.5 | feedback aggregates reach the online store within this (0: in the request); see ``serving.feedback_push`` |
| LINGXI_PUSH_MAX_ATTEMPTS | 8 | a failed push is retried (backing off from the interval) this many times in all, then logged as given up |
| LINGXI_SNAPSHOT_CHECK_SECONDS | 2 | how often a request may read the version pointer (``versions/CURRENT``, or the marts when nothing is published); see ``serving.release`` |
| LINGXI_SNAPSHOT_BACKGROUND_RELOAD | 1 | load versions (the first one too) in a background thread (0: in ``create_app`` / the request) |
| LINGXI_BOOT_WAIT_SECONDS | 20 | how long a booting worker waits for its first version before it starts answering (503 until loaded); keep it under half of gunicorn's ``timeout`` |
| LINGXI_LOAD_RETRY_SECONDS | 1 | first retry of a failed engine or snapshot load; doubles per failure |
| LINGXI_LOAD_RETRY_MAX_SECONDS | 60 | the longest wait between two load attempts |
| LINGXI_DB_CONNECT_TIMEOUT_SECONDS | 5 | PostgreSQL connect timeout (a refused connection fails at once) |
| LINGXI_DB_TIMEOUT_SECONDS | 10 | PostgreSQL ``statement_timeout`` and SQLite ``busy_timeout``: past it a request gets 503 |
| LINGXI_LOG_LEVEL | INFO | level of the ``lingxi.serving`` JSON logger |
| LINGXI_SECRET_KEY | (generated) | signs the console's session cookie; unset: a random key kept in ``$LINGXI_DATA_DIR/console_secret.key`` |
| LINGXI_CONSOLE_SESSION_MINUTES | 480 | a console login expires after this long |
| LINGXI_CONSOLE_SECURE_COOKIE | 0 | send the console's cookies over HTTPS only (set to 1 behind TLS) |
| LINGXI_CONTACT_COOLDOWN_DAYS | 14 | the call list leaves out customers shown a list or answered within this many days |
| LINGXI_CALL_LIST_MIN_MATCH | 80 | a nightly match score at least this high puts a customer on the call list |
| LINGXI_CALL_LIST_SIZE | 50 | customers per call-list page |
| LINGXI_METRICS_TOKEN | (empty) | when set, ``/metrics`` requires ``Authorization: Bearer <this>``; open otherwise (see ``serving.metrics``) |
| LINGXI_RATE_LIMITS | ``crm=300,manager=10,admin=10`` | requests per second per token by role (``off``: none); a token's own ``rate_limit`` wins; see ``serving.ratelimit`` |
| LINGXI_RATE_BURST_SECONDS | 2 | a token may burst this many seconds' worth of requests |
| LINGXI_RATE_WORKERS | ``$WEB_CONCURRENCY`` or 1 | gunicorn workers: each allows rate / workers |
| LINGXI_CHALLENGER_SHARE | 0.10 | share of customers (stable by a hash of the id) served the registered challenger; every other stage one scores it in shadow; see ``ml.engine.arms`` |
| LINGXI_CONTROL_SHARE | 0.05 | share of customers (stable by a hash of the id) served the rule-based match score: the always-on control group the impact report compares with (0 turns it off) |
| LINGXI_ARM_SALT | lingxi-arms-v1 | names the experiment: a new salt reshuffles the customers between arms |
| LINGXI_SEGMENT_BOOK_CAP | 1000 | a manager's (or the CRM's for a manager) segment query reaches at most this many customers of the book |
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ml.core.config import SEEDS_DIR, Paths

DEFAULT_ENGINE = "ml.engine.loading:load_engine"
DEFAULT_RATE_LIMITS = "crm=300,manager=10,admin=10"


def _bool(text: str) -> bool:
    return text.strip().lower() in {"1", "true", "yes", "on"}


def from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Build the configuration mapping from environment variables."""
    env = os.environ if env is None else env
    data_dir = Path(env["LINGXI_DATA_DIR"]).resolve() if env.get("LINGXI_DATA_DIR") else Paths.from_env().data
    return {
        "LINGXI_DATA_DIR": data_dir,
        "LINGXI_FEEDBACK_DB_URL": env.get("LINGXI_FEEDBACK_DB_URL") or None,
        "LINGXI_TOKENS_FILE": env.get("LINGXI_TOKENS_FILE") or None,
        "LINGXI_TOKENS": env.get("LINGXI_TOKENS", ""),
        "LINGXI_ENGINE": env.get("LINGXI_ENGINE") or DEFAULT_ENGINE,
        "LINGXI_PRODUCTS_CSV": Path(env.get("LINGXI_PRODUCTS_CSV") or SEEDS_DIR / "products.csv"),
        "LINGXI_MAX_BODY_BYTES": int(env.get("LINGXI_MAX_BODY_BYTES", 64 * 1024)),
        "LINGXI_SUPPRESSION_DAYS": int(env.get("LINGXI_SUPPRESSION_DAYS", 90)),
        "LINGXI_TRIGGER_WINDOW_DAYS": int(env.get("LINGXI_TRIGGER_WINDOW_DAYS", 30)),
        "LINGXI_TIMEZONE": env.get("LINGXI_TIMEZONE", "Asia/Shanghai"),
        "LINGXI_LANGUAGE": env.get("LINGXI_LANGUAGE") or "zh-CN",
        "LINGXI_AS_OF": env.get("LINGXI_AS_OF") or "now",
        "LINGXI_PUSH_INTERVAL_SECONDS": float(env.get("LINGXI_PUSH_INTERVAL_SECONDS", 0.5)),
        "LINGXI_PUSH_MAX_ATTEMPTS": int(env.get("LINGXI_PUSH_MAX_ATTEMPTS", 8)),
        "LINGXI_SNAPSHOT_CHECK_SECONDS": float(env.get("LINGXI_SNAPSHOT_CHECK_SECONDS", 2)),
        "LINGXI_SNAPSHOT_BACKGROUND_RELOAD": _bool(env.get("LINGXI_SNAPSHOT_BACKGROUND_RELOAD", "1")),
        "LINGXI_BOOT_WAIT_SECONDS": float(env.get("LINGXI_BOOT_WAIT_SECONDS", 20)),
        "LINGXI_LOAD_RETRY_SECONDS": float(env.get("LINGXI_LOAD_RETRY_SECONDS", 1)),
        "LINGXI_LOAD_RETRY_MAX_SECONDS": float(env.get("LINGXI_LOAD_RETRY_MAX_SECONDS", 60)),
        "LINGXI_DB_CONNECT_TIMEOUT_SECONDS": float(env.get("LINGXI_DB_CONNECT_TIMEOUT_SECONDS", 5)),
        "LINGXI_DB_TIMEOUT_SECONDS": float(env.get("LINGXI_DB_TIMEOUT_SECONDS", 10)),
        "LINGXI_LOG_LEVEL": env.get("LINGXI_LOG_LEVEL", "INFO"),
        "LINGXI_SECRET_KEY": env.get("LINGXI_SECRET_KEY") or None,
        "LINGXI_CONSOLE_SESSION_MINUTES": int(env.get("LINGXI_CONSOLE_SESSION_MINUTES", 480)),
        "LINGXI_CONSOLE_SECURE_COOKIE": _bool(env.get("LINGXI_CONSOLE_SECURE_COOKIE", "0")),
        "LINGXI_CONTACT_COOLDOWN_DAYS": int(env.get("LINGXI_CONTACT_COOLDOWN_DAYS", 14)),
        "LINGXI_CALL_LIST_MIN_MATCH": int(env.get("LINGXI_CALL_LIST_MIN_MATCH", 80)),
        "LINGXI_CALL_LIST_SIZE": int(env.get("LINGXI_CALL_LIST_SIZE", 50)),
        "LINGXI_METRICS_TOKEN": env.get("LINGXI_METRICS_TOKEN", ""),
        "LINGXI_RATE_LIMITS": env.get("LINGXI_RATE_LIMITS", DEFAULT_RATE_LIMITS),
        "LINGXI_RATE_BURST_SECONDS": float(env.get("LINGXI_RATE_BURST_SECONDS", 2)),
        "LINGXI_RATE_WORKERS": int(env.get("LINGXI_RATE_WORKERS") or env.get("WEB_CONCURRENCY") or 1),
        "LINGXI_SEGMENT_BOOK_CAP": int(env.get("LINGXI_SEGMENT_BOOK_CAP", 1000)),
        "LINGXI_CHALLENGER_SHARE": float(env.get("LINGXI_CHALLENGER_SHARE", 0.10)),
        "LINGXI_CONTROL_SHARE": float(env.get("LINGXI_CONTROL_SHARE", 0.05)),
        "LINGXI_ARM_SALT": env.get("LINGXI_ARM_SALT", "lingxi-arms-v1"),
    }


def finalise(config: dict[str, Any]) -> dict[str, Any]:
    """Fill the values that derive from others (after test overrides are applied)."""
    data_dir = Path(config["LINGXI_DATA_DIR"]).resolve()
    config["LINGXI_DATA_DIR"] = data_dir
    if not config.get("LINGXI_FEEDBACK_DB_URL"):
        config["LINGXI_FEEDBACK_DB_URL"] = sqlite_url(data_dir / "feedback.db")
    if not config.get("LINGXI_TOKENS_FILE"):
        config["LINGXI_TOKENS_FILE"] = data_dir / "tokens.json"
    config["LINGXI_TOKENS_FILE"] = Path(config["LINGXI_TOKENS_FILE"])
    config["MAX_CONTENT_LENGTH"] = int(config["LINGXI_MAX_BODY_BYTES"])
    return config


def sqlite_url(path: Path) -> str:
    """``sqlite:///`` followed by the path (an absolute path gives four slashes)."""
    return f"sqlite:///{Path(path)}"


def default_tokens_file(env: Mapping[str, str] | None = None) -> Path:
    """Where the token CLI and the app look for tokens when nothing is configured."""
    env = os.environ if env is None else env
    if env.get("LINGXI_TOKENS_FILE"):
        return Path(env["LINGXI_TOKENS_FILE"])
    return Path(from_env(env)["LINGXI_DATA_DIR"]) / "tokens.json"
