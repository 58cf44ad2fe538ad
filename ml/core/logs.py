"""Progress of the batch jobs: ``[step] message`` lines and progress bars on stderr.

Jobs print progress rather than log through ``logging`` so a long nightly step shows where it is
in the terminal and in CI output without any configuration; the API logs JSON (``serving.logs``).
A step with a loop shows a bar (``progress``); a long call that cannot report its own progress
(Feast's materialisation, a vectorised scoring pass) shows the time it has been working
(``working``), so no step sits silent. ``LINGXI_PROGRESS=0`` turns bars and timers off.
"""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm


def step_log(step: str) -> Callable[[str], None]:
    """A ``log(message)`` function that prefixes every line with ``[step]``."""

    def log(message: str) -> None:
        print(f"[{step}] {message}", file=sys.stderr, flush=True)

    return log


def progress_enabled() -> bool:
    return os.environ.get("LINGXI_PROGRESS", "1") not in ("0", "false", "no", "off")


def progress(total: int | None, desc: str, unit: str = "it") -> tqdm:
    """A progress bar on stderr (a disabled one when progress is off)."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, mininterval=1.0, dynamic_ncols=True,
                disable=not progress_enabled())


@contextmanager
def working(desc: str, every: float = 2.0) -> Iterator[None]:
    """Show ``desc`` and the seconds elapsed while the body runs (a call that reports no progress itself)."""
    if not progress_enabled():
        yield
        return
    bar = tqdm(total=None, desc=desc, file=sys.stderr, bar_format="{desc}: {elapsed}", dynamic_ncols=True)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            bar.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
        bar.close()  # prints the final time once
