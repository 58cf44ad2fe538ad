"""Lingxi serving: the Flask app behind ``gunicorn "serving:create_app()"``.

``create_app(test_config=None)`` reads the configuration from the environment (``serving.config``),
applies ``test_config`` on top, and attaches the resources in ``init_app`` style: JSON errors,
request logs, the audit log, tokens and rate limits, the product catalogue, the feedback store, the
Prometheus metrics and the release manager (customer snapshot and engine of the published version,
``serving.release``); then the API's blueprints and the managers' console (``serving.console``).
Nothing is read or opened at import time, and nothing that can fail or take long (database, model,
snapshot) blocks the boot.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from ml.core.catalogue import load_catalogue
from ml.engine.arms import ArmShares

from . import audit_log, auth, console, errors, i18n, logs, metrics, ratelimit, release
from . import config as serving_config
from .api import register
from .api.common import EXTENSION
from .as_of import AsOfSetting
from .feedback_push import FeedbackPusher
from .release import LiveEngineSlot, ReleaseManager, catch_up_feedback
from .store import open_store
from .workflow import Services

__all__ = ["create_app"]

OPENAPI_FILE = Path(__file__).with_name("openapi.yaml")


class _JsonProvider(DefaultJSONProvider):
    sort_keys = False     # keep the documented field order
    ensure_ascii = False  # product names are Chinese


@lru_cache(maxsize=4)
def _parse_openapi(path: str, mtime_ns: int) -> dict[str, Any]:
    import yaml  # type: ignore[import-untyped]

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: 10x faster
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader)  # noqa: S506 - a safe loader


def _load_openapi() -> dict[str, Any]:
    """The OpenAPI document (parsed once per process; read-only, served as JSON)."""
    return _parse_openapi(str(OPENAPI_FILE), OPENAPI_FILE.stat().st_mtime_ns)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app. ``test_config`` overrides ``LINGXI_*`` keys; ``LINGXI_ENGINE`` may be an engine
    object, and ``LINGXI_CLOCK`` a zero-argument callable returning an aware UTC datetime (tests)."""

    app = Flask(__name__)
    app.config.from_mapping(serving_config.from_env())
    if test_config:
        app.config.from_mapping(test_config)
    serving_config.finalise(app.config)
    app.json = _JsonProvider(app)

    i18n.init_app(app)  # first: errors and pages speak the request's language
    errors.init_app(app)
    logs.init_app(app)
    audit_log.init_app(app)  # after the request log: the log shows a status the audit may change
    auth.init_app(app)
    ratelimit.init_app(app)

    data_dir = Path(app.config["LINGXI_DATA_DIR"])
    catalogue = load_catalogue(Path(app.config["LINGXI_PRODUCTS_CSV"]))
    # nothing below waits for a database, and the version (model, snapshot) loads in a background
    # thread that the boot waits for at most LINGXI_BOOT_WAIT_SECONDS: past that, or when a load
    # fails, the worker is up anyway, answers 503 with the reason and retries what failed
    store = open_store(app.config["LINGXI_FEEDBACK_DB_URL"], create=False, timezone=app.config["LINGXI_TIMEZONE"],
                       connect_timeout=float(app.config["LINGXI_DB_CONNECT_TIMEOUT_SECONDS"]),
                       timeout=float(app.config["LINGXI_DB_TIMEOUT_SECONDS"]))
    releases = ReleaseManager(data_dir, catalogue, app.config["LINGXI_ENGINE"],
                              check_seconds=float(app.config["LINGXI_SNAPSHOT_CHECK_SECONDS"]),
                              background=bool(app.config["LINGXI_SNAPSHOT_BACKGROUND_RELOAD"]),
                              retry_seconds=float(app.config["LINGXI_LOAD_RETRY_SECONDS"]),
                              retry_max_seconds=float(app.config["LINGXI_LOAD_RETRY_MAX_SECONDS"]))
    pusher = FeedbackPusher(store, LiveEngineSlot(releases), float(app.config["LINGXI_PUSH_INTERVAL_SECONDS"]),
                            max_attempts=int(app.config["LINGXI_PUSH_MAX_ATTEMPTS"]))
    releases.on_new_version = lambda new: catch_up_feedback(store, pusher, new)
    services = Services(
        catalogue=catalogue, releases=releases, store=store, pusher=pusher,
        suppression_days=int(app.config["LINGXI_SUPPRESSION_DAYS"]),
        trigger_window_days=int(app.config["LINGXI_TRIGGER_WINDOW_DAYS"]),
        timezone=app.config["LINGXI_TIMEZONE"],
        as_of_setting=AsOfSetting.parse(app.config["LINGXI_AS_OF"]),
        arm_shares=ArmShares(challenger=float(app.config["LINGXI_CHALLENGER_SHARE"]),
                             control=float(app.config["LINGXI_CONTROL_SHARE"]), salt=str(app.config["LINGXI_ARM_SALT"])),
    )
    if app.config.get("LINGXI_CLOCK"):
        services.clock = app.config["LINGXI_CLOCK"]
    app.extensions[EXTENSION] = services
    app.extensions["lingxi_openapi"] = _load_openapi()
    release.init_app(app, releases)
    releases.start(wait_seconds=float(app.config["LINGXI_BOOT_WAIT_SECONDS"]))

    metrics.init_app(app)
    register(app)
    console.init_app(app)
    return app
