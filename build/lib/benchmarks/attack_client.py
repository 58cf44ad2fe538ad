"""The attack's HTTP side: a bounded client that sends one attempt at a time and scores the answer.

Every attempt belongs to a class (auth, cross_book, malformed, oversized, injection, slow_client,
idempotency) and counts as *refused* when the server turned it away (by default any 4xx, or a
connection the server closed on a raw request). Any 5xx is a server error; a 2xx on a cross-book
attempt (or foreign customers in a 2xx page) is a cross-book success. The budget (requests and
seconds) is enforced here: past it, ``Budget`` is raised and the run reports what it did.
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests as http

CLASSES = ("auth", "cross_book", "malformed", "oversized", "injection", "slow_client", "idempotency")


class Budget(RuntimeError):
    """The request or time budget is spent."""


def is_4xx(status: int | None) -> bool:
    return status is not None and 400 <= status < 500


@dataclass
class Tally:
    requests: int = 0
    setup_requests: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    cross_book_successes: int = 0
    by_class: dict[str, dict[str, int]] = field(default_factory=lambda: {c: {"tried": 0, "refused": 0} for c in CLASSES})
    not_refused: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)


class Client:
    """Sends requests to ``base`` and keeps the tally (thread-safe)."""

    def __init__(self, base: str, max_requests: int, seconds: float) -> None:
        self.base = base
        self.host, port = base.rsplit("//", 1)[1].split(":")
        self.port = int(port)
        self.max_requests = max_requests
        self.deadline = time.monotonic() + seconds
        self.tally = Tally()
        self._lock = threading.Lock()

    # -- budget and scoring ---------------------------------------------------------------------
    def _take(self, setup: bool = False) -> None:
        with self._lock:
            if self.tally.requests >= self.max_requests or time.monotonic() > self.deadline:
                raise Budget(f"budget spent after {self.tally.requests} requests")
            self.tally.requests += 1
            self.tally.setup_requests += setup

    def score(self, cls: str, what: str, status: int | None, refused: bool, cross_book_success: bool = False) -> None:
        with self._lock:
            t = self.tally
            t.by_class[cls]["tried"] += 1
            t.by_class[cls]["refused"] += bool(refused)
            t.statuses[str(status)] = t.statuses.get(str(status), 0) + 1
            if status is not None and status >= 500:
                t.server_errors += 1
            if cross_book_success:
                t.cross_book_successes += 1
            if not refused and len(t.not_refused) < 60:
                t.not_refused.append({"class": cls, "what": what, "status": status})

    # -- sending --------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, token: str | None = None, json: Any = None, data: Any = None,
                headers: dict[str, str] | None = None, timeout: float = 20, probe: bool = False,
                _scored: bool = False) -> http.Response | None:
        """A request outside the classes (setup and checks); its 5xx still count as server errors. A
        ``probe`` that gets no answer is not a transport error (the caller counts it)."""
        self._take(setup=not _scored)
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        try:
            response = http.request(method, self.base + path, json=json, data=data, headers=hdrs, timeout=timeout)
        except http.RequestException:
            with self._lock:
                self.tally.transport_errors += not probe
            return None
        if not _scored and response.status_code >= 500:
            with self._lock:
                self.tally.server_errors += 1
        return response

    def attempt(self, cls: str, what: str, method: str, path: str, *,
                refused: Callable[[http.Response], bool] = lambda r: is_4xx(r.status_code),
                cross_book: bool = False, **kwargs: Any) -> http.Response | None:
        """One scored attempt: refused by ``refused(response)``; a 2xx is a success if ``cross_book``."""
        response = self.request(method, path, _scored=True, **kwargs)
        if response is None:
            self.score(cls, what, None, refused=False)
            return None
        ok = response.status_code < 300
        self.score(cls, what, response.status_code, refused(response), cross_book_success=cross_book and ok)
        return response

    def raw(self, cls: str, what: str, payload: bytes, *, read_timeout: float = 10.0) -> int | None:
        """A raw HTTP request (bytes as given); refused when answered 4xx or closed without an answer."""
        self._take()
        status = None
        try:
            with socket.create_connection((self.host, self.port), timeout=read_timeout) as sock:
                sock.sendall(payload)
                status = read_status(sock)
        except OSError:
            pass  # the server dropped it: refused
        self.score(cls, what, status, refused=status is None or is_4xx(status))
        return status

    def open_socket(self, timeout: float) -> socket.socket:
        self._take()
        return socket.create_connection((self.host, self.port), timeout=timeout)


def read_status(sock: socket.socket) -> int | None:
    """The status code of the answer on ``sock`` (None when it closes without one)."""
    data = b""
    while b"\r\n" not in data and len(data) < 4096:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    parts = data.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None
