"""Benchmarks (``make bench``): every performance figure in the README comes from here.

    python -m benchmarks.bench --scale full --seed 7 [--skip-pipeline] [--only STEP ...]

1. The pipeline, step by step, each as the commands its Makefile target runs: wall time, CPU and
   peak memory. ``nightly_seconds`` sums the ``make nightly`` steps (``NIGHTLY``); generation
   (the bank's extract replaces it), the strategy review and the evaluation are timed too.
2. Feast online reads of one customer's ``stage_one_v1`` features: p50 / p95 / p99 in-process.
3. The serving load test (``benchmarks.loadtest``): gunicorn with the real app and engine over a
   scratch copy of the bank, open-loop load on loopback (stage one at 500/s, the highest rate with
   p95 < 100 ms, feedback writes at 200/s, segment queries) and durability under ``kill -9``.
4. The console's pages (``benchmarks.console_latency``): p50 / p95 per page through gunicorn, one
   signed-in manager and one admin clicking (closed loop).
Writes reports/bench.json (merging with what is there, so steps can be rerun one by one) and, with
``--figures docs/figures.json``, the ``pipeline``, ``online_reads`` and ``serving`` sections of the
figures file (the evaluate step records its ``lists`` section there too): the load test is repeated
``--serving-repeats`` times and each percentile reported as the median run with the range of runs;
online-read percentiles carry a bootstrap interval over the reads.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from benchmarks.loadtest import run_benchmark
from ml.core.config import PROJECT_ROOT, Paths, customers_for_scale
from ml.core.logs import step_log
from ml.core.reports import read_report, write_bench
from ml.evaluation import figures
from ml.features.online import OnlineFeatures
from ml.features.store import get_store

# `make nightly`: what runs at 02:00 on the bank's extract (target: under 10 minutes at full scale)
NIGHTLY = ("warehouse", "relations", "features", "train", "score", "publish")


# `make pipeline`: generation stands in for the extract; the strategy review and evaluation are not nightly
PIPELINE = ("datagen", *NIGHTLY, "strategies", "evaluate")


log = step_log("bench")


def step_commands(customers: int, seed: int, paths: Paths, figures_path: Path | None = None) -> dict[str, list[list[str]]]:
    """Each step's commands, as the Makefile target of the same name runs them."""
    py = sys.executable
    return {
        "datagen": [[py, "-m", "ml.datagen", "--customers", str(customers), "--seed", str(seed),
                     "--out", str(paths.raw), "--oracle-out", str(paths.oracle), "--quiet"]],
        "warehouse": [[py, "-m", "serving.export"], [py, "-m", "ml.core.dbt_progress", "build"]],
        "relations": [[py, "-m", "ml.relations", "--holdings", str(paths.marts / "holdings_current.parquet"),
                       "--time-col", "held_since", "--out", str(paths.marts / "product_relations.parquet")]],
        "features": [[py, "-m", "ml.features"]],
        "train": [[py, "-m", "ml.training.train"]],
        "score": [[py, "-m", "ml.recommendation.batch"]],
        "publish": [[py, "-m", "ml.engine.publish"]],
        "strategies": [[py, "-m", "ml.imbalance.strategy_review"]],
        "evaluate": [[py, "-m", "ml.evaluation.evaluate", *(["--figures", str(figures_path)] if figures_path else [])]],
    }


def run_step(name: str, commands: list[list[str]], env: dict) -> dict:
    """Run a step's commands in order: wall time, CPU and the largest process's peak memory; a
    command that prints a JSON object (``ml.features``: materialisation time, store size) adds it
    as ``detail``."""
    started, cpu, peak, detail = time.perf_counter(), 0.0, 0.0, {}
    for command in commands:
        with tempfile.TemporaryFile() as out:
            process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=out)
            _, status, usage = os.wait4(process.pid, 0)  # this command's own usage (its processes included)
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"step {name} failed ({' '.join(command)})")
            out.seek(0)
            detail.update(_json_object(out.read()))
        cpu += usage.ru_utime + usage.ru_stime
        peak = max(peak, usage.ru_maxrss / 1024)  # Linux: KiB
    result = {"seconds": round(time.perf_counter() - started, 1), "cpu_seconds": round(cpu, 1),
              "peak_rss_mb": round(peak, 0)}
    if detail:
        result["detail"] = detail
    log(f"{name}: {result['seconds']} s")
    return result


