"""Liveness and readiness (no token needed)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from ..auth import EXTENSION as TOKENS
from .common import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """The version this worker answers from, with its engine and customer snapshot, the feedback
    store and the tokens; 503 with the reasons if any is not usable."""
    svc = services()
    release = svc.release()
    checks = {"version": svc.releases.status()}
    slot = svc.engine_slot
    if slot.engine is not None:
        try:
            checks["engine"] = {"ok": True, "spec": slot.spec, "versions": dict(slot.engine.versions())}
        except Exception as exc:  # noqa: BLE001 - report, do not crash the probe
            checks["engine"] = {"ok": False, "spec": slot.spec, "error": type(exc).__name__}
    else:
        checks["engine"] = {"ok": False, "spec": slot.spec, "error": slot.error}
    snapshot = release.snapshot if release is not None else None
    checks["snapshot"] = {
        "ok": snapshot is not None,
        "version": snapshot.version if snapshot else None,
        "rows": snapshot.rows if snapshot else 0,
        "loaded_at": snapshot.loaded_at.isoformat() if snapshot else None,
        "as_of": snapshot.as_of if snapshot else None,
        "warnings": list(snapshot.warnings) if snapshot else [],
        "error": None if snapshot else (release.snapshot_error if release else svc.releases.reason()),
    }
    try:
        svc.store.ping()
        checks["store"] = {"ok": True, "backend": svc.store.backend}
    except Exception as exc:  # noqa: BLE001
        checks["store"] = {"ok": False, "backend": svc.store.backend, "error": str(exc) or type(exc).__name__}
    checks["tokens"] = current_app.extensions[TOKENS].status()
    ready = all(check["ok"] for check in checks.values())
    response = jsonify({"status": "ready" if ready else "not_ready",
                        "version": release.version if release else None, "checks": checks})
    response.status_code = 200 if ready else 503
    return response
