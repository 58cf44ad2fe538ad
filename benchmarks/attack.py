"""A scripted attack on the real API: ``make attack SCALE=test`` writes ``reports/security.json``.

    python -m benchmarks.attack [--data-dir DIR] [--workers 2] [--max-requests 4000] [--seconds 300]
                                [--front nginx|gunicorn]
    python -m benchmarks.attack --check     # exit 3 when DIR lacks what the real app needs

It starts the production front door (nginx buffering requests in front of gunicorn, ``serving.proxy``;
``--front gunicorn`` for gunicorn alone) with the real app (``serving:create_app()``, the engine
``LINGXI_ENGINE`` names) on 127.0.0.1 over a scratch copy of ``DIR`` (``benchmarks.server``: nothing in ``DIR`` is written),
with the production defaults for rate limits, and attacks it from this process, bounded by
``--max-requests`` and ``--seconds``. Two real managers of the books, A and B, take part; A plays
the attacker against B's book (``benchmarks.attack_cases``). The attack tokens carry no rate limit
of their own, so each class meets the defence it is aimed at rather than the limiter; the rate
limit is attacked on its own with a token under its role's default.

``security.json``: ``requests`` (every HTTP request sent, setup included), ``by_class`` (auth,
cross_book, malformed, oversized, injection, slow_client, idempotency: ``tried`` / ``refused``),
``server_errors`` (5xx answers; must be 0), ``cross_book_successes`` (2xx answers to cross-book
attempts plus every foreign customer in a page, plus feedback rows A left on B's customers; must
be 0), the rate-limit burst, the slow-client probes, the checks after the attack (readiness,
database integrity, the audit log) and the attempts that were not refused.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from benchmarks import attack_cases as cases
from benchmarks.attack_client import Budget, Client
from benchmarks.server import FRONTS, GUNICORN, Server, free_port, prepare_scratch
from ml.core.config import Paths
from ml.core.logs import step_log
from serving.config import DEFAULT_RATE_LIMITS
from serving.ratelimit import parse_limits
from serving.snapshot import resolve_source
from serving.tokens import add_token, revoke_token

log = step_log("attack")
BURST_SECONDS = 2.0


def missing_parts(data_dir: Path) -> list[str]:
    """What the real app needs and ``data_dir`` lacks (empty: ready to attack)."""
    missing = []
    try:
        source = resolve_source(data_dir / "marts")
    except Exception:  # noqa: BLE001 - a broken pointer is as good as none
        source = None
    if source is None:
        missing.append("marts/customer_360.parquet")
    elif source.manager_books is None:
        missing.append("marts/manager_books.parquet")
    for part in ("models", "scores/stage_one_table", "feast"):
        path = data_dir / part
        if not path.is_dir() or not any(path.iterdir()):
            missing.append(part)
    return missing


def pick_managers(data_dir: Path) -> tuple[str, str, list[str], list[str], int]:
    """The two largest books: (A, B, A's customers, B's customers, customers in all books)."""
    source = resolve_source(data_dir / "marts")
    assert source is not None and source.manager_books is not None
    books = pq.read_table(source.manager_books, columns=["customer_id", "manager_id"]).to_pandas().dropna()
    sizes = books.manager_id.value_counts()
    a, b = sorted(sizes.index[:2])
    ids = {m: sorted(str(c).upper() for c in books.customer_id[books.manager_id == m]) for m in (a, b)}
    return a, b, ids[a], ids[b], len(books)


def _tokens(path: Path, a: str, b: str) -> dict[str, str]:
    return {"a": add_token(path, "attack-manager-a", "manager", a, rate_limit=0),
            "b": add_token(path, "attack-manager-b", "manager", b, rate_limit=0),
            "crm": add_token(path, "attack-crm", "crm", rate_limit=0),
            "admin": add_token(path, "attack-admin", "admin", rate_limit=0),
            "revoked": add_token(path, "attack-revoked", "crm", rate_limit=0),
            "throttled": add_token(path, "attack-throttled", "manager", a)}  # the role's default limit


def _checks(c: Client, server: Server, cast: cases.Cast, tokens: dict[str, str]) -> dict[str, Any]:
    """After the attack: still ready, the database intact, no answer of A on B's customers, the audit."""
    ready = c.request("GET", "/readyz", timeout=30)
    db = sqlite3.connect(f"file:{server.scratch / 'feedback.db'}?mode=ro", uri=True)
    try:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        b_customers = cast.book_b
        marks = ",".join("?" * len(b_customers))
        planted = db.execute(f"SELECT COUNT(*) FROM feedback WHERE manager_id = ? AND customer_id IN ({marks})",
                             [cast.manager_a, *b_customers]).fetchone()[0]
        token_a = tokens["a"].split("_")[1]
        audit = dict(db.execute("SELECT status, COUNT(*) FROM customer_reads WHERE token_id = ? GROUP BY status",
                                (token_a,)).fetchall())
        tables = {t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        db.close()
    return {"ready_after": ready is not None and ready.status_code == 200, "integrity_check": integrity,
            "tables_intact": {"recommendation_lists", "feedback", "feedback_requests", "customer_reads"} <= tables,
            "feedback_rows_by_a_on_b_customers": int(planted),
            "audit_rows_of_a_by_status": {str(k): int(v) for k, v in sorted(audit.items())}}


def _worker_restarts(log_path: Path, workers: int) -> int:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return max(len(re.findall(r"Booting worker", text)) - workers, 0)


def run_attack(data_dir: Path, *, workers: int = 2, max_requests: int = 4000, seconds: float = 300,
               slow_seconds: float = 12, work_dir: Path | None = None, front: str = "nginx") -> dict[str, Any]:
    data_dir = Path(data_dir).resolve()
    if not GUNICORN.exists():
        raise FileNotFoundError(f"gunicorn is not installed next to {sys.executable}")
    a, b, book_a, book_b, n_customers = pick_managers(data_dir)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lingxi-attack-", dir=work_dir) as tmp:
        scratch = Path(tmp) / "data"
        prepare_scratch(data_dir, scratch)
        tokens = _tokens(scratch / "tokens.json", a, b)
        env = {"LINGXI_RATE_LIMITS": DEFAULT_RATE_LIMITS, "LINGXI_RATE_BURST_SECONDS": str(BURST_SECONDS)}
        server = Server(scratch, workers, 1, free_port(), extra_env=env, front=front)
        try:
            server.start()
            ready = server.readiness()
            log(f"gunicorn ready; managers {a} ({len(book_a)} customers) and {b} ({len(book_b)})")
            c = Client(server.base, max_requests, seconds)
            cast = cases.Cast(tokens, a, b, book_a, book_b,
                              revoke=lambda: revoke_token(scratch / "tokens.json", "attack-revoked"))
            cast.lists_a = cases.make_lists(c, tokens["a"], book_a)
            cast.lists_b = cases.make_lists(c, tokens["b"], book_b)
            if len(cast.lists_a) < 3 or len(cast.lists_b) < 3:
                raise RuntimeError("the engine gave too few stage-one lists with products to attack")
            version = ready["checks"]["snapshot"]["version"]
            rate = parse_limits(DEFAULT_RATE_LIMITS)["manager"]
            extra: dict[str, Any] = {}
            steps = [("auth", lambda: cases.auth(c, cast)), ("cross_book", lambda: cases.cross_book(c, cast)),
                     ("malformed", lambda: cases.malformed(c, cast)), ("oversized", lambda: cases.oversized(c, cast)),
                     ("injection", lambda: cases.injection(c, cast, version)),
                     ("idempotency", lambda: cases.idempotency(c, cast)),
                     ("rate_limit", lambda: extra.__setitem__(
                         "rate_limit", cases.rate_limit(c, tokens["throttled"], rate, BURST_SECONDS))),
                     ("slow_client", lambda: extra.__setitem__(
                         "slow_client", cases.slow_clients(c, cast, workers + 1, slow_seconds)))]
            stopped = None
            for name, step in steps:
                try:
                    step()
                except Budget as exc:
                    stopped = f"{name}: {exc}"
                    break
                log(f"{name}: {c.tally.requests} requests so far, {c.tally.server_errors} server errors")
            c.max_requests += 10  # the checks below always run
            c.deadline = time.monotonic() + 60
            checks = _checks(c, server, cast, tokens)
            restarts = _worker_restarts(server.log, workers)
        finally:
            server.stop()
    tally = c.tally
    return {
        "requests": tally.requests,
        "by_class": tally.by_class,
        "server_errors": tally.server_errors,
        "cross_book_successes": tally.cross_book_successes + checks["feedback_rows_by_a_on_b_customers"],
        "transport_errors": tally.transport_errors,
        "setup_requests": tally.setup_requests,
        **extra,
        "checks": {**checks, "worker_restarts": restarts},
        "statuses": dict(sorted(tally.statuses.items())),
        "not_refused": tally.not_refused,
        "stopped_early": stopped,
        "managers": {"attacker": a, "attacker_book": len(book_a), "victim": b, "victim_book": len(book_b)},
        "n_customers": n_customers,
        "workers": workers,
        "front": front,
        "engine": ready.get("checks", {}).get("engine", {}).get("versions"),
        "limits": {"max_requests": max_requests, "seconds": seconds},
        "duration_s": round(time.monotonic() - started, 1),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_report(reports: Path, result: dict[str, Any]) -> Path:
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / "security.json"
    tmp = path.with_name(".security.json.tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.attack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None, help="the bank (default $LINGXI_DATA_DIR)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of the server under attack")
    parser.add_argument("--max-requests", type=int, default=4000,
                        help="stop the attack after this many requests (the final checks still run)")
    parser.add_argument("--seconds", type=float, default=300, help="time budget of the attack itself")
    parser.add_argument("--slow-seconds", type=float, default=12,
                        help="how long each slow client dribbles (above nginx's 10 s header timeout)")
    parser.add_argument("--front", choices=FRONTS, default="nginx",
                        help="nginx in front of gunicorn as in production (make serve-prod), or gunicorn alone")
    parser.add_argument("--check", action="store_true", help="only check the data dir (exit 3 if incomplete)")
    args = parser.parse_args(argv)
    paths = Paths.from_env()
    data_dir = args.data_dir or paths.data
    missing = missing_parts(data_dir)
    if args.check or missing:
        if missing:
            print(f"[attack] {data_dir} lacks {', '.join(missing)}", file=sys.stderr)
        return 3 if missing else 0
    result = run_attack(data_dir, workers=args.workers, max_requests=args.max_requests, seconds=args.seconds,
                        slow_seconds=args.slow_seconds, front=args.front)
    path = write_report(paths.reports, result)
    summary = {k: result[k] for k in ("requests", "by_class", "server_errors", "cross_book_successes")}
    print(json.dumps(summary, indent=2))
    log(f"wrote {path}")
    return 0 if result["server_errors"] == 0 and result["cross_book_successes"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
