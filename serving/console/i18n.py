"""The console's language: the shared translation layer (``serving.i18n``), chosen by a cookie set by
a link (``/console/lang/en``)."""
from __future__ import annotations

from ..i18n import COOKIE, LANGUAGES, SOURCE, is_chinese

__all__ = ["COOKIE", "LANGUAGES", "SOURCE", "is_chinese"]
