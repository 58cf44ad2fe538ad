"""The serving load test: the real app under gunicorn, open-loop HTTP load on loopback.

    python -m benchmarks.loadtest [--data-dir DIR] [--workers 2] [--threads 1] [--seconds 60]   # in `make bench`

One run, against the bank in ``DIR`` (default ``$LINGXI_DATA_DIR``), writes into
``$LINGXI_REPORTS_DIR/bench.json`` (merged with the keys already there):

1. a scratch data dir in the system temp folder: links to ``DIR``'s read-only parts (marts, model,
   nightly scores, Feast registry and sources), a *copy* of the Feast SQLite online store
   (feedback is pushed into it; the server never gets a Redis configuration), and a new SQLite
   WAL feedback database and tokens file. Nothing in ``DIR`` is written;
2. gunicorn with the real app (``serving:create_app()``, the engine ``LINGXI_ENGINE`` names),
   bound to 127.0.0.1, started and stopped by this process;
3. load from ``benchmarks.loadgen`` (wrk when installed): requests leave on a fixed schedule and
   each latency runs from the request's *scheduled* time, so queueing is never hidden
   (coordinated omission); a request not answered with the expected status is an error:
   - ``stage_one``: ``POST /api/v1/recommendations`` for random customers (the CRM token acting for
     each customer's manager), ``--rate`` per second
     for ``--seconds`` (default 500/s for 60 s), after a warm-up;
   - ``max_rps_p95_under_100ms``: a ladder of rates (``--ladder-seconds`` each) from there up, until
     p95 reaches 100 ms or a request fails; the highest rate that passed, confirmed over
     ``--seconds`` like the main run (every step in ``stage_one_ladder``);
   - ``feedback``: durable feedback writes (``Idempotency-Key`` each) on the lists just logged;
   - ``segment_filter``: segment queries (count and first page over the whole snapshot, as admin);
   - ``durability``: feedback under load, ``kill -9`` of the whole server (master and workers)
     mid-load, a restart, and a count of every acknowledged (201) request in the database: present
     exactly once, never twice; plus a client retry of one of them after the restart.

Every phase also reports CPU: the server's (its process group), the load generator's, and what
the rest of the machine used meanwhile (``other_cpu_s``): on a shared machine the latencies are
pessimistic and the CPU per request is the figure that carries over.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import requests as http

from benchmarks import loadgen
from benchmarks.loadgen import Request
from benchmarks.server import GUNICORN, Server, free_port, prepare_scratch
from ml.core.config import Paths
from ml.core.logs import step_log
from ml.core.reports import write_bench
from serving.snapshot import resolve_source
from serving.tokens import add_token

P95_LIMIT_MS = 100.0

SEGMENT_QUERIES: list[dict[str, Any]] = [
    {"age": {"min": 30, "max": 50}, "assets_cny": {"min": 500_000, "max": 2_000_000}, "not_holds": {"categories": ["wealth"]}},
    {"risk_preferences": ["balanced", "growth"], "regions": ["320200"], "limit": 100},
    {"trigger": {"types": ["salary_credit"], "within_days": 30}, "not_holds": {"products": ["CRD_CARD"]}},
    {"asset_levels": ["L4", "L5"], "holds": {"categories": ["savings"]}, "age": {"max": 65}, "limit": 1000},
    {"limit": 0},
    {"holds": {"products": ["SAV_LCD"]}, "trigger": {"within_days": 14}, "regions": ["320000"]},
]

FEEDBACK_RESPONSES = ("interested", "interested", "not_interested", "not_interested", "already_owns")


@dataclass(frozen=True)
class Plan:
    """Rates and durations of the phases (``quick``: seconds-long phases for the tests)."""

    rate: float = 500
    seconds: float = 60
    warmup_seconds: float = 15
    ladder: tuple[float, ...] = (600, 700, 800, 900, 1000, 1100, 1200, 1400, 1600)
    ladder_down: tuple[float, ...] = (400, 300, 200, 100, 50)
    ladder_seconds: float = 20
    feedback_rate: float = 200
    feedback_seconds: float = 30
    segment_rate: float = 2
    segment_seconds: float = 30
    durability_rate: float = 200
    durability_kill_after: float = 5
    customers_sampled: int = 50_000

    @classmethod
    def quick(cls) -> "Plan":
        return cls(rate=20, seconds=2, warmup_seconds=1, ladder=(40,), ladder_down=(10,), ladder_seconds=1,
                   feedback_rate=20, feedback_seconds=2, segment_rate=4, segment_seconds=1,
                   durability_rate=30, durability_kill_after=2, customers_sampled=200)


def customer_sample(data_dir: Path, n: int, seed: int = 7) -> tuple[list[tuple[str, str]], int]:
    """(``n`` random (customer id, manager id) pairs of the current snapshot and its books, the
    snapshot's row count). The CRM token acts for each customer's own manager."""
    import pyarrow.parquet as pq

    source = resolve_source(data_dir / "marts")
    if source is None:
        raise FileNotFoundError(f"no customer snapshot under {data_dir / 'marts'}")
    if source.manager_books is None:
        raise FileNotFoundError(f"no manager_books.parquet next to {source.customer_360}")
    n_rows = pq.read_metadata(source.customer_360).num_rows
    books = pq.read_table(source.manager_books, columns=["customer_id", "manager_id"]).to_pandas()
    books = books.dropna()
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(books), size=min(n, len(books)), replace=False)
    return [(str(books.customer_id.iat[i]), str(books.manager_id.iat[i])) for i in picked], int(n_rows)


# -- phases ---------------------------------------------------------------------------------------------
log = step_log("loadtest")


def phase(server: Server, token: str, requests: list[Request], rate: float, seconds: float,
          expected: tuple[int, ...], generator: str, **kwargs: Any) -> tuple[dict[str, Any], loadgen.LoadResult]:
    """One open-loop run with the server's, the generator's and the rest of the machine's CPU."""
    cpu0, busy0 = server.cpu_seconds(), loadgen.machine_busy_seconds()
    result = loadgen.run(server.base, token, requests, rate, seconds, generator=generator, **kwargs)
    cpu1, busy1 = server.cpu_seconds(), loadgen.machine_busy_seconds()
    summary = result.summary(expected)
    server_cpu = cpu1 - cpu0
    summary.update({
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_ms_per_request": round(1000 * server_cpu / max(summary["ok"], 1), 3),
        "generator_cpu_s": round(result.generator_cpu_s, 2),
        "other_cpu_s": round(max(busy1 - busy0 - server_cpu - result.generator_cpu_s, 0.0), 2),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    })
    return summary, result


def passes(summary: dict[str, Any]) -> bool:
    return summary["errors"] == 0 and summary["p95_ms"] is not None and summary["p95_ms"] < P95_LIMIT_MS


def ladder(server: Server, token: str, requests: list[Request], plan: Plan, first: dict[str, Any],
           generator: str) -> tuple[float | None, list[dict[str, Any]]]:
    """The highest rate with p95 < 100 ms and no error: rungs of ``plan.ladder_seconds`` up from
    ``plan.rate`` (down when ``first`` failed) to the first failure, then the best rung again for
    ``plan.seconds``, as long as the main run; if that fails, the rung below it (every step listed)."""
    steps = [_step(first, "main")]
    passed = [plan.rate] if passes(first) else []
    for rate in plan.ladder if passed else plan.ladder_down:
        summary = _rung(server, token, requests, rate, plan.ladder_seconds, generator)
        steps.append(_step(summary, "ladder"))
        if passes(summary):
            passed.append(rate)
        if passed and (rate < plan.rate or not passes(summary)):
            break  # going up: the first failure ends it; going down: the first success
    candidates = sorted((r for r in passed if r != plan.rate), reverse=True)[:2]
    for rate in candidates:  # a 20 s rung is not 60 s sustained: confirm
        summary = _rung(server, token, requests, rate, plan.seconds, generator)
        steps.append(_step(summary, "confirm"))
        if passes(summary):
            return rate, steps
    return (plan.rate if passes(first) else None), steps


def _rung(server: Server, token: str, requests: list[Request], rate: float, seconds: float,
          generator: str) -> dict[str, Any]:
    server.settle()
    summary, _ = phase(server, token, requests, rate, seconds, (201,), generator)
    log(f"{rate:.0f}/s for {seconds:.0f} s: p95 {summary['p95_ms']} ms, errors {summary['errors']}")
    return summary


def _step(summary: dict[str, Any], kind: str) -> dict[str, Any]:
    keys = ("target_rps", "rps", "p50_ms", "p95_ms", "p99_ms", "errors", "duration_s", "server_cpu_ms_per_request",
            "generator_cpu_ms_per_request", "other_cpu_s")
    return {"step": kind, **{k: summary[k] for k in keys}}


def stage_one_requests(customers: list[tuple[str, str]]) -> list[Request]:
    return [Request("/api/v1/recommendations", json.dumps({"customer_id": c, "manager_id": m}))
            for c, m in customers]


def feedback_requests(scratch: Path, n: int = 5000, seed: int = 7) -> list[Request]:
    """One-item feedback on products shown in stage-one lists the server logged."""
    with sqlite3.connect(f"file:{scratch / 'feedback.db'}?mode=ro", uri=True) as db:
        shown = db.execute("SELECT i.recommendation_id, i.product_id, l.manager_id FROM recommendation_items i"
                           " JOIN recommendation_lists l USING (recommendation_id) WHERE l.stage = 1"
                           " ORDER BY random() LIMIT ?", (n,)).fetchall()
    if not shown:
        raise RuntimeError("no logged stage-one lists with products to give feedback on")
    rng = np.random.default_rng(seed)
    out = []
    for rid, product, manager in shown:  # answered for the manager the list was made for (the customer's)
        response = FEEDBACK_RESPONSES[int(rng.integers(len(FEEDBACK_RESPONSES)))]
        body = {"items": [{"product_id": product, "response": response}], "manager_id": manager}
        out.append(Request(f"/api/v1/recommendations/{rid}/feedback", json.dumps(body)))
    return out


def segment_requests() -> list[Request]:
    return [Request("/api/v1/segments/query", json.dumps(q)) for q in SEGMENT_QUERIES]


def durability(server: Server, token: str, requests: list[Request], plan: Plan, generator: str) -> dict[str, Any]:
    """Feedback at load, kill -9 mid-load, restart; every acknowledged request stored exactly once."""
    prefix = f"dur{int(time.time())}"
    stop = threading.Event()
    box: dict[str, loadgen.LoadResult] = {}

    def load() -> None:
        box["result"] = loadgen.run(server.base, token, requests, plan.durability_rate,
                                    plan.durability_kill_after * 2, idempotency_prefix=prefix,
                                    generator=generator, stop=stop)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    time.sleep(loadgen.START_DELAY_SECONDS + plan.durability_kill_after)
    server.kill9()
    killed_at = time.monotonic()
    time.sleep(0.5)
    stop.set()
    thread.join(60)
    result = box["result"]
    acked = {f"{prefix}-{sid}" for sid, ok in zip(result.slot_ids, result.ok((201,))) if ok}
    sent = int((~np.isnan(result.sent)).sum())
    in_flight = int(((result.sent < killed_at) & np.isnan(result.received)).sum())
    server.start()
    scope = f"token:{token.split('_')[1]}/"  # keys are stored within the caller's scope
    with sqlite3.connect(f"file:{server.scratch / 'feedback.db'}?mode=ro", uri=True) as db:
        integrity = db.execute("PRAGMA integrity_check").fetchall()[0][0]
        stored = {k.removeprefix(scope): c for k, c in db.execute(
            "SELECT request_key, COUNT(*) FROM feedback WHERE request_key LIKE ? GROUP BY request_key",
            (f"{scope}{prefix}-%",)).fetchall()}
        keys = {k.removeprefix(scope) for (k,) in db.execute(
            "SELECT idempotency_key FROM feedback_requests WHERE idempotency_key LIKE ?",
            (f"{scope}{prefix}-%",)).fetchall()}
    present = sum(1 for key in acked if stored.get(key) == 1 and key in keys)
    retry = _retry_one(server, token, requests, prefix, acked, result)
    return {"acknowledged": len(acked), "present_after_restart": present,
            "missing": sum(1 for key in acked if key not in stored),
            "duplicates": sum(count - 1 for count in stored.values() if count > 1),
            "stored_not_acknowledged": len(set(stored) - acked), "attempted": sent, "in_flight_at_kill": in_flight,
            "integrity_check": integrity, "retry_after_restart": retry, "rate": plan.durability_rate,
            "killed_after_s": plan.durability_kill_after}


def _retry_one(server: Server, token: str, requests: list[Request], prefix: str, acked: set[str],
               result: loadgen.LoadResult) -> dict[str, Any] | None:
    """A client retry of an acknowledged request after the restart: the original answer, nothing new."""
    for sid, kind, ok in zip(result.slot_ids, result.kind, result.ok((201,))):
        if ok and kind >= 0:
            request = requests[int(kind)]
            answer = http.post(f"{server.base}{request.path}", data=request.body, timeout=30,
                               headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                                        "Idempotency-Key": f"{prefix}-{sid}"})
            return {"status": answer.status_code, "replayed": answer.headers.get("Idempotent-Replayed") == "true"}
    return None


