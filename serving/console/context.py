"""What the console's views share: the services, the books, who acts, and the book check."""
from __future__ import annotations

from pathlib import Path

from flask import current_app, g, request

from ..api.common import EXTENSION
from ..auth import Principal
from ..errors import ApiError
from ..validation import HEX32
from ..workflow import Services
from .books import Books, can_see

BOOKS = "lingxi_console_books"


def services() -> Services:
    return current_app.extensions[EXTENSION]


def books() -> Books:
    return current_app.extensions[BOOKS]


def data_dir() -> Path:
    return Path(current_app.config["LINGXI_DATA_DIR"])


def principal() -> Principal:
    return g.principal


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def customer_id_or_404(value: str) -> str:
    """A customer id from a URL: 32 hex characters (upper case), else 404 like an unknown id."""
    value = (value or "").strip().upper()
    if not HEX32.fullmatch(value):
        raise ApiError(404, "unknown_customer", "no customer with this id")
    g.log_customer_id = value
    return value


def require_visible(customer_id: str) -> None:
    """403 when the signed-in manager's book does not hold this customer (admins see all)."""
    if not can_see(books(), principal(), customer_id):
        raise ApiError(403, "not_in_book", "this customer is not in your book")


def acting_manager() -> str | None:
    """Whose name lists and answers are logged under: a manager's own id; an admin acts for no one."""
    who = principal()
    return who.manager_id if who.role == "manager" else None


def scoped_manager(requested: str | None) -> str | None:
    """The book a page shows: a manager always their own; an admin the one asked for (None: all)."""
    who = principal()
    if who.role == "manager":
        return who.manager_id
    return requested if requested in books().manager_ids() else None
