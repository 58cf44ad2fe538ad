"""Bearer-token authentication and role checks.

A token looks like ``lx_<id>_<secret>``: ``id`` is 12 hex characters used to find the entry, the
secret is 43 url-safe characters (256 bits). Only ``HMAC-SHA256(salt, token)`` is stored, compared
with ``hmac.compare_digest``. A fast hash is the right tool here: the tokens are random 256-bit
secrets, not passwords, so there is nothing to brute-force and a slow KDF would only cost latency.

Tokens file (JSON, or TOML with ``[[tokens]]`` tables)::

    {"tokens": [{"id": "3f2a...", "name": "crm-prod", "role": "crm", "manager_id": null,
                 "salt": "<hex>", "hash": "<hex>", "created_at": "...", "rate_limit": 50}]}

Roles: ``crm`` (the CRM integration, acting for the manager each request names), ``manager`` (an
account manager; ``manager_id`` required; sees and acts on its own book only), ``admin`` (reads
everything, writes nothing in a manager's name; cold start and dashboards). Who may see which
customer is ``serving.access``. ``rate_limit`` (optional, requests per second, 0 for none)
overrides the role's limit for one token (``serving.ratelimit``). The file is re-read when it
changes, so ``python -m serving.tokens add`` takes effect without a restart; a file that cannot be
read makes authenticated requests 503 (``TokenRegistry``).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g, request

from .errors import ApiError
from .ratelimit import EXTENSION as RATE_EXTENSION

ROLES = ("crm", "manager", "admin")
MANAGER_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_TOKEN = re.compile(r"lx_([0-9a-f]{12})_([A-Za-z0-9_-]{20,128})")
EXTENSION = "lingxi_tokens"
log = logging.getLogger("lingxi.serving")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name, role, (for managers) manager id and own rate limit."""

    token_id: str
    name: str
    role: str
    manager_id: str | None
    rate_limit: float | None = None

    @property
    def caller(self) -> str:
        """Whose idempotency keys these are: a manager across their tokens, any other token alone."""
        return f"manager:{self.manager_id}" if self.role == "manager" else f"token:{self.token_id}"


@dataclass(frozen=True)
class TokenEntry:
    token_id: str
    name: str
    role: str
    manager_id: str | None
    salt: bytes
    digest: bytes
    rate_limit: float | None = None

    def principal(self) -> Principal:
        return Principal(self.token_id, self.name, self.role, self.manager_id, self.rate_limit)


def digest(salt: bytes, token: str) -> bytes:
    return hmac.new(salt, token.encode("ascii"), hashlib.sha256).digest()


def new_token() -> tuple[str, str]:
    """A fresh ``(token_id, token)`` pair."""
    token_id = secrets.token_hex(6)
    return token_id, f"lx_{token_id}_{secrets.token_urlsafe(32)}"


