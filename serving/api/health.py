"""Liveness and readiness (no token needed)."""
from __future__ import annotations

from flask import Blueprint, jsonify

from .common import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """Model, features, customer snapshot and feedback store loaded; 503 with the reasons if not."""
    svc = services()
    checks = {}
    slot = svc.engine_slot
    if slot.engine is not None:
        try:
            checks["engine"] = {"ok": True, "spec": slot.spec, "versions": dict(slot.engine.versions())}
        except Exception as exc:  # noqa: BLE001 - report, do not crash the probe
            checks["engine"] = {"ok": False, "spec": slot.spec, "error": type(exc).__name__}
    else:
        checks["engine"] = {"ok": False, "spec": slot.spec, "error": slot.error}
    snapshot = svc.snapshots.current()
    checks["snapshot"] = {
        "ok": snapshot is not None,
        "version": snapshot.version if snapshot else None,
        "rows": snapshot.rows if snapshot else 0,
        "loaded_at": snapshot.loaded_at.isoformat() if snapshot else None,
        "as_of": snapshot.as_of if snapshot else None,
        "warnings": list(snapshot.warnings) if snapshot else [],
        "error": svc.snapshots.last_error,
    }
    try:
        svc.store.ping()
        checks["store"] = {"ok": True, "backend": svc.store.backend}
    except Exception as exc:  # noqa: BLE001
        checks["store"] = {"ok": False, "backend": svc.store.backend, "error": type(exc).__name__}
    ready = all(check["ok"] for check in checks.values())
    response = jsonify({"status": "ready" if ready else "not_ready", "checks": checks})
    response.status_code = 200 if ready else 503
    return response
