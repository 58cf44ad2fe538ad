"""Console sessions: an API token exchanged for a signed, expiring session cookie.

The cookie (Flask's signed session) holds the token's id, role and manager id — never the token.
Every request looks the id up again in the token registry, so revoking the token ends its sessions.
The signing key comes from ``LINGXI_SECRET_KEY`` or, when unset, a random key generated once into
the data directory (shared by every gunicorn worker). Forms are CSRF-protected (Flask-WTF) on the
console's routes only: the JSON API keeps bearer tokens and is not affected.
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, g, redirect, request, session, url_for
from flask_wtf.csrf import CSRFProtect

from ..auth import EXTENSION as TOKENS, Principal
from ..ratelimit import EXTENSION as RATE_LIMITS

CONSOLE_ROLES = ("manager", "admin")  # people; the CRM integration has no console
SECRET_FILE = "console_secret.key"
csrf = CSRFProtect()


def secret_key(config: dict[str, Any]) -> str:
    """``LINGXI_SECRET_KEY``, else the data directory's key file (created once, mode 0600)."""
    if config.get("LINGXI_SECRET_KEY"):
        return str(config["LINGXI_SECRET_KEY"])
    path = Path(config["LINGXI_DATA_DIR"]) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker (or an earlier start) made it
        key = path.read_text(encoding="ascii").strip()
        if key:
            return key
        raise RuntimeError(f"{path} is empty: remove it or set LINGXI_SECRET_KEY") from None
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    return key


def init_app(app: Flask) -> None:
    minutes = int(app.config["LINGXI_CONSOLE_SESSION_MINUTES"])
    app.config.update(
        SECRET_KEY=secret_key(app.config),
        SESSION_COOKIE_NAME="lingxi_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=bool(app.config["LINGXI_CONSOLE_SECURE_COOKIE"]),
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=minutes),
        WTF_CSRF_CHECK_DEFAULT=False,  # checked by the console's own before_request, not on the API
        WTF_CSRF_TIME_LIMIT=minutes * 60,
    )
    csrf.init_app(app)


def start(principal: Principal) -> None:
    """A fresh session for ``principal`` (a new cookie: no fixation of an earlier one)."""
    session.clear()
    session.permanent = True
    session.update(tid=principal.token_id, role=principal.role, mid=principal.manager_id)


def current() -> Principal | None:
    """The signed-in principal, if the session's token is still registered with the same identity."""
    token_id = session.get("tid")
    if not token_id:
        return None
    principal = current_app.extensions[TOKENS].principal(token_id)
    if principal is None or principal.role != session.get("role") or principal.manager_id != session.get("mid"):
        session.clear()
        return None
    return principal


def safe_next(target: str | None) -> str:
    """Only a path inside the console: never an open redirect to another site."""
    if target and target.startswith("/console/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("console.today")


def login_required(*roles: str) -> Callable:
    """View decorator: a signed-in console user (redirect to the login page), of one of ``roles`` (403)."""
    allowed = roles or CONSOLE_ROLES

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any):
            principal = current()
            if principal is None:
                target = url_for("console.login", next=request.full_path.rstrip("?"))
                if request.headers.get("HX-Request"):
                    return "", 401, {"HX-Redirect": target}
                return redirect(target)
            if principal.role not in allowed:
                abort(403)
            limiter = current_app.extensions.get(RATE_LIMITS)
            if limiter is not None:
                limiter.check(principal)  # a session has its token's rate limit (429 past it)
            g.principal = principal
            return view(*args, **kwargs)

        return wrapper

    return decorate
