"""The engine's own speed, in-process (no HTTP): per-call latency and vectorised stage one at scale.

    python -m benchmarks.engine_latency latency [--requests 500]     # per-call p50 / p95
    python -m benchmarks.engine_latency scale-test [--customers N]   # stage one on N rows (timing only)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from ml.core.config import Paths
from ml.core.reports import json_default, write_bench
from ml.engine.loading import load_engine
from ml.features.snapshot import snapshot_features
from ml.recommendation.config import RecommendConfig
from ml.recommendation.stage_one import StageOne
from ml.training.registry import load_model


def scale_test(paths: Paths, customers: int, k: int = 5, config: RecommendConfig | None = None) -> dict:
    """Time vectorised stage one on ``customers`` rows (the snapshot tiled): nothing is written."""
    model, _ = load_model(paths)
    s1 = StageOne(model, config or RecommendConfig())
    _, x = snapshot_features(paths)
    x = np.resize(x, (customers, x.shape[1]))
    started = time.perf_counter()
    cpu = time.process_time()
    lists = s1.score_batch(x, k)
    return {"customers": customers, "k": k, "stage_one_s": round(time.perf_counter() - started, 1),
            "cpu_s": round(time.process_time() - cpu, 1), "pairs_scored": int(lists.allowed.sum()),
            "note": "the current snapshot tiled to this many rows; timing only"}


def latency(paths: Paths, requests: int = 500, k: int = 5, seed: int = 0) -> dict:
    """Per-call latency of the engine in-process (real Feast online reads), over random customers."""
    engine = load_engine(paths.data)
    ids, _ = snapshot_features(paths)
    rng = np.random.default_rng(seed)
    sample = rng.choice(ids, size=requests, replace=len(ids) < requests)
    for cid in sample[:20]:                                   # warm caches (explainer table, SQLite pages)
        engine.stage_one(cid, k)
    out = {}
    for name in ("stage_one", "stage_two"):
        wall, cpu = [], []
        for cid in sample:
            shown, feedback = [], {}
            if name == "stage_two":
                shown = [p.product_id for p in engine.stage_one(cid, k).products]
                feedback = {p: rng.choice(["interested", "not_interested"]) for p in shown}
            t, c = time.perf_counter(), time.process_time()
            if name == "stage_one":
                engine.stage_one(cid, k)
            else:
                engine.stage_two(cid, shown, feedback, k)
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        wall_ms, cpu_ms = np.array(wall) * 1000, np.array(cpu) * 1000
        out[name] = {"requests": requests, "p50_ms": round(float(np.percentile(wall_ms, 50)), 2),
                     "p95_ms": round(float(np.percentile(wall_ms, 95)), 2),
                     "p99_ms": round(float(np.percentile(wall_ms, 99)), 2),
                     "cpu_mean_ms": round(float(cpu_ms.mean()), 2)}
    out.update({"k": k, "customers": int(len(ids)), "explainer": engine.config.explainer,
                "load_average": [round(v, 2) for v in os.getloadavg()],
                "note": "in-process, one thread, Feast SQLite online store; wall time includes waiting for the "
                        "CPU on a shared machine (see load_average)"})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.engine_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    scale = sub.add_parser("scale-test", help="time stage one on N rows (the snapshot tiled); writes nothing")
    scale.add_argument("--customers", type=int, default=1_108_828, help="rows to score (default: full scale)")
    scale.add_argument("--k", type=int, default=5, help="list length")
    lat = sub.add_parser("latency", help="per-call stage one / stage two latency in-process (p50/p95)")
    lat.add_argument("--requests", type=int, default=500, help="calls per stage")
    lat.add_argument("--k", type=int, default=5, help="list length")
    args = parser.parse_args(argv)
    paths = Paths.from_env()
    if args.command == "latency":
        result = latency(paths, args.requests, args.k)
        write_bench(paths.reports, {"engine_latency": result})
    else:
        result = scale_test(paths, args.customers, args.k, RecommendConfig.from_env())
    print(json.dumps(result, indent=2, default=json_default))
    return 0


if __name__ == "__main__":
    sys.exit(main())
