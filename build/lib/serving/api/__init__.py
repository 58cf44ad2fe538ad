"""Blueprints: health (``/healthz``, ``/readyz``) and the versioned API under ``/api/v1``."""
from __future__ import annotations

from flask import Flask

API_PREFIX = "/api/v1"


def register(app: Flask) -> None:
    from . import (
        customers,
        dashboard,
        docs,
        feedback,
        health,
        products,
        recommendations,
        segments,
    )

    app.register_blueprint(health.bp)
    for module in (docs, customers, segments, recommendations, feedback, products, dashboard):
        app.register_blueprint(module.bp, url_prefix=API_PREFIX)
