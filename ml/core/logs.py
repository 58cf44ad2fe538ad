"""Progress lines of the batch jobs: ``[step] message`` on stderr, flushed at once.

Jobs print progress rather than log through ``logging`` so a long nightly step shows where it is
in the terminal and in CI output without any configuration; the API logs JSON (``serving.logs``).
"""
from __future__ import annotations

import sys
from collections.abc import Callable


def step_log(step: str) -> Callable[[str], None]:
    """A ``log(message)`` function that prefixes every line with ``[step]``."""

    def log(message: str) -> None:
        print(f"[{step}] {message}", file=sys.stderr, flush=True)

    return log