def make_entry(name: str, role: str, manager_id: str | None, token_id: str, token: str,
               rate_limit: float | None = None) -> dict[str, Any]:
    """The stored (hashed) form of a token."""
    validate_identity(name, role, manager_id)
    salt = secrets.token_bytes(16)
    entry = {
        "id": token_id,
        "name": name,
        "role": role,
        "manager_id": manager_id,
        "salt": salt.hex(),
        "hash": digest(salt, token).hex(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if rate_limit is not None:
        entry["rate_limit"] = validate_rate_limit(rate_limit)
    return entry


def validate_rate_limit(value: Any) -> float:
    """Requests per second (0: no limit for this token)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1e6:
        raise ValueError("rate_limit must be a number of requests per second in [0, 1e6]")
    return float(value)


def validate_identity(name: str, role: str, manager_id: str | None) -> None:
    if not name or len(name) > 64:
        raise ValueError("token name must be 1..64 characters")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role == "manager" and not manager_id:
        raise ValueError("a manager token needs a manager id")
    if manager_id is not None and not MANAGER_ID.fullmatch(manager_id):
        raise ValueError("manager id must match [A-Za-z0-9_-]{1,32}")


def parse_entries(data: Any) -> list[TokenEntry]:
    """Accept ``{"tokens": [...]}`` or a bare list; invalid entries raise ``ValueError``."""
    items = data.get("tokens", []) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError("tokens must be a list")
    entries = []
    for item in items:
        manager_id = item.get("manager_id") or None
        validate_identity(item["name"], item["role"], manager_id)
        if not re.fullmatch(r"[0-9a-f]{12}", item["id"]):
            raise ValueError(f"token id {item['id']!r} is not 12 hex characters")
        rate = item.get("rate_limit")
        rate = validate_rate_limit(rate) if rate not in (None, "") else None
        entries.append(TokenEntry(item["id"], item["name"], item["role"], manager_id,
                                  bytes.fromhex(item["salt"]), bytes.fromhex(item["hash"]), rate))
    return entries


def read_tokens_file(path: Path) -> dict[str, Any]:
    """Read a JSON or TOML tokens file (missing file: no tokens)."""
    if not path.exists():
        return {"tokens": []}
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        return tomllib.loads(text)
    return json.loads(text) if text.strip() else {"tokens": []}


class TokenRegistry:
    """Token entries from a file (re-read when it changes) plus an environment value.

    A file that cannot be read or parsed never stops the process: the error is logged once per
    change of the file, shown by ``/readyz``, and authenticated requests get 503 with the reason
    until the file is fixed. The previous token set is *not* kept: the broken file may be the one
    that revokes a token, and a revocation must not be ignored silently.
    """

    def __init__(self, path: Path, env_text: str = "", check_seconds: float = 2.0) -> None:
        self.path = path
        self.check_seconds = check_seconds
        self._env_error: str | None = None
        try:
            self._env_entries = parse_entries(json.loads(env_text)) if env_text.strip() else []
        except Exception as exc:  # noqa: BLE001 - any malformed value: report it, do not crash the boot
            self._env_entries = []
            self._env_error = f"LINGXI_TOKENS: {_describe(exc)}"
            log.error("API tokens unusable: %s", self._env_error, extra={"event": "tokens_invalid"})
        self.error: str | None = self._env_error
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._by_id: dict[str, TokenEntry] = {}
        self._reload(force=True)

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_ino, st.st_size)

    def _reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.check_seconds:
            return
        with self._lock:
            self._checked = now
            try:
                stamp = self._file_stamp()
            except OSError as exc:
                stamp = (-1, -1, -1)
                problem: Exception | None = exc
            else:
                problem = None
            if not force and stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                if problem is not None:
                    raise problem
                entries = list(self._env_entries) + (parse_entries(read_tokens_file(self.path)) if stamp else [])
            except Exception as exc:  # noqa: BLE001 - unreadable, not JSON/TOML, or invalid entries
                self._by_id = {}
                problem_text = f"tokens file {self.path.name}: {_describe(exc)}"
                self.error = "; ".join(e for e in (self._env_error, problem_text) if e)
                log.error("API tokens unusable: %s", problem_text, extra={"event": "tokens_invalid"})
                return
            self._by_id = {e.token_id: e for e in entries}
            self.error = self._env_error
            log.info("API tokens loaded: %d", len(self._by_id), extra={"event": "tokens_loaded"})

    def __len__(self) -> int:
        return len(self._by_id)

    def status(self) -> dict[str, Any]:
        self._reload()
        return {"ok": self.error is None, "count": len(self._by_id), "error": self.error}

    def authenticate(self, token: str) -> Principal | None:
        match = _TOKEN.fullmatch(token)
        if not match:
            return None
        self._reload()
        if self.error is not None:
            raise ApiError(503, "tokens_unavailable", "the API tokens cannot be read (%(error)s); they are re-read "
                           "within %(seconds)s s of a change", params={"error": self.error,
                                                                       "seconds": f"{self.check_seconds:g}"},
                           headers={"Retry-After": "2"})
        entry = self._by_id.get(match.group(1))
        if entry is None or not hmac.compare_digest(entry.digest, digest(entry.salt, token)):
            return None
        return entry.principal()

    def principal(self, token_id: str) -> Principal | None:
        """The principal of a token that is still registered (a console session re-checks its
        token on every request, so a revoked token ends the session)."""
        try:
            self._reload()
        except (OSError, ValueError, KeyError, tomllib.TOMLDecodeError):
            pass
        entry = self._by_id.get(token_id)
        return entry.principal() if entry is not None else None


def _describe(exc: BaseException) -> str:
    """The error's type and message, without quoting the file (it holds token hashes)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON (line {exc.lineno}, column {exc.colno})"
    if isinstance(exc, tomllib.TOMLDecodeError):
        return "not valid TOML"
    if isinstance(exc, KeyError):
        return f"an entry lacks {exc}"
    return f"{type(exc).__name__}: {exc}"[:200]


def current_principal() -> Principal:
    """Authenticate the request's bearer token (401 as JSON when missing or unknown)."""
    challenge = {"WWW-Authenticate": 'Bearer realm="lingxi"'}
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "a bearer token is required", headers=challenge)
    principal = current_app.extensions[EXTENSION].authenticate(token.strip())
    if principal is None:
        raise ApiError(401, "unauthorized", "invalid token", headers=challenge)
    limiter = current_app.extensions.get(RATE_EXTENSION)
    if limiter is not None:
        limiter.check(principal)  # 429 past the token's rate
    return principal


def require(*roles: str) -> Callable:
    """View decorator: authenticate, then allow only the listed roles (403 otherwise)."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any):
            principal = current_principal()
            g.principal = principal
            if principal.role not in roles:
                if principal.role == "admin" and request.method != "GET":
                    raise ApiError(403, "admin_read_only",
                                   "the admin role reads everything but writes nothing in a manager's name")
                raise ApiError(403, "forbidden", "role %(role)s may not call this endpoint",
                               params={"role": principal.role})
            return view(*args, **kwargs)

        wrapper.roles = tuple(roles)  # type: ignore[attr-defined]
        return wrapper

    return decorate


ALL_ROLES: Iterable[str] = ROLES


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION] = TokenRegistry(app.config["LINGXI_TOKENS_FILE"], app.config.get("LINGXI_TOKENS", ""))
