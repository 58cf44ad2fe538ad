"""Print working example calls: ``python -m benchmarks.examples --host H --port P``.

``make demo`` runs this before starting gunicorn. It makes sure three demo tokens exist (an admin,
the CRM integration, and the manager of the example customer from ``manager_books``: a manager only
sees their own book), keeping their plaintext in ``$LINGXI_DATA_DIR/demo_tokens.json`` (mode 0600)
and only their hashes in the tokens file, and prints the console's address with the login tokens,
then a bash script of curl calls that walks the whole workflow: lookup, a segment of the manager's
book, stage one, feedback of all three kinds, stage two, the dashboard and a new product's analysis.

The example customer is chosen so that every step has something to show: a customer of a manager's
book with enough suitable products for a full stage-one list and a stage two after three answers
(from the served version's nightly table), and no answers recorded yet (a walkthrough run before
has used up some of its products). Demo tokens are for a local demo only; revoke them with
``python -m serving.tokens revoke --name demo-admin`` (and ``demo-crm``, ``demo-manager``).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml.recommendation.stage_one_table import StageOneTable
from serving import config as serving_config
from serving.auth import TokenRegistry
from serving.release import resolve_target
from serving.store import open_store
from serving.tokens import add_token, revoke_token

PLACEHOLDER_MANAGER_ID = "M0001"  # only when the data has no books yet
K = 5                              # stage one's list length in the walkthrough
MIN_SUITABLE = K + 3               # a full first list, then at least three products left for stage two
CANDIDATES = 2000                  # customers of the nightly table looked at, in id order


@dataclass(frozen=True)
class Example:
    customer_id: str
    manager_id: str | None
    age: int | None = None
    asset_level: str | None = None
    suitable: int | None = None    # suitable products in the nightly table (None: no table)


def demo_tokens(data_dir: Path, tokens_file: Path, manager_id: str = PLACEHOLDER_MANAGER_ID) -> dict[str, str]:
    """The demo tokens (admin, crm, and manager ``manager_id``): reused when still valid, otherwise (re)created."""
    path = data_dir / "demo_tokens.json"
    registry = TokenRegistry(tokens_file)
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    out = {}
    wanted = {"admin": ("demo-admin", "admin", None), "crm": ("demo-crm", "crm", None),
              "manager": ("demo-manager", "manager", manager_id)}
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


def _answered(store_url: str | None) -> set[str]:
    """Customers with answers in the feedback store (none when there is no store yet)."""
    if not store_url:
        return set()
    try:
        store = open_store(store_url, create=False)
    except Exception:  # noqa: BLE001 - no store yet: nobody has answered
        return set()
    try:
        return {c.upper() for c in store.customers_with_feedback_since(None)}
    except Exception:  # noqa: BLE001 - an empty store without its schema
        return set()
    finally:
        store.close()


def pick_example(data_dir: Path, store_url: str | None = None) -> Example | None:
    """The walkthrough's customer (None without a customer snapshot). With the served version's
    nightly table: the first customer, in id order, of a manager's book with at least
    ``MIN_SUITABLE`` suitable products and no answers yet; without one, the snapshot's first customer."""
    try:
        target = resolve_target(data_dir)
    except Exception:  # noqa: BLE001 - a demo helper: no snapshot, no example id
        return None
    source = target.source
    if source is None:
        return None
    people = pq.read_table(source.customer_360, columns=["customer_id", "age", "asset_level"])
    if not people.num_rows:
        return None
    ids = pc.utf8_upper(people["customer_id"]).to_pylist()
    row_of = {c: i for i, c in enumerate(ids)}
    manager_of: dict[str, str] = {}
    if source.manager_books is not None:
        books = pq.read_table(source.manager_books, columns=["customer_id", "manager_id"])
        manager_of = dict(zip(pc.utf8_upper(books["customer_id"]).to_pylist(), books["manager_id"].to_pylist()))
    chosen, suitable = ids[0], None
    table = StageOneTable.load(target.root / "scores")
    if table is not None:
        answered = _answered(store_url)
        counts = np.sum(~np.isnan(np.asarray(table.probability[:CANDIDATES])), axis=1)
        for raw, count in zip(table.ids[:CANDIDATES], counts):
            customer = raw.decode().upper()
            if count >= MIN_SUITABLE and customer in manager_of and customer in row_of and customer not in answered:
                chosen, suitable = customer, int(count)
                break
    i = row_of[chosen]
    return Example(chosen, manager_of.get(chosen), int(people["age"][i].as_py()), people["asset_level"][i].as_py(),
                   suitable)


def example_customer(data_dir: Path) -> tuple[str | None, str | None]:
    """(the walkthrough's customer, that customer's manager from the books), None when missing."""
    example = pick_example(data_dir)
    return (example.customer_id, example.manager_id) if example else (None, None)


def console_note(base: str, tokens: dict[str, str], manager_id: str) -> str:
    """Where the console is and how to log in (bash comments: the script stays runnable)."""
    return "\n".join([
        f"# Console (browser): {base}/console/ - log in with a token:",
        f"#   manager {manager_id}: {tokens['manager']}",
        f"#   admin: {tokens['admin']}",
    ])


def segment_query(example: Example) -> dict:
    """A segment of the manager's book that holds the example customer: their age band and asset level."""
    query: dict = {"limit": 5}
    if example.age is not None:
        query["age"] = {"min": max(18, example.age - 5), "max": min(100, example.age + 5)}
    if example.asset_level:
        query["asset_levels"] = [example.asset_level]
    return query