# -- the whole run --------------------------------------------------------------------------------------
def run_benchmark(data_dir: Path, *, workers: int = 2, threads: int = 1, plan: Plan | None = None,
                  generator: str = "auto", work_dir: Path | None = None) -> dict[str, Any]:
    """Every phase against a scratch copy of ``data_dir``; returns the ``bench.json`` keys."""
    plan = plan or Plan()
    data_dir = Path(data_dir).resolve()
    if not GUNICORN.exists():
        raise FileNotFoundError(f"gunicorn is not installed next to {sys.executable}")
    with tempfile.TemporaryDirectory(prefix="lingxi-loadtest-", dir=work_dir) as tmp:
        scratch = Path(tmp) / "data"
        started = time.monotonic()
        prepare_scratch(data_dir, scratch)
        log(f"scratch data dir ready ({time.monotonic() - started:.0f} s)")
        # no rate limit on the load test's own tokens: it measures the server, not the limiter
        token = add_token(scratch / "tokens.json", "loadtest", "crm", rate_limit=0)
        admin = add_token(scratch / "tokens.json", "loadtest-admin", "admin", rate_limit=0)
        customers, n_customers = customer_sample(data_dir, plan.customers_sampled)
        server = Server(scratch, workers, threads, free_port())
        try:
            started = time.monotonic()
            server.start()
            ready = server.readiness()
            log(f"gunicorn ready ({time.monotonic() - started:.0f} s)")
            s1 = stage_one_requests(customers)
            phase(server, token, s1, min(plan.rate, 200), plan.warmup_seconds, (201,), generator)
            stage_one, _ = phase(server, token, s1, plan.rate, plan.seconds, (201,), generator)
            log(f"stage one {plan.rate:.0f}/s: p95 {stage_one['p95_ms']} ms, errors {stage_one['errors']}")
            best, steps = ladder(server, token, s1, plan, stage_one, generator)
            server.settle()
            fb = feedback_requests(scratch)
            feedback, _ = phase(server, token, fb, plan.feedback_rate, plan.feedback_seconds, (201,), generator,
                                idempotency_prefix=f"fb{int(time.time())}")
            log(f"feedback {plan.feedback_rate:.0f}/s: p95 {feedback['p95_ms']} ms, errors {feedback['errors']}")
            server.settle()
            segments, seg_result = phase(server, admin, segment_requests(), plan.segment_rate, plan.segment_seconds,
                                         (200,), generator)
            segments["per_query_p95_ms"] = _per_query_p95(seg_result)
            log(f"segment filter: p95 {segments['p95_ms']} ms")
            server.settle()
            durable = durability(server, token, fb, plan, generator)
            log(f"durability: {durable['present_after_restart']}/{durable['acknowledged']} acknowledged present, "
                f"{durable['duplicates']} duplicates")
        finally:
            server.stop()
    return {
        "stage_one": stage_one,
        "max_rps_p95_under_100ms": best,
        "max_rps_vs_1000_qps_target": round(best / 1000, 2) if best else 0.0,
        "stage_one_ladder": steps,
        "feedback": feedback,
        "segment_filter": segments,
        "durability": durable,
        "n_customers": n_customers,
        "workers": workers,
        "serving": {"threads_per_worker": threads, "worker_class": "gthread" if threads > 1 else "sync",
                    "engine": ready.get("checks", {}).get("engine", {}).get("versions"),
                    "generator": stage_one["generator"], "machine_cores": os.cpu_count(),
                    "latency": "from each request's scheduled send time to its answer (open loop)",
                    "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    }


def _per_query_p95(result: loadgen.LoadResult) -> dict[str, float | None]:
    out = {}
    latency = result.latency_ms
    for i, query in enumerate(SEGMENT_QUERIES):
        mine = latency[(result.kind == i) & result.ok((200,))]
        out[json.dumps(query, sort_keys=True)] = loadgen.percentiles(mine)["p95_ms"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None, help="the bank (default $LINGXI_DATA_DIR)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (1: sync workers, as `make serve`; >1: gthread)")
    parser.add_argument("--rate", type=float, default=Plan.rate, help="stage-one requests per second of the main phase")
    parser.add_argument("--seconds", type=float, default=Plan.seconds, help="length of the main phase")
    parser.add_argument("--ladder-seconds", type=float, default=Plan.ladder_seconds,
                        help="length of each rung of the search for the highest rate with p95 < 100 ms")
    parser.add_argument("--generator", choices=["auto", "wrk", "asyncio"], default="auto",
                        help="load generator: wrk (open loop, Lua script), the built-in asyncio one, or wrk when installed")
    parser.add_argument("--quick", action="store_true", help="seconds-long phases at low rates (a smoke test)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench.json alone")
    args = parser.parse_args(argv)
    paths = Paths.from_env()
    plan = Plan.quick() if args.quick else Plan(rate=args.rate, seconds=args.seconds,
                                                ladder_seconds=args.ladder_seconds)
    result = run_benchmark(args.data_dir or paths.data, workers=args.workers, threads=args.threads, plan=plan,
                           generator=args.generator)
    if not args.no_write:
        write_bench(paths.reports, result)
    print(json.dumps(result, indent=2))
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
