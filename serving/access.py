"""Who may see and do what: authorization by book of business.

- ``manager``: sees, recommends for, answers for and exports (segment pages) only the customers
  of their own book (``manager_books`` of the current snapshot), and acts only under their own
  manager id.
- ``crm``: the CRM integration acts for the manager each request names (``manager_id`` in the
  body, or the query string of a GET) and is held to that manager's book exactly like the manager.
- ``admin``: reads every customer (a ``manager_id`` narrows a read to that book) and writes nothing
  in a manager's name: no stage one, stage two or feedback (403 ``admin_read_only``, from the
  views' role lists).

A customer outside the caller's book answers exactly like a customer that does not exist: 404
``unknown_customer`` (or ``unknown_recommendation`` for a list about such a customer), same body.
A 403 would confirm that the id belongs to a customer of the bank, which is already more than a
manager may learn about another manager's customers, and would let a token enumerate the snapshot.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .auth import MANAGER_ID, Principal
from .errors import ApiError
from .snapshot import Snapshot
from .validation import MISSING


@dataclass(frozen=True)
class Scope:
    """What one request may reach."""

    acting_manager: str | None  # who the request acts for (credited on the lists and answers it writes)
    book: str | None            # whose book bounds what it sees; None: every customer (admin only)
    capped: bool                # segment results capped (``LINGXI_SEGMENT_BOOK_CAP``): managers and the CRM


def requested_manager(params: Mapping[str, Any]) -> str | None:
    """The ``manager_id`` a body or query string names (None when absent; 400 when malformed)."""
    requested = params.get("manager_id", MISSING)
    if requested is MISSING:
        return None
    if not isinstance(requested, str) or not MANAGER_ID.fullmatch(requested):
        raise ApiError(400, "invalid_value", "manager_id must be 1 to 32 characters from A-Z, a-z, 0-9, _ and -",
                       field="manager_id", in_body=hasattr(params, "path"))
    return requested


def acting_manager(principal: Principal, params: Mapping[str, Any]) -> str | None:
    """The manager a request acts for: a manager token only for itself, the CRM for the one it
    names (required); admin for nobody (any id it names only narrows what it reads)."""
    requested = requested_manager(params)
    if principal.role == "manager":
        if requested is not None and requested != principal.manager_id:
            raise ApiError(403, "forbidden", "a manager may act only under their own manager_id", field="manager_id",
                           in_body=hasattr(params, "path"))
        return principal.manager_id
    if principal.role == "crm" and requested is None:
        raise ApiError(400, "missing_field", "manager_id is required for the crm role: the CRM acts for a manager",
                       field="manager_id", in_body=hasattr(params, "path"))
    return requested if principal.role == "crm" else None


def scope_for(principal: Principal, params: Mapping[str, Any]) -> Scope:
    acting = acting_manager(principal, params)
    if principal.role == "admin":
        return Scope(None, requested_manager(params), capped=False)
    return Scope(acting, acting, capped=True)


def visible(snapshot: Snapshot, index: int, scope: Scope) -> bool:
    assert snapshot.books is not None
    return scope.book is None or snapshot.books.manager_of(index) == scope.book


def require_visible_customer(snapshot: Snapshot, customer_id: str, scope: Scope) -> int:
    """The customer's snapshot row, or 404 when unknown or outside the caller's book (same answer)."""
    index = snapshot.index_of(customer_id)
    if index is None or not visible(snapshot, index, scope):
        raise ApiError(404, "unknown_customer", "no customer with this id")
    return index


def require_visible_list(snapshot: Snapshot, customer_id: str, scope: Scope) -> None:
    """A logged list is visible when its customer is in the caller's book now (404 otherwise)."""
    index = snapshot.index_of(customer_id)
    if index is None or not visible(snapshot, index, scope):
        raise ApiError(404, "unknown_recommendation", "no recommendation with this id")