def _forget_materialisation(paths: Paths) -> None:
    """Drop the Feast registry and online store, so the features step materialises the whole
    current snapshot (1.1M customers at full scale), as on a night a new snapshot arrives; a rerun
    over unchanged data would otherwise find nothing new to materialise and time a no-op."""
    for name in ("registry.db", "online_store.db"):
        (paths.feast / name).unlink(missing_ok=True)


def _json_object(output: bytes) -> dict:
    """The JSON object a command printed last (other output, e.g. Feast's progress, may precede it)."""
    text = output.decode(errors="replace")
    last = text.rfind("\n{")
    for candidate in (text, text[last + 1:] if last >= 0 else ""):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}


def bench_pipeline(customers: int, seed: int, paths: Paths, only: list[str] | None,
                   figures_path: Path | None = None) -> dict:
    """Time the steps; steps not rerun keep their earlier figures (same scale and seed only)."""
    env = {**os.environ, "LINGXI_DATA_DIR": str(paths.data), "LINGXI_REPORTS_DIR": str(paths.reports),
           "DBT_PROFILES_DIR": str(PROJECT_ROOT)}
    previous = read_report(paths.reports / "bench.json")
    same_run = (previous.get("n_customers"), previous.get("generator_seed")) == (customers, seed)
    steps = dict(previous.get("pipeline", {}).get("steps", {})) if same_run else {}
    for name, command in step_commands(customers, seed, paths, figures_path).items():
        if only and name not in only:
            continue
        if name == "features":
            _forget_materialisation(paths)
        steps[name] = run_step(name, command, env)
    out = {"steps": steps}
    if all(name in steps for name in NIGHTLY):
        out["nightly_seconds"] = round(sum(steps[n]["seconds"] for n in NIGHTLY), 1)
    if (paths.feast / "online_store.db").exists():
        out["online_store_mb"] = round((paths.feast / "online_store.db").stat().st_size / 1e6, 1)
    return out


def bench_online_reads(paths: Paths, n: int = 2000, seed: int = 0) -> dict:
    import pyarrow.parquet as pq


    online = OnlineFeatures(get_store(paths))
    ids = pq.read_table(paths.marts / "customer_features_monthly.parquet", columns=["customer_id"]).column(0)
    rng = np.random.default_rng(seed)
    sample = [ids[int(i)].as_py() for i in rng.integers(0, len(ids), n)]
    contact = datetime(2025, 7, 2, tzinfo=timezone.utc)
    for customer in sample[:50]:  # warm-up
        online.get(customer, contact)
    latencies = []
    for customer in sample:
        started = time.perf_counter()
        online.get(customer, contact)
        latencies.append((time.perf_counter() - started) * 1000)
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    resampled = np.percentile(np.asarray(latencies)[rng.integers(0, n, (1000, n))], [50, 95, 99], axis=1)
    ci = {k: [round(float(v), 3) for v in np.percentile(row, [2.5, 97.5])]
          for k, row in zip(("p50_ms", "p95_ms", "p99_ms"), resampled)}
    return {"reads": n, "p50_ms": round(p50, 3), "p95_ms": round(p95, 3), "p99_ms": round(p99, 3), "ci": ci}


def bench_serving(paths: Paths, workers: int = 2, threads: int = 1) -> dict:
    """The serving load test over ``paths.data`` (which it never writes): see ``benchmarks.loadtest``."""

    return run_benchmark(paths.data, workers=workers, threads=threads)


LOADS = {"stage_one": "stage one", "feedback": "feedback writes", "segment_filter": "segment filter over all customers"}


