"""Feast's warnings that carry no news for a Lingxi user, silenced by their exact message.

Feast sets ``warnings.simplefilter("once", ...)`` for whole categories when it is imported, which
puts those filters in front of any set earlier (``PYTHONWARNINGS`` included); so these are installed
after Feast's import, and match one message each: every other warning still shows.
"""
from __future__ import annotations

import warnings

KNOWN = (
    # ibis (inside Feast's DuckDB offline store) still calls a DuckDB API deprecated in 2.0
    (r"fetch_arrow_table\(\) is deprecated", DeprecationWarning, r"ibis\."),
    # our repo declares one on-demand view (the contact-time features); we read it online, where it
    # scales, and know about its offline cost
    (r"On demand feature view is an experimental feature", RuntimeWarning, r"feast\."),
)


def silence_known_warnings() -> None:
    """Install the narrow filters (idempotent: the warnings module drops an identical filter first)."""
    import feast  # noqa: F401 - its import sets the broad filters these must override

    for message, category, module in KNOWN:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
