"""The console's page latency: each page requested through gunicorn as a signed-in person would.

    python -m benchmarks.console_latency [--data-dir DIR] [--requests 40] [--workers 2]

gunicorn with the real app and engine over a scratch copy of DIR (``benchmarks.server``: nothing of
DIR is written), one manager (a mid-sized book) and one admin signed in through the login form. Each
page is requested ``--requests`` times one after another (a closed loop: one person clicking, not a
load test), customers drawn from the manager's book; the latency is the full HTTP round trip.
Writes ``console_latency`` into ``$LINGXI_REPORTS_DIR/bench.json``: per page p50 / p95 / max in ms
and the number of requests (the stage-one page logs a list per request, like a manager's click).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import requests

from benchmarks.server import Server, free_port, prepare_scratch
from ml.core import versions
from ml.core.config import Paths
from ml.core.reports import write_bench
from serving.tokens import add_token

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
NEW_PRODUCT = ("product_id=WLT_SMART_PLUS&name=Smart+Wealth+Plus&category=wealth&risk_level=R3"
               "&min_investment_cny=10000&target_age_min=25&target_age_max=65&tags=balanced&annual_value_cny=600")


def served_marts(data_dir: Path) -> Path:
    current = versions.current_version(data_dir)
    return (versions.version_dir(data_dir, current) if current else data_dir) / "marts"


def sign_in(base: str, token: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/console/login", timeout=30).text
    response = session.post(f"{base}/console/login", data={"token": token, "csrf_token": CSRF.search(page)[1]},
                            allow_redirects=False, timeout=30)
    if response.status_code != 302:
        raise RuntimeError(f"login failed: {response.status_code}")
    return session


def timed(n: int, call: Callable[[int], requests.Response]) -> dict:
    """``n`` calls one after another (after one warm-up): latency percentiles in ms; any non-2xx is an error."""
    call(0)
    latencies, errors = [], 0
    for i in range(n):
        started = time.perf_counter()
        response = call(i + 1)
        latencies.append((time.perf_counter() - started) * 1000)
        errors += response.status_code >= 300
    p50, p95 = np.percentile(latencies, [50, 95])
    return {"requests": n, "p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1),
            "max_ms": round(max(latencies), 1), "errors": int(errors)}


def measure(base: str, manager: requests.Session, admin: requests.Session, book: list[str], n: int) -> dict:
    rng = np.random.default_rng(0)
    customers = [book[int(i)] for i in rng.integers(0, len(book), n + 1)]

    def stage_one(i: int) -> requests.Response:
        page = manager.get(f"{base}/console/customers/{customers[i]}", timeout=60).text
        return manager.post(f"{base}/console/customers/{customers[i]}/recommend",
                            data={"csrf_token": CSRF.search(page)[1]}, allow_redirects=True, timeout=60)

    pages = {
        "today": lambda i: manager.get(f"{base}/console/today", timeout=60),
        "customer": lambda i: manager.get(f"{base}/console/customers/{customers[i]}", timeout=60),
        "segments": lambda i: manager.get(f"{base}/console/segments", timeout=60),
        "segment_count": lambda i: manager.get(f"{base}/console/segments/results?age_min={20 + i % 40}",
                                               headers={"HX-Request": "true"}, timeout=60),
        "dashboard": lambda i: manager.get(f"{base}/console/dashboard", timeout=60),
        "monthly_report": lambda i: manager.get(f"{base}/console/reports/monthly", timeout=60),
        "models": lambda i: admin.get(f"{base}/console/models", timeout=60),
    }
    out = {name: timed(n, call) for name, call in pages.items()}
    # customer page + stage one + the list's page: what one "recommend" click costs, end to end
    out["customer_then_stage_one"] = timed(n, stage_one)
    out["new_product"] = timed(max(3, n // 8), lambda i: admin.get(f"{base}/console/products/new?{NEW_PRODUCT}",
                                                                    timeout=120))
    return out


def run(data_dir: Path, requests_per_page: int = 40, workers: int = 2) -> dict:
    marts = served_marts(data_dir)
    books = pd.read_parquet(marts / "manager_books.parquet", columns=["customer_id", "manager_id"])
    sizes = books["manager_id"].value_counts()
    manager_id = sizes.index[len(sizes) // 2]  # a mid-sized book
    book = sorted(books.loc[books["manager_id"] == manager_id, "customer_id"])
    with tempfile.TemporaryDirectory(prefix="lingxi-console-bench-") as tmp:
        scratch = Path(tmp) / "data"
        prepare_scratch(data_dir, scratch)
        tokens = {"manager": add_token(scratch / "tokens.json", "bench-manager", "manager", manager_id),
                  "admin": add_token(scratch / "tokens.json", "bench-admin", "admin", None)}
        server = Server(scratch, workers, 1, free_port(), extra_env={"LINGXI_RATE_LIMITS": "off"})
        server.start()
        try:
            pages = measure(server.base, sign_in(server.base, tokens["manager"]), sign_in(server.base, tokens["admin"]),
                            book, requests_per_page)
        finally:
            server.stop()
    return {"pages": pages, "workers": workers, "manager_book_size": len(book), "customers": int(len(books)),
            "p95_ms_worst_page": max(p["p95_ms"] for p in pages.values()),
            "note": "closed loop, one client, full HTTP round trip through gunicorn (sync workers)"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.console_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None, help="the bank (default $LINGXI_DATA_DIR)")
    parser.add_argument("--requests", type=int, default=40, help="requests per page")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    args = parser.parse_args(argv)
    paths = Paths.from_env()
    result = run(args.data_dir or paths.data, args.requests, args.workers)
    write_bench(paths.reports, {"console_latency": result})
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
