"""Serving benchmarks for ``make bench`` (not timed tests): ``python -m serving.bench``.

- ``bench_segments``: load a customer_360 snapshot (the real one under ``$LINGXI_DATA_DIR/marts``
  when present, else a synthetic one of ``n_customers`` rows with the same columns) and time
  representative segment queries (validation + filter + count + first page) and id lookups.
- ``bench_feedback_store``: time durable feedback writes (one transaction each) against a store URL.

Both return plain dicts; the CLI prints them as JSON (``--out`` also writes a file).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ml.config import SEEDS_DIR, Paths

from . import segments
from .catalogue import load_catalogue
from .snapshot import CUSTOMER_360_FILE, TRIGGER_COLUMNS, load_snapshot, resolve_source

QUERIES: list[dict[str, Any]] = [
    {"age": {"min": 30, "max": 50}, "assets_cny": {"min": 500_000, "max": 2_000_000}, "not_holds": {"categories": ["wealth"]}},
    {"risk_preferences": ["balanced", "growth"], "regions": ["320200"], "limit": 100},
    {"trigger": {"types": ["salary_credit"], "within_days": 30}, "not_holds": {"products": ["CRD_CARD"]}},
    {"asset_levels": ["L4", "L5"], "holds": {"categories": ["savings"]}, "age": {"max": 65}, "limit": 1000},
    {"limit": 0},
    {"holds": {"products": ["SAV_LCD"]}, "trigger": {"within_days": 14}, "regions": ["320000"]},
]


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    arr = np.asarray(samples_ms)
    return {"p50_ms": round(float(np.percentile(arr, 50)), 3), "p95_ms": round(float(np.percentile(arr, 95)), 3),
            "p99_ms": round(float(np.percentile(arr, 99)), 3), "max_ms": round(float(arr.max()), 3)}


def synthetic_customer_360(path: Path, n: int, seed: int = 7) -> None:
    """A customer_360-shaped Parquet file of ``n`` rows (columns as ``serving.snapshot`` expects)."""
    rng = np.random.default_rng(seed)
    catalogue = load_catalogue(SEEDS_DIR / "products.csv")
    ids = [hashlib.md5(f"bench-{i}".encode()).hexdigest().upper() for i in range(n)]
    regions = np.array([line.split(",")[0] for line in (SEEDS_DIR / "regions.csv").read_text().splitlines()[1:]])
    levels = np.array(["L1", "L2", "L3", "L4", "L5"])[rng.choice(5, size=n, p=[0.45, 0.3, 0.15, 0.07, 0.03])]
    columns: dict[str, Any] = {
        "customer_id": ids,
        "age": rng.integers(18, 90, size=n, dtype=np.int32),
        "asset_level": levels,
        "assets_cny": rng.lognormal(11, 1.4, size=n),
        "risk_preference": np.array(["conservative", "cautious", "balanced", "growth", "aggressive"])[rng.integers(0, 5, n)],
        "region_code": regions[rng.integers(0, len(regions), n)],
    }
    for product_id in catalogue.products:
        columns[f"holds_{product_id.lower()}"] = rng.random(n) < (0.9 if product_id == "SAV_DEMAND" else 0.02)
    for category in catalogue.categories:
        columns[f"n_held_{category}"] = sum(columns[f"holds_{p.lower()}"].astype(np.int32)
                                               for p in catalogue.in_category(category))
    for column in TRIGGER_COLUMNS.values():
        days = rng.integers(0, 540, size=n).astype(np.float64)
        days[rng.random(n) < 0.4] = np.nan
        columns[column] = pa.array(days, from_pandas=True).cast(pa.int32())
    pq.write_table(pa.table(columns), path, row_group_size=128 * 1024)


def bench_segments(n_customers: int = 1_108_828, n_queries: int = 300, data_dir: Path | None = None,
                   work_dir: Path | None = None) -> dict[str, Any]:
    """Latency of segment queries and id lookups over one in-memory snapshot."""
    catalogue = load_catalogue(SEEDS_DIR / "products.csv")
    source = resolve_source(Path(data_dir) / "marts") if data_dir else None
    tmp = None
    if source is None:
        tmp = tempfile.TemporaryDirectory(dir=work_dir)
        marts = Path(tmp.name)
        synthetic_customer_360(marts / CUSTOMER_360_FILE, n_customers)
        source = resolve_source(marts)
    assert source is not None
    try:
        started = time.perf_counter()
        snapshot = load_snapshot(source, catalogue)
        load_ms = (time.perf_counter() - started) * 1000
        samples: list[float] = []
        per_query: dict[int, list[float]] = {i: [] for i in range(len(QUERIES))}
        for i in range(n_queries):
            body = QUERIES[i % len(QUERIES)]
            t0 = time.perf_counter()
            spec, limit, cursor = segments.parse_request(dict(body), catalogue)
            segments.query(snapshot, spec, limit, cursor)
            elapsed = (time.perf_counter() - t0) * 1000
            samples.append(elapsed)
            per_query[i % len(QUERIES)].append(elapsed)
        rng = np.random.default_rng(1)
        lookups = []
        for j in rng.integers(0, snapshot.rows, size=min(2000, n_queries * 5)):
            cid = snapshot.ids[j].decode()
            t0 = time.perf_counter()
            row = snapshot.index_of(cid)
            assert row is not None
            snapshot.summary(row), snapshot.holdings(row), snapshot.triggers(row)
            lookups.append((time.perf_counter() - t0) * 1000)
        return {
            "source": "marts" if tmp is None else "synthetic",
            "customers": snapshot.rows,
            "snapshot_load_ms": round(load_ms, 1),
            "queries": n_queries,
            **_percentiles(samples),
            "per_query_p95_ms": {json.dumps(QUERIES[k], sort_keys=True): _percentiles(v)["p95_ms"]
                                 for k, v in per_query.items() if v},
            "lookup": _percentiles(lookups),
        }
    finally:
        if tmp is not None:
            tmp.cleanup()


def bench_feedback_store(url: str, n_writes: int = 500) -> dict[str, Any]:
    """Latency of durable feedback writes (each its own committed transaction) against ``url``."""
    from .store import Recommendation, ShownProduct, open_store
    from .workflow import request_hash

    store = open_store(url)
    try:
        now = datetime.now(timezone.utc)
        rec = Recommendation(uuid.uuid4().hex.upper(), "0" * 32, "BENCH", 1, None, "bench", now,
                             (ShownProduct("SAV_TIME", 1, 0.5, 50), ShownProduct("PRO_LIFE", 2, 0.4, 40)))
        store.log_recommendation(rec)
        samples = []
        for i in range(n_writes):
            items = [("SAV_TIME", "interested"), ("PRO_LIFE", "not_interested")]
            key = f"bench-{uuid.uuid4().hex}"
            t0 = time.perf_counter()
            store.record_feedback(idempotency_key=key, request_hash=request_hash(rec.recommendation_id, "BENCH", items),
                                  recommendation=rec, manager_id="BENCH", items=items, recorded_at=now)
            samples.append((time.perf_counter() - t0) * 1000)
        return {"backend": store.backend, "writes": n_writes, **_percentiles(samples)}
    finally:
        store.close()


def open_loop(send, rate: float, seconds: float, workers: int = 32) -> dict[str, Any]:
    """Fire ``send(i)`` (returns an HTTP status) at a fixed ``rate`` per second for ``seconds``.

    Open loop: request ``i`` is due at ``t0 + i / rate`` and its latency is measured from that due
    time, so a slow server cannot hide queueing by slowing the client (no coordinated omission).
    """
    import threading

    total = int(rate * seconds)
    latencies: list[float] = [0.0] * total
    statuses: list[int] = [0] * total
    lock = threading.Lock()
    counter = iter(range(total))
    t0 = time.perf_counter() + 0.2

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                statuses[i] = send(i)
            except Exception:  # noqa: BLE001 - counted as an error
                statuses[i] = -1
            latencies[i] = (time.perf_counter() - due) * 1000

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    ok = sum(1 for s in statuses if 200 <= s < 300)
    return {"target_rps": rate, "achieved_rps": round(total / elapsed, 1), "requests": total, "ok": ok,
            "errors": total - ok, **_percentiles(latencies)}


def bench_http(base_url: str, token: str, customer_ids: list[str], *, stage_one_rps: float = 500,
               feedback_rps: float = 200, seconds: float = 20, manager_id: str = "BENCH") -> dict[str, Any]:
    """Stage one at ``stage_one_rps`` then feedback writes at ``feedback_rps`` against a running server.

    ``token`` must be a crm token (it names ``manager_id``). Run the load generator on other cores
    than gunicorn where possible: on one small machine the client competes for the same CPU.
    """
    import threading

    import requests

    local = threading.local()
    headers = {"Authorization": f"Bearer {token}"}

    def session() -> requests.Session:
        if getattr(local, "session", None) is None:
            local.session = requests.Session()
        return local.session

    recs: list[dict] = []

    def stage_one(i: int) -> int:
        cid = customer_ids[i % len(customer_ids)]
        r = session().post(f"{base_url}/api/v1/recommendations", json={"customer_id": cid, "manager_id": manager_id},
                           headers=headers, timeout=10)
        if r.status_code == 201 and len(recs) < 5000 and r.json()["products"]:
            recs.append(r.json())
        return r.status_code

    result = {"stage_one": open_loop(stage_one, stage_one_rps, seconds)}
    if not recs:
        raise RuntimeError("no stage-one recommendation with products to give feedback on")

    def feedback(i: int) -> int:
        rec = recs[i % len(recs)]
        item = {"product_id": rec["products"][0]["product_id"], "response": "interested"}
        r = session().post(f"{base_url}/api/v1/recommendations/{rec['recommendation_id']}/feedback",
                           json={"items": [item], "manager_id": manager_id},
                           headers={**headers, "Idempotency-Key": f"bench-{uuid.uuid4().hex}"}, timeout=10)
        return r.status_code

    result["feedback"] = open_loop(feedback, feedback_rps, seconds)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_108_828, help="synthetic size when no marts exist")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--synthetic", action="store_true", help="ignore $LINGXI_DATA_DIR/marts")
    parser.add_argument("--store-url", default=None, help="also time feedback writes against this store")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    data_dir = None if args.synthetic else Paths.from_env().data
    result: dict[str, Any] = {"segments": bench_segments(args.customers, args.queries, data_dir)}
    if args.store_url:
        result["feedback_store"] = bench_feedback_store(args.store_url)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
