"""Segments: the filter builder, a live count, a paged table, CSV export, a call list from it."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime

import numpy as np
from flask import Response, render_template, request, stream_with_context
from flask_babel import lazy_gettext as _l

from ... import audit_log as audit
from ... import segments
from ...errors import ApiError
from ...snapshot import ASSET_LEVELS, RISK_PREFERENCES, TRIGGER_COLUMNS
from .. import context as ctx
from ..blueprint import bp, nav_item
from ..segment_form import PAGE_SIZE, filter_args, parse, segment_matches
from ..sessions import login_required

nav_item("console.segments_page", _l("Segments"), 30)
CSV_COLUMNS = ("customer_id", "age", "asset_level", "assets_cny", "risk_preference", "region_code")


def _results() -> dict:
    """The count and one page of the segment within the signed-in user's reach (as the API pages it)."""
    snapshot = ctx.services().snapshot()
    reach = ctx.scope(request.args.get("manager"))
    body = segments.query(snapshot, parse(request.args), PAGE_SIZE, request.args.get("cursor") or None,
                          book=reach.book, cap=ctx.segment_cap(reach))
    audit.note(c["customer_id"] for c in body["customers"])
    return {"result": body, "filters": filter_args(request.args), "manager_id": reach.book,
            "cap": ctx.segment_cap(reach)}


def _form_context() -> dict:
    return {"asset_levels": ASSET_LEVELS, "risk_preferences": RISK_PREFERENCES, "triggers": tuple(TRIGGER_COLUMNS),
            "catalogue": ctx.services().catalogue, "args": request.args, "managers": ctx.managers()}


@bp.get("/segments")
@login_required()
def segments_page():
    """The filter builder with the first page of its results."""
    try:
        results, error = _results(), None
    except ApiError as exc:  # a bad filter: show the form with the reason, not an error page
        results, error = {"result": None, "filters": filter_args(request.args)}, exc
    return render_template("console/segments.html", error=error, **results, **_form_context())


@bp.get("/segments/results")
@login_required()
def segment_results():
    """The live count and the table (htmx swaps it in as the filter changes)."""
    try:
        return render_template("console/_segment_results.html", error=None, **_results())
    except ApiError as exc:
        return render_template("console/_segment_results.html", error=exc, result=None, filters=[])


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _csv_rows(snapshot, rows: np.ndarray) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield _drain(buffer)
    for start in range(0, len(rows), 5000):
        for i in rows[start:start + 5000]:
            summary = snapshot.summary(int(i))
            writer.writerow([summary[c] if summary[c] is not None else "" for c in CSV_COLUMNS])
        yield _drain(buffer)


@bp.get("/segments.csv")
@login_required()
def segment_csv():
    """Every customer of the segment within reach (a manager's: the API's cap) as CSV, streamed."""
    snapshot = ctx.services().snapshot()
    reach = ctx.scope(request.args.get("manager"))
    matches, _capped = segment_matches(snapshot, request.args, reach)
    rows = np.flatnonzero(matches)
    audit.note(snapshot.ids[rows].astype(str).tolist())  # an export reads every customer in it
    name = f"segment-{datetime.now().strftime('%Y%m%d-%H%M')}.csv"
    return Response(stream_with_context(_csv_rows(snapshot, rows)), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={name}"})
