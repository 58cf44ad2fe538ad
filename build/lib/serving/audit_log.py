"""The audit log: every read of a customer by a person (exported by ``python -m serving.audit``).

Every request of a manager, an admin, or the CRM acting for a manager that names or returns a
customer (lookup, stage one, a logged list, stage two, feedback, segment pages, cold-start
targets) adds one row per customer to ``customer_reads`` in the feedback store: who (token id and
name), role, the manager acted for, when, which customer, which endpoint (the route template) and
the answer's status. Refused attempts are recorded too (a 404 for a customer outside the book is
how cross-book probing shows up). A successful read is only answered once it is recorded: if the
store cannot take the rows, the answer becomes 503 ``audit_unavailable``.

The rows are written by the request's own commit where it writes anyway (stage one and two log
them with the list), else by one relaxed commit when the answer is sent.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

from flask import Flask, current_app, g, jsonify, request

from .errors import error_body
from .store.audit import CustomerRead, record_reads

log = logging.getLogger("lingxi.serving")


def note(customer_ids: Iterable[str]) -> None:
    """Mark customers this request reads (recorded when the answer is sent)."""
    g.setdefault("audit_customers", []).extend(customer_ids)


def rows(status: int) -> list[CustomerRead]:
    """This request's reads as audit rows, answered with ``status``."""
    principal = g.get("principal")
    customers = g.get("audit_customers")
    if principal is None or not customers:
        return []
    scope = g.get("scope")
    rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
    now = current_app.extensions["lingxi"].clock()
    return [CustomerRead(now, principal.token_id, principal.name, principal.role,
                         scope.acting_manager if scope is not None else None, customer_id, request.method, rule,
                         status, g.get("request_id"))
            for customer_id in dict.fromkeys(customers)]


def recorded() -> None:
    """The rows of ``rows()`` were written with the request's own write (stage one and two log them with
    the list: one commit): nothing is left to record at the end."""
    g.audit_recorded = True


def _record(response):
    if g.get("audit_recorded"):
        return response
    reads = rows(response.status_code)
    if not reads:
        return response
    services = current_app.extensions["lingxi"]
    try:
        record_reads(services.store, reads)
    except Exception as exc:  # noqa: BLE001 - any store failure: do not hand out an unrecorded read
        log.error("audit rows not recorded: %s", type(exc).__name__, extra={"event": "audit_failed"})
        if response.status_code < 400:
            failed = jsonify(error_body("audit_unavailable", "the read could not be recorded in the audit log"))
            failed.status_code = 503
            return failed
    return response


def init_app(app: Flask) -> None:
    """Register after the request log, so that the log shows the final status."""
    app.after_request(_record)
