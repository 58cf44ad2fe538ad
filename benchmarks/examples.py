"""Print working example calls: ``python -m benchmarks.examples --host H --port P``.

``make demo`` runs this before starting gunicorn. It makes sure two demo tokens exist (an admin and
the manager of the example customer, from ``manager_books``: a manager only sees their own book),
keeping their plaintext in ``$LINGXI_DATA_DIR/demo_tokens.json`` (mode 0600) and only their hashes
in the tokens file, and prints the console's address with both login tokens, then a bash script of
curl calls that walks the manager workflow: lookup,
segment (the manager's book), stage one, feedback, stage two, dashboard, cold start. Demo tokens are
for a local demo only; revoke them with ``python -m serving.tokens revoke --name demo-admin``.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from serving import config as serving_config
from serving.auth import TokenRegistry
from serving.snapshot import resolve_source
from serving.tokens import add_token, revoke_token

PLACEHOLDER_MANAGER_ID = "M0001"  # only when the data has no books yet


def demo_tokens(data_dir: Path, tokens_file: Path, manager_id: str = PLACEHOLDER_MANAGER_ID) -> dict[str, str]:
    """The demo tokens (admin, and manager ``manager_id``): reused when still valid, otherwise (re)created."""
    path = data_dir / "demo_tokens.json"
    registry = TokenRegistry(tokens_file)
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    out = {}
    wanted = {"admin": ("demo-admin", "admin", None), "manager": ("demo-manager", "manager", manager_id)}
    for role, (name, token_role, manager) in wanted.items():
        token = known.get(role)
        principal = registry.authenticate(token) if isinstance(token, str) else None
        if principal is None or principal.name != name or principal.manager_id != manager:
            revoke_token(tokens_file, name)
            token = add_token(tokens_file, name, token_role, manager)
        out[role] = token
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(out, handle, indent=2)
    return out


def example_customer(data_dir: Path) -> tuple[str | None, str | None]:
    """(the first customer of the snapshot, that customer's manager from the books), None when missing."""
    try:
        source = resolve_source(data_dir / "marts")
    except Exception:  # noqa: BLE001 - a demo helper: no snapshot, no example id
        return None, None
    if source is None:
        return None, None
    ids = pq.ParquetFile(source.customer_360).read_row_group(0, columns=["customer_id"]).column(0)
    if not len(ids):
        return None, None
    customer = str(ids[0].as_py()).upper()
    if source.manager_books is None:
        return customer, None
    books = pq.read_table(source.manager_books, columns=["customer_id", "manager_id"])
    mine = books.filter(pc.equal(pc.utf8_upper(books["customer_id"]), customer))
    return customer, (str(mine["manager_id"][0].as_py()) if mine.num_rows else None)


def console_note(base: str, tokens: dict[str, str], manager_id: str) -> str:
    """Where the console is and how to log in (bash comments: the script stays runnable)."""
    return "\n".join([
        f"# Console (browser): {base}/console/ - log in with a token:",
        f"#   manager {manager_id}: {tokens['manager']}",
        f"#   admin: {tokens['admin']}",
    ])


def script(base: str, tokens: dict[str, str], customer_id: str, manager_id: str) -> str:
    """A bash script of curl calls over the whole workflow."""
    q = shlex.quote
    py = "python3 -c 'import json,sys; d=json.load(sys.stdin); print(%s)'"
    rec_id = py % 'd["recommendation_id"]'
    first_product = py % 'd["products"][0]["product_id"]'
    segment = {"age": {"min": 30, "max": 50}, "assets_cny": {"min": 500000, "max": 2000000},
               "not_holds": {"categories": ["wealth"]}, "limit": 5}
    cold = {"product": {"product_id": "WLT_GREEN_BOND", "name": "Green bond fund", "category": "wealth",
                        "risk_level": "R2", "min_investment_cny": 1000, "expected_return_pct": 3.2,
                        "target_age_min": 25, "target_age_max": 70, "tags": ["fixed-income", "esg"]}, "n_targets": 10}
    return "\n".join([
        "#!/usr/bin/env bash",
        "# Lingxi API examples - demo tokens (local demo only), see serving/examples.py",
        console_note(base, tokens, manager_id),
        "set -euo pipefail",
        f"BASE={q(base)}",
        f"ADMIN={q(tokens['admin'])}",
        f"MANAGER={q(tokens['manager'])}   # manager {manager_id}, whose book holds the customer",
        f"CUSTOMER={q(customer_id)}",
        'CURL=(curl -sS --fail-with-body -H "Content-Type: application/json")',
        "",
        "# health (no token)",
        '"${CURL[@]}" "$BASE/healthz"; echo',
        '"${CURL[@]}" "$BASE/readyz"; echo',
        "# 1. look a customer up",
        '"${CURL[@]}" -H "Authorization: Bearer $MANAGER" "$BASE/api/v1/customers/$CUSTOMER"; echo',
        "# 2. a segment of the manager's book: age 30-50, assets 0.5-2M CNY, no wealth product (count + first page)",
        f'"${{CURL[@]}}" -H "Authorization: Bearer $MANAGER" -d {q(json.dumps(segment))} "$BASE/api/v1/segments/query"; echo',
        "# 3. stage one",
        'REC=$("${CURL[@]}" -H "Authorization: Bearer $MANAGER" -d "{\\"customer_id\\": \\"$CUSTOMER\\", \\"k\\": 5}" '
        '"$BASE/api/v1/recommendations")',
        'echo "$REC"',
        f'REC_ID=$(echo "$REC" | {rec_id})',
        f'PRODUCT=$(echo "$REC" | {first_product})',
        "# 4. feedback (retrying with the same Idempotency-Key stores nothing twice)",
        'KEY="demo-$(date +%s%N)"',
        '"${CURL[@]}" -H "Authorization: Bearer $MANAGER" -H "Idempotency-Key: $KEY" '
        '-d "{\\"items\\": [{\\"product_id\\": \\"$PRODUCT\\", \\"response\\": \\"not_interested\\"}]}" '
        '"$BASE/api/v1/recommendations/$REC_ID/feedback"; echo',
        "# 5. stage two",
        '"${CURL[@]}" -X POST -H "Authorization: Bearer $MANAGER" "$BASE/api/v1/recommendations/$REC_ID/stage-two"; echo',
        "# 6. dashboard (admin)",
        '"${CURL[@]}" -H "Authorization: Bearer $ADMIN" "$BASE/api/v1/dashboard"; echo',
        "# 7. new product analysis (admin)",
        f'"${{CURL[@]}}" -H "Authorization: Bearer $ADMIN" -d {q(json.dumps(cold))} "$BASE/api/v1/products/cold-start"; echo',
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.examples", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="the API's host in the printed calls")
    parser.add_argument("--port", type=int, default=8000, help="the API's port in the printed calls")
    args = parser.parse_args(argv)
    cfg = serving_config.finalise(serving_config.from_env())
    data_dir = Path(cfg["LINGXI_DATA_DIR"])
    customer, manager = example_customer(data_dir)
    if customer is None:
        print("# no customer snapshot yet (run the pipeline); using a placeholder id", file=sys.stderr)
        customer = "0" * 32
    if manager is None:
        print(f"# no manager_books for the example customer; using {PLACEHOLDER_MANAGER_ID}", file=sys.stderr)
        manager = PLACEHOLDER_MANAGER_ID
    tokens = demo_tokens(data_dir, Path(cfg["LINGXI_TOKENS_FILE"]), manager)
    print(script(f"http://{args.host}:{args.port}", tokens, customer, manager))
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