def serving_figures(runs: list[dict]) -> dict:
    """The load tests' percentiles over repeated runs: the median run and the range of runs."""
    def spread(values):
        values = [v for v in values if v is not None]
        return {"median": float(np.median(values)), "range": [float(min(values)), float(max(values))],
                "runs": values} if values else {"median": None, "range": None, "runs": []}

    loads = {}
    for key, label in LOADS.items():
        rows = [run[key] for run in runs if key in run]
        if rows:
            loads[key] = {"label": f"{label}, {rows[0]['target_rps']:.0f}/s for {rows[0]['duration_s']:.0f} s",
                          "rps": spread([r["rps"] for r in rows]),
                          **{k: spread([r[k] for r in rows]) for k in ("p50_ms", "p95_ms", "p99_ms")},
                          "errors": {"total": int(sum(r["errors"] for r in rows)), "runs": [r["errors"] for r in rows]}}
    durable = [run["durability"] for run in runs if "durability" in run]
    best = spread([run.get("max_rps_p95_under_100ms") for run in runs])
    return {"repeats": len(runs), "loads": loads, "max_rps_p95_under_100ms": best,
            "durability": {k: int(sum(d[k] for d in durable)) for k in ("acknowledged", "present_after_restart",
                                                                        "duplicates")} if durable else None,
            "workers": runs[0].get("workers"), "serving": runs[0].get("serving")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="full", help="test (20k customers), demo (100k), full (1,108,828) or a number")
    parser.add_argument("--seed", type=int, default=7, help="generator seed of the bank")
    parser.add_argument("--only", nargs="*", choices=[*PIPELINE, "online", "serving", "console"],
                        help="run only these parts (pipeline steps, online reads, the serving load test, the console); "
                             "the others keep their figures in bench.json")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers for the serving load test")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker (>1: gthread)")
    parser.add_argument("--serving-repeats", type=int, default=1, help="run the load test this many times")
    parser.add_argument("--figures", type=Path, default=None,
                        help="also record the figures in this file (docs/figures.json)")
    args = parser.parse_args(argv)
    paths = Paths.from_env()
    customers = customers_for_scale(args.scale)
    only = args.only or None
    meta = {"n_customers": customers, "generator_seed": args.seed, "machine_cores": os.cpu_count(),
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    command = "python -m benchmarks.bench " + " ".join(sys.argv[1:] if argv is None else argv)
    source = figures.provenance(command, args.seed, customers, machine_cores=os.cpu_count())
    pipeline_steps = [s for s in (only or PIPELINE) if s in PIPELINE]
    if pipeline_steps:
        pipeline = bench_pipeline(customers, args.seed, paths, pipeline_steps, args.figures)
        write_bench(paths.reports, {"pipeline": pipeline, **meta})
        if args.figures:
            figures.record(args.figures, "pipeline", {"source": source, **pipeline})
    if not only or "online" in only:
        reads = bench_online_reads(paths)
        write_bench(paths.reports, {"feature_store_online_read": reads, **meta})
        if args.figures:
            figures.record(args.figures, "online_reads", {
                "source": source, "reads": reads["reads"],
                **{k: {"value": reads[k], "ci": reads["ci"][k]} for k in ("p50_ms", "p95_ms", "p99_ms")}})
    if not only or "serving" in only:
        runs = [bench_serving(paths, args.workers, args.threads) for _ in range(max(1, args.serving_repeats))]
        write_bench(paths.reports, {**meta, **runs[-1], "serving_repeats": serving_figures(runs)})  # n_customers: the snapshot served
        if args.figures:
            figures.record(args.figures, "serving", {"source": source, **serving_figures(runs)})
    if not only or "console" in only:
        from benchmarks.console_latency import run as console_latency

        write_bench(paths.reports, {"console_latency": console_latency(paths.data, workers=args.workers), **meta})
    print((paths.reports / "bench.json").read_text())
    return 0

if __name__ == "__main__":
    sys.exit(main())
