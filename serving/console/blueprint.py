"""The ``console`` blueprint, its navigation and its HTML error pages.

Pages add themselves to the navigation with ``nav_item`` (endpoint, label, order, roles): the base
template shows each user the items of their role, by ``order`` (Today 10, Customer 20, Segments 30;
later pages take higher numbers).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Blueprint, g, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from ..errors import ApiError
from .sessions import csrf

log = logging.getLogger("lingxi.serving")

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static")


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: object   # a lazy translated string
    roles: tuple[str, ...]
    order: int


NAV: list[NavItem] = []


def nav_item(endpoint: str, label: object, order: int, roles: tuple[str, ...] = ("manager", "admin")) -> None:
    """Show ``endpoint`` in the navigation of ``roles``, at position ``order`` (ascending)."""
    if all(item.endpoint != endpoint for item in NAV):
        NAV.append(NavItem(endpoint, label, roles, order))
        NAV.sort(key=lambda item: item.order)


@bp.app_context_processor
def navigation() -> dict:
    principal = g.get("principal")
    items = [item for item in NAV if principal is not None and principal.role in item.roles]
    return {"nav_items": items, "principal": principal}


@bp.before_request
def check_csrf() -> None:
    """Every form the console receives carries its session's CSRF token (400 otherwise)."""
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        csrf.protect()


MESSAGES = {
    400: _l("The request could not be understood."),
    403: _l("You may not open this page."),
    404: _l("Not found."),
    409: _l("The data changed meanwhile; please start again."),
    422: _l("The request could not be carried out."),
    429: _l("Too many requests; wait a moment and try again."),
    503: _l("The service is not ready yet; try again in a minute."),
}


CODE_MESSAGES = {
    "not_in_book": _l("This customer is not in your book."),
    "unknown_customer": _l("No customer with this id."),
    "unknown_recommendation": _l("No recommendation with this id."),
    "no_feedback": _l("Answer at least one product before asking for the second list."),
    "not_stage_one": _l("The second list re-ranks a first list only."),
    "product_not_shown": _l("An answer names a product this list did not show."),
    "engine_unavailable": _l("The recommendation engine is not loaded yet."),
    "snapshot_unavailable": _l("No customer snapshot is loaded yet."),
    "snapshot_changed": _l("The customer data was refreshed meanwhile; please start again."),
    "idempotency_conflict": _l("These answers were already saved differently."),
    "no_answers": _l("Choose an answer for at least one product."),
    "manager_only": _l("Only the customer’s account manager records answers."),
    "admin_read_only": _l("An administrator reads every book but writes nothing in a manager’s name."),
}


def _page(status: int, detail: str | None = None):
    template = "console/_error.html" if request.headers.get("HX-Request") else "console/error.html"
    return render_template(template, status=status, message=MESSAGES.get(status, MESSAGES[422]),
                           detail=detail), status


@bp.errorhandler(CSRFError)
def csrf_error(exc: CSRFError):
    return _page(400, str(_l("The form had no valid security token; reload the page and try again.")))


@bp.errorhandler(ApiError)
def api_error(exc: ApiError):
    message = CODE_MESSAGES.get(exc.code)
    return _page(exc.status, str(message) if message is not None else exc.text())


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    return _page(exc.code or 500)
