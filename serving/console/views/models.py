"""Models (admin): the published versions with their model's metrics, which is current, rollback.

A rollback asks for confirmation first, then calls ``ml.engine.rollback.rollback`` (the command's
function: the pointer switched under the publication lock, the rollback recorded with who and why);
the workers load the version within seconds, without a restart.
"""
from __future__ import annotations

import logging
from pathlib import Path

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ml.core.versions import VERSION_ID, VersionError
from ml.engine import rollback as versions

from ...errors import ApiError
from .. import context as ctx
from ..blueprint import bp, nav_item
from ..sessions import login_required

nav_item("console.models", _l("Models"), 70, roles=("admin",))
log = logging.getLogger("lingxi.serving")
MAX_REASON = 200


def _data_dir() -> Path:
    return Path(current_app.config["LINGXI_DATA_DIR"])


def _served() -> str | None:
    release = ctx.services().release()
    return release.version if release is not None and release.published else None


@bp.get("/models")
@login_required("admin")
def models():
    """Every published version, newest first, and the rollbacks made."""
    return render_template("console/models.html", versions=versions.summaries(_data_dir()), served=_served(),
                           rollbacks=versions.history(_data_dir()))


def _version_or_404(version: str) -> dict:
    found = next((s for s in versions.summaries(_data_dir()) if s["version"] == version), None)
    if not VERSION_ID.match(version) or found is None:
        raise ApiError(404, "unknown_version", "no published version with this id")
    return found


@bp.get("/models/<version>/rollback")
@login_required("admin")
def confirm_rollback(version: str):
    """The confirmation step: what will be served instead of what."""
    target = _version_or_404(version)
    current = next((s for s in versions.summaries(_data_dir()) if s["current"]), None)
    return render_template("console/rollback.html", target=target, current=current)


@bp.post("/models/<version>/rollback")
@login_required("admin")
def rollback(version: str):
    """Switch the published-version pointer back to ``version`` (confirmed), recorded with who and why."""
    _version_or_404(version)
    if request.form.get("confirm") != version:
        flash(_("Type the version id to confirm the rollback."), "error")
        return redirect(url_for("console.confirm_rollback", version=version))
    principal = ctx.principal()
    reason = request.form.get("reason", "").strip()[:MAX_REASON]
    try:
        record = versions.rollback(_data_dir(), version, f"{principal.name} ({principal.token_id})", reason)
    except VersionError as exc:
        raise ApiError(409, "rollback_refused", str(exc)) from None
    log.warning("rollback of the published version", extra={"event": "rollback", **record})
    flash(_("Version %(version)s is current again; the servers switch to it within seconds.", version=version), "info")
    return redirect(url_for("console.models"))
