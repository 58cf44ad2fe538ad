"""Helpers shared by the views."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flask import current_app, g, request

from .. import access
from ..errors import ApiError
from ..validation import hex_id
from ..workflow import Services

EXTENSION = "lingxi"
READ_ROLES = ("crm", "manager", "admin")
WRITE_ROLES = ("crm", "manager")  # admin writes nothing in a manager's name


def services() -> Services:
    return current_app.extensions[EXTENSION]


def customer_id_param(value: str, in_body: bool = False) -> str:
    customer_id = hex_id(value, "customer_id", in_body=in_body)
    g.log_customer_id = customer_id
    return customer_id


def recommendation_id_param(value: str) -> str:
    recommendation_id = hex_id(value, "recommendation_id")
    g.log_recommendation_id = recommendation_id
    return recommendation_id


def query_params(allowed: Iterable[str]) -> dict[str, Any]:
    """The query string as a dict (400 for unknown or repeated parameters)."""
    allowed = set(allowed)
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise ApiError(400, "unknown_parameter", "unknown query parameter %(name)s (allowed: %(allowed)s)",
                       params={"name": unknown[0], "allowed": ", ".join(sorted(allowed)) or "-"}, field=unknown[0],
                       in_body=False)
    repeated = sorted(k for k in request.args if len(request.args.getlist(k)) > 1)
    if repeated:
        raise ApiError(400, "invalid_value", "query parameter %(name)s is given more than once",
                       params={"name": repeated[0]}, field=repeated[0], in_body=False)
    return dict(request.args.items())


def scope(params: Mapping[str, Any]) -> access.Scope:
    """The caller's reach for this request (kept on ``g`` for the audit log)."""
    g.scope = access.scope_for(g.principal, params)
    return g.scope
