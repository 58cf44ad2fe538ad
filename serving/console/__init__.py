"""The account managers' console: server-rendered pages over the same use cases as the JSON API.

Pages (``views/``, one module each) call ``serving.workflow``, ``serving.segments`` and
``serving.call_list`` — the functions the API calls — and render Jinja templates
(``templates/console/``) with htmx (vendored in ``static/``, no CDN) for partial updates. Sign-in
exchanges an API token for a signed session cookie (``sessions``); forms carry CSRF tokens; every
string goes through Flask-Babel (Chinese first, English on request: ``serving.i18n``, shared with the
API). Who sees which customer is the API's rule (``serving.access``, the books of the snapshot: ``context``), every
customer a page shows is in the audit log, and a session has its token's rate limit.
"""
from __future__ import annotations

from pathlib import Path

from flask import Flask

from ..api.common import EXTENSION
from ..nightly_lists import FILE, NightlyLists
from . import filters, sessions, views  # views: importing them adds their routes to the blueprint
from .blueprint import bp
from .context import NIGHTLY

__all__ = ["init_app", "views"]


def init_app(app: Flask) -> None:
    """Attach sessions, CSRF, translations and the nightly lists, then register the pages."""
    sessions.init_app(app)  # translations: serving.i18n, attached by create_app for API and console
    data_dir = Path(app.config["LINGXI_DATA_DIR"])

    def served_root() -> Path:
        """The published version's data dir when it has its nightly lists, else the working one."""
        release = app.extensions[EXTENSION].release()
        root = release.root if release is not None else data_dir
        return root if (root / FILE).exists() else data_dir

    app.extensions[NIGHTLY] = NightlyLists(
        served_root, background=bool(app.config["LINGXI_SNAPSHOT_BACKGROUND_RELOAD"]),
        check_seconds=float(app.config["LINGXI_SNAPSHOT_CHECK_SECONDS"]))
    filters.init_app(app)
    app.register_blueprint(bp)
