"""Log in with an API token, log out, switch the language."""
from __future__ import annotations

from flask import current_app, flash, make_response, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from ...auth import EXTENSION as TOKENS
from .. import sessions
from ..blueprint import bp
from ..i18n import COOKIE, LANGUAGES

MAX_TOKEN_CHARS = 200


@bp.get("/")
def index():
    """The console's home is the call list."""
    return redirect(url_for("console.today"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    """A token for a session: managers and admins only (the CRM integration has no console)."""
    next_url = sessions.safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("console/login.html", next_url=next_url)
    token = request.form.get("token", "").strip()[:MAX_TOKEN_CHARS]
    principal = current_app.extensions[TOKENS].authenticate(token) if token else None
    if principal is None or principal.role not in sessions.CONSOLE_ROLES:
        flash(_("This token is not valid for the console."), "error")
        return render_template("console/login.html", next_url=next_url), 401
    sessions.start(principal)
    return redirect(next_url)


@bp.post("/logout")
def logout():
    """End the session (the form carries its CSRF token like every other)."""
    session.clear()
    flash(_("You are logged out."), "info")
    return redirect(url_for("console.login"))


@bp.get("/lang/<code>")
def language(code: str):
    """Remember the chosen language in a cookie and go back where the user was."""
    response = make_response(redirect(sessions.safe_next(request.args.get("next"))))
    if code in LANGUAGES:
        response.set_cookie(COOKIE, code, max_age=365 * 24 * 3600, samesite="Lax", httponly=True,
                            secure=bool(current_app.config["LINGXI_CONSOLE_SECURE_COOKIE"]))
    return response
