"""Manage API tokens: ``python -m serving.tokens add --name X --role manager --manager-id M001``.

``add`` prints the fresh token once (stdout) and stores only its salted hash in the tokens file
(``--file``, else ``LINGXI_TOKENS_FILE``, else ``$LINGXI_DATA_DIR/tokens.json``; a ``.toml`` path
is written as TOML); ``--rate-limit N`` gives the token its own requests-per-second limit. ``list`` shows names and roles, ``revoke --name X`` removes a token. Writes
are atomic (temporary file + rename) and the file is created with mode 0600.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from .auth import ROLES, make_entry, new_token, parse_entries, read_tokens_file
from .config import default_tokens_file


def _toml_value(value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value))  # a TOML float
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _render(data: dict[str, Any], path: Path) -> str:
    if path.suffix != ".toml":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    blocks = []
    for item in data["tokens"]:
        lines = ["[[tokens]]"] + [f"{key} = {_toml_value(value)}" for key, value in item.items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def write_tokens_file(path: Path, data: dict[str, Any]) -> None:
    """Validate, then atomically replace the tokens file (mode 0600)."""
    parse_entries(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(_render(data, path))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def add_token(path: Path, name: str, role: str, manager_id: str | None = None,
              rate_limit: float | None = None) -> str:
    """Create a token, store its hash, return the plaintext (shown once). ``rate_limit`` (requests
    per second, 0 for none) overrides the role's limit for this token."""
    data = read_tokens_file(path)
    tokens = list(data.get("tokens", []))
    if any(item["name"] == name for item in tokens):
        raise ValueError(f"a token named {name!r} already exists (revoke it first)")
    token_id, token = new_token()
    tokens.append(make_entry(name, role, manager_id, token_id, token, rate_limit))
    write_tokens_file(path, {"tokens": tokens})
    return token


def revoke_token(path: Path, name: str) -> bool:
    data = read_tokens_file(path)
    tokens = [item for item in data.get("tokens", []) if item["name"] != name]
    if len(tokens) == len(data.get("tokens", [])):
        return False
    write_tokens_file(path, {"tokens": tokens})
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.tokens", description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=None, help="tokens file (JSON or .toml)")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="create a token and print it once")
    add.add_argument("--name", required=True, help="a unique name for the token (revoke uses it)")
    add.add_argument("--role", required=True, choices=ROLES,
                     help="crm: the CRM integration, acting for the manager each request names; manager: one book; "
                          "admin: reads every book")
    add.add_argument("--manager-id", default=None,
                     help="the account manager whose book a manager token works (required for --role manager)")
    add.add_argument("--rate-limit", type=float, default=None,
                     help="requests per second for this token (0: none); default the role's LINGXI_RATE_LIMITS")
    sub.add_parser("list", help="list token names and roles (never the tokens)")
    revoke = sub.add_parser("revoke", help="remove a token by name")
    revoke.add_argument("--name", required=True, help="the name given at add")
    args = parser.parse_args(argv)
    path = args.file or default_tokens_file()
    try:
        if args.command == "add":
            print(add_token(path, args.name, args.role, args.manager_id, args.rate_limit))
            print(f"stored hash in {path}; the token is not shown again", file=sys.stderr)
        elif args.command == "list":
            for item in read_tokens_file(path).get("tokens", []):
                rate = item.get("rate_limit")
                print(f"{item['name']}\t{item['role']}\t{item.get('manager_id') or '-'}\t{item['id']}"
                      + (f"\t{rate:g}/s" if isinstance(rate, (int, float)) else ""))
        elif args.command == "revoke":
            if not revoke_token(path, args.name):
                print(f"no token named {args.name!r}", file=sys.stderr)
                return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
