"""Per-token rate limits: 429 with ``Retry-After`` past a token's requests per second.

A token's limit is its own ``rate_limit`` (tokens file) or else its role's (``LINGXI_RATE_LIMITS``,
e.g. ``crm=300,manager=10,admin=10``; ``off`` for none; 0 for a role or token means unlimited),
with bursts of ``LINGXI_RATE_BURST_SECONDS`` times the rate.

Each gunicorn worker keeps its own token buckets: no shared state and no write per request. A
worker allows ``rate / workers`` per second (``LINGXI_RATE_WORKERS``, default ``WEB_CONCURRENCY``,
which ``make serve`` sets to the worker count). Sync workers take connections from one shared
socket, so a busy client's requests spread over the workers and it gets close to ``rate``; it can
never get more, and if its requests all landed on one worker it would be held to ``rate / workers``.
Requests without a valid token are not counted here (401 costs no bucket; a reverse proxy limits
by address).
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import ApiError

if TYPE_CHECKING:
    from .auth import Principal

EXTENSION = "lingxi_rate_limits"


def parse_limits(text: str) -> dict[str, float]:
    """``role=rate,...`` -> {role: requests per second}; ``off`` or empty -> no limits."""
    text = (text or "").strip()
    if text.lower() in {"", "off", "none", "0"}:
        return {}
    out = {}
    for part in text.split(","):
        role, sep, value = part.partition("=")
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if not sep or not role.strip() or not 0 <= rate <= 1e6:
            raise ValueError(f"LINGXI_RATE_LIMITS: {part!r} is not role=requests_per_second")
        out[role.strip()] = rate
    return out


class RateLimiter:
    """Token buckets keyed by token id, in this worker."""

    def __init__(self, per_role: Mapping[str, float], burst_seconds: float = 2.0, workers: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_role = dict(per_role)
        self.burst_seconds = max(float(burst_seconds), 0.0)
        self.workers = max(int(workers), 1)
        self.clock = clock
        self._buckets: dict[str, list[float]] = {}  # token id -> [tokens left, last refill]
        self._lock = threading.Lock()

    def rate_for(self, principal: Principal) -> float:
        """Requests per second for the whole server (0: unlimited)."""
        if principal.rate_limit is not None:
            return principal.rate_limit
        return self.per_role.get(principal.role, 0.0)

    def retry_after(self, key: str, rate: float) -> float | None:
        """Take one request from ``key``'s bucket: None if allowed, else seconds until one is."""
        if rate <= 0:
            return None
        refill = rate / self.workers
        capacity = max(1.0, rate * self.burst_seconds / self.workers)
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * refill)
            if tokens >= 1.0:
                self._buckets[key] = [tokens - 1.0, now]
                return None
            self._buckets[key] = [tokens, now]
            return (1.0 - tokens) / refill

    def check(self, principal: Principal) -> None:
        rate = self.rate_for(principal)
        wait = self.retry_after(principal.token_id, rate)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            raise ApiError(429, "rate_limited",
                           "more than %(rate)s requests per second with this token; retry in %(seconds)s s",
                           params={"rate": f"{rate:g}", "seconds": seconds},
                           headers={"Retry-After": str(seconds)})


def init_app(app: Any) -> None:
    """Always installed: a token's own ``rate_limit`` applies even when the roles have none."""
    app.extensions[EXTENSION] = RateLimiter(parse_limits(app.config["LINGXI_RATE_LIMITS"]),
                                            float(app.config["LINGXI_RATE_BURST_SECONDS"]),
                                            int(app.config["LINGXI_RATE_WORKERS"]))
