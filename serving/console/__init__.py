"""The account managers' console: server-rendered pages over the same use cases as the JSON API.

Pages (``views/``, one module each) call ``serving.workflow``, ``serving.segments`` and
``serving.call_list`` — the functions the API calls — and render Jinja templates
(``templates/console/``) with htmx (vendored in ``static/``, no CDN) for partial updates. Sign-in
exchanges an API token for a signed session cookie (``sessions``); forms carry CSRF tokens; every
string goes through Flask-Babel (Chinese first, English on request: ``i18n``). Who sees which
customer is the API's rule (``serving.access``, the books of the snapshot: ``context``), every
customer a page shows is in the audit log, and a session has its token's rate limit.
"""
from __future__ import annotations

from flask import Flask

from . import filters, i18n, sessions, views  # views: importing them adds their routes to the blueprint
from .blueprint import bp

__all__ = ["init_app", "views"]


def init_app(app: Flask) -> None:
    """Attach sessions, CSRF and translations, then register the pages."""
    sessions.init_app(app)
    i18n.init_app(app)
    filters.init_app(app)
    app.register_blueprint(bp)
