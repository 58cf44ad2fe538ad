"""The console's pages, one module per page (each adds its routes to ``console.blueprint.bp``)."""
from __future__ import annotations

from . import access, customer, dashboard, models, new_product, recommend, report, segments, today

__all__ = ["access", "customer", "dashboard", "models", "new_product", "recommend", "report", "segments", "today"]
