"""The OpenAPI document of this API, and its rendered reference (no token needed for either).

The reference is Redoc, vendored under ``serving/static/redoc`` (no CDN: it works on an intranet).
"""
from __future__ import annotations

from flask import Blueprint, current_app, url_for
from markupsafe import escape

bp = Blueprint("docs", __name__)

PAGE = """<!doctype html>
<html lang="{lang}">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <style>body {{ margin: 0; }}</style>
</head>
<body>
  <redoc spec-url="{spec}" hide-download-button="false"></redoc>
  <script src="{script}"></script>
</body>
</html>
"""


@bp.get("/openapi.json")
def openapi():
    """The hand-written OpenAPI 3.1 document (``serving/openapi.yaml``) as JSON."""
    return current_app.extensions["lingxi_openapi"]


@bp.get("/docs")
def reference():
    """The API reference, rendered in the browser from ``openapi.json``."""
    title = current_app.extensions["lingxi_openapi"].get("info", {}).get("title", "API reference")
    html = PAGE.format(lang="en", title=escape(title), spec=url_for("docs.openapi"),
                       script=url_for("static", filename="redoc/redoc.standalone.js"))
    return html, 200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache"}
