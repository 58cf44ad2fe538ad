"""What the console's views share: the services, who acts and whose book bounds what they see.

The book rule is ``serving.access`` (the API's): a manager reaches the customers of their own book,
an admin every book (or the one chosen) and writes nothing in a manager's name. One difference in
what a manager is told: a customer or list outside the book is 403 "not in your book" — and so is an
id that does not exist, so the answer never confirms that a customer of another book exists.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
from flask import current_app, g, request

from .. import access
from ..api.common import EXTENSION
from ..auth import Principal
from ..errors import ApiError
from ..nightly_lists import NightlyLists
from ..validation import HEX32
from ..workflow import Services

T = TypeVar("T")
NIGHTLY = "lingxi_nightly_lists"


def services() -> Services:
    return current_app.extensions[EXTENSION]


def nightly() -> NightlyLists:
    return current_app.extensions[NIGHTLY]


def principal() -> Principal:
    return g.principal


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def scope(manager_id: str | None = None) -> access.Scope:
    """This request's reach (kept on ``g`` for the audit log); ``manager_id``: the book an admin chose."""
    params = {"manager_id": manager_id} if manager_id and principal().role == "admin" else {}
    g.scope = access.scope_for(principal(), params)
    return g.scope


def segment_cap(reach: access.Scope) -> int | None:
    """How many customers of a book a manager's segment reaches (the API's cap); None for an admin."""
    return int(current_app.config["LINGXI_SEGMENT_BOOK_CAP"]) if reach.capped else None


def customer_id_or_404(value: str) -> str:
    """A customer id from a URL: 32 hex characters (upper case), else like an unknown id."""
    value = (value or "").strip().upper()
    if not HEX32.fullmatch(value):
        raise refusal("unknown_customer")
    g.log_customer_id = value
    return value


def refusal(code: str) -> ApiError:
    """Not found: 403 "not in your book" for a manager (whether or not the id exists), else 404."""
    if g.get("principal") is not None and principal().role == "manager":
        return ApiError(403, "not_in_book", "this customer is not in your book")
    return ApiError(404, code, "not found")


def in_book(call: Callable[[], T]) -> T:
    """Run a workflow call; for a manager, its 404 for an unknown or other-book customer becomes 403."""
    try:
        return call()
    except ApiError as exc:
        if exc.status == 404 and exc.code in ("unknown_customer", "unknown_recommendation"):
            raise refusal(exc.code) from None
        raise


def book_ids(manager_id: str | None) -> list[str]:
    """The customer ids of a manager's book in the current snapshot (none for None)."""
    if manager_id is None:
        return []
    snapshot = services().snapshot()
    return [i.decode("ascii") for i in snapshot.ids[snapshot.books.mask(manager_id)]]


def managers() -> list[str]:
    """The books an admin may pick (none for a manager: their own is the only one)."""
    return services().snapshot().books.managers() if principal().role == "admin" else []


def book_mask(reach: access.Scope) -> np.ndarray:
    snapshot = services().snapshot()
    return snapshot.books.mask(reach.book) if reach.book is not None else np.ones(snapshot.rows, dtype=bool)