COLD_START = {"product": {"product_id": "WLT_GREEN_BOND", "name": "Green bond fund", "category": "wealth",
                          "risk_level": "R2", "min_investment_cny": 1000, "expected_return_pct": 3.2,
                          "target_age_min": 25, "target_age_max": 70, "tags": ["fixed-income", "esg"]},
              "n_targets": 10}


def script(base: str, tokens: dict[str, str], example: Example) -> str:
    """A bash script of curl calls over the whole workflow. Each step prints a ``== n. title`` line,
    then its answer (JSON), so a reader and a test can tell the steps apart."""
    q = shlex.quote

    def step(title: str) -> str:
        return f"step {q(title)}"

    manager = example.manager_id or PLACEHOLDER_MANAGER_ID
    py = "python3 -c 'import json,sys; d=json.load(sys.stdin); print(%s)'"
    rec_id = py % 'd["recommendation_id"]'
    answers = ('json.dumps({"manager_id": sys.argv[1], "items": [{"product_id": p["product_id"], "response": r} '
               'for p, r in zip(d["products"], ["interested", "not_interested", "already_owns"])]})')
    return "\n".join([
        "#!/usr/bin/env bash",
        "# Lingxi API walkthrough - demo tokens (local demo only), see benchmarks/examples.py",
        console_note(base, tokens, manager),
        "set -euo pipefail",
        f"BASE={q(base)}",
        f"ADMIN={q(tokens['admin'])}",
        f"CRM={q(tokens['crm'])}   # the CRM integration: each call names the manager it acts for",
        f"MANAGER={q(tokens['manager'])}   # manager {manager}, whose book holds the customer",
        f"MANAGER_ID={q(manager)}",
        f"CUSTOMER={q(example.customer_id)}",
        'CURL=(curl -sS --fail-with-body -H "Content-Type: application/json")',
        "step() { echo; echo \"== $*\"; }",
        "",
        step("0. health and readiness: the version served and its stage two (no token)"),
        '"${CURL[@]}" "$BASE/readyz"; echo',
        step("1. the customer, as their manager sees them"),
        '"${CURL[@]}" -H "Authorization: Bearer $MANAGER" "$BASE/api/v1/customers/$CUSTOMER"; echo',
        step("2. a segment of the manager's book: the customer's age band and asset level"),
        f'"${{CURL[@]}}" -H "Authorization: Bearer $MANAGER" -d {q(json.dumps(segment_query(example)))} '
        '"$BASE/api/v1/segments/query"; echo',
        step(f"3. stage one: the CRM asks for {K} products, for manager {manager}"),
        'REC=$("${CURL[@]}" -H "Authorization: Bearer $CRM" '
        f'-d "{{\\"customer_id\\": \\"$CUSTOMER\\", \\"k\\": {K}, \\"manager_id\\": \\"$MANAGER_ID\\"}}" '
        '"$BASE/api/v1/recommendations")',
        'echo "$REC"',
        f'REC_ID=$(echo "$REC" | {rec_id})',
        step("4. feedback on the first three products: interested, not interested, already owns"),
        "#   (retrying with the same Idempotency-Key stores nothing twice)",
        f'ANSWERS=$(echo "$REC" | python3 -c \'import json,sys; d=json.load(sys.stdin); print({answers})\' "$MANAGER_ID")',
        '"${CURL[@]}" -H "Authorization: Bearer $CRM" -H "Idempotency-Key: demo-$(date +%s%N)" -d "$ANSWERS" '
        '"$BASE/api/v1/recommendations/$REC_ID/feedback"; echo',
        step("5. stage two: the products not shown yet, re-ranked with those answers"),
        '"${CURL[@]}" -H "Authorization: Bearer $CRM" -d "{\\"manager_id\\": \\"$MANAGER_ID\\"}" '
        '"$BASE/api/v1/recommendations/$REC_ID/stage-two"; echo',
        step("6. the dashboard (admin)"),
        '"${CURL[@]}" -H "Authorization: Bearer $ADMIN" "$BASE/api/v1/dashboard"; echo',
        step("7. a new product: conflicts, the customers to call first, a forecast (admin)"),
        f'"${{CURL[@]}}" -H "Authorization: Bearer $ADMIN" -d {q(json.dumps(COLD_START))} '
        '"$BASE/api/v1/products/cold-start"; echo',
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.examples", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="the API's host in the printed calls")
    parser.add_argument("--port", type=int, default=8000, help="the API's port in the printed calls")
    args = parser.parse_args(argv)
    cfg = serving_config.finalise(serving_config.from_env())
    data_dir = Path(cfg["LINGXI_DATA_DIR"])
    example = pick_example(data_dir, cfg.get("LINGXI_FEEDBACK_DB_URL"))
    if example is None:
        print("# no customer snapshot yet (run the pipeline); using a placeholder id", file=sys.stderr)
        example = Example("0" * 32, None)
    if example.manager_id is None:
        print(f"# no manager_books for the example customer; using {PLACEHOLDER_MANAGER_ID}", file=sys.stderr)
    tokens = demo_tokens(data_dir, Path(cfg["LINGXI_TOKENS_FILE"]), example.manager_id or PLACEHOLDER_MANAGER_ID)
    print(script(f"http://{args.host}:{args.port}", tokens, example))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
