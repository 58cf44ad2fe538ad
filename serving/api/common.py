"""Helpers shared by the views."""
from __future__ import annotations

from flask import current_app, g

from ..auth import MANAGER_ID, Principal
from ..errors import ApiError
from ..validation import MISSING, hex_id
from ..workflow import Services

EXTENSION = "lingxi"
READ_ROLES = ("crm", "manager", "admin")


def services() -> Services:
    return current_app.extensions[EXTENSION]


def customer_id_param(value: str) -> str:
    customer_id = hex_id(value, "customer_id")
    g.log_customer_id = customer_id
    return customer_id


def recommendation_id_param(value: str) -> str:
    recommendation_id = hex_id(value, "recommendation_id")
    g.log_recommendation_id = recommendation_id
    return recommendation_id


def acting_manager(principal: Principal, body: dict, *, required: bool) -> str | None:
    """The manager id a request acts for (``body["manager_id"]``); a manager token acts only for itself."""
    requested = body.get("manager_id", MISSING)
    if requested is MISSING:
        requested = None
    elif not isinstance(requested, str) or not MANAGER_ID.fullmatch(requested):
        raise ApiError(400, "invalid_value", "manager_id must match [A-Za-z0-9_-]{1,32}")
    if principal.role == "manager":
        if requested is not None and requested != principal.manager_id:
            raise ApiError(403, "forbidden", "a manager may act only under their own manager_id")
        return principal.manager_id
    if required and requested is None:
        raise ApiError(400, "missing_field", "manager_id is required for this role")
    return requested
