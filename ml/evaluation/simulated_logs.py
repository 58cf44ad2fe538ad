"""Simulated feedback sessions on the development bank, in the feedback log's format.

    python -m ml.evaluation.simulated_logs [--cutoffs 2025-02-01 2025-03-01] [--seed S] [--limit N]

Until a bank has logged answers, the stage-two re-ranker trains on these: stage one as served,
answers from the generator's feedback simulator (it reads the oracle: development customers and
cut-offs only, never the evaluation bank) and an *exploration* stage two (K products drawn uniformly
from the remaining suitable ones) so every candidate is seen with every kind of answer.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml.core.config import DEFAULT_INTEREST_MODEL, INTEREST_MODELS, Paths
from ml.core.feedback_log import PART, SCHEMAS
from ml.core.logs import progress, step_log, working
from ml.datagen.feedback import FeedbackSimulator
from ml.features.layout import STAGE_ONE_FEATURES
from ml.features.snapshot import feature_store
from ml.recommendation.rerank_training import log_dir
from ml.recommendation.stage_one import StageOne
from ml.training.dataset import fetch_features
from ml.training.registry import load_model

log = step_log("rerank")


# ------------------------------------------------------------------------------------------------
# Simulated logs (development data only)
# ------------------------------------------------------------------------------------------------
def simulate_logs(paths: Paths, cutoffs: Sequence[date], k: int = 5, seed: int = 101,
                  out: Path | None = None, limit: int | None = None, interest_model: str | None = None) -> Path:
    """Write simulated sessions (stage one as served, simulated answers, exploration stage two)
    for the development bank's customers at ``cutoffs`` in the feedback-export format."""
    interest_model = interest_model or DEFAULT_INTEREST_MODEL
    started = time.perf_counter()
    model, _ = load_model(paths)
    s1 = StageOne(model)
    out = out or log_dir(paths, interest_model)
    store = feature_store(paths)
    rng = np.random.default_rng(seed)
    rec_rows, fb_rows = [], []
    for cutoff in cutoffs:
        sim = FeedbackSimulator(paths.oracle, cutoff, seed=seed, interest_model=interest_model)
        ids = np.array(sorted(sim.customers()))
        if limit:
            ids = ids[:limit]
        created = datetime(cutoff.year, cutoff.month, cutoff.day, 10, 0, 0)
        with working(f"{cutoff}: point-in-time features of {len(ids):,} customers"):
            features = fetch_features(store, pd.DataFrame({"customer_id": ids, "snapshot_ts": pd.Timestamp(created)}))
        features = features.set_index("customer_id").reindex(ids)
        ok = features["age"].notna().to_numpy()
        ids, x = ids[ok], features.loc[ok, list(STAGE_ONE_FEATURES)].to_numpy(np.float32)
        first = s1.score_batch(x, k)
        bar = progress(len(ids), f"{cutoff}: sessions", unit="customer")
        for i, cid in enumerate(ids):
            bar.update(1)
            top = [int(j) for j in first.top[i] if j >= 0]
            if not top:
                continue
            remaining = np.flatnonzero(first.allowed[i] & ~np.isin(np.arange(len(s1.products)), top))
            if len(remaining) == 0:
                continue
            second = rng.choice(remaining, size=min(k, len(remaining)), replace=False).tolist()
            parent = make_id("rec", seed, cid, cutoff, 1)
            for stage, shown, rid in ((1, top, parent), (2, second, make_id("rec", seed, cid, cutoff, 2))):
                products = [s1.products[j] for j in shown]
                answers = sim.respond(cid, products)
                at = created + timedelta(minutes=5 * stage)
                for rank, (j, pid, response) in enumerate(zip(shown, products, answers), start=1):
                    p = float(first.probabilities[i, j])
                    rec_rows.append((rid, cid, "SIMULATED", stage, parent if stage == 2 else None, pid, rank, p,
                                     int(s1.match(np.array([p]), np.array([j]))[0]), s1.model_version, at, None))
                    fb_rows.append((make_id("fb", seed, cid, cutoff, stage, pid), rid, cid, pid, "SIMULATED",
                                    response, at + timedelta(minutes=2), f"{rid}#{pid}"))
        bar.close()
        log(f"{cutoff}: {len(ids):,} customers simulated ({time.perf_counter() - started:.0f} s)")
    write_export(out, rec_rows, fb_rows, {"source": f"simulated-seed{seed}-{'+'.join(str(c) for c in cutoffs)}",
                                           "generator_seed": paths.generator_seed(), "k": k,
                                           "interest_model": interest_model,
                                           "stage_two_policy": "uniform over remaining suitable products"})
    return out


def make_id(*parts) -> str:
    return hashlib.md5("|".join(map(str, parts)).encode()).hexdigest().upper()


def write_export(out: Path, rec_rows: list, fb_rows: list, manifest: dict) -> None:
    for name, rows in (("recommendations", rec_rows), ("feedback", fb_rows)):
        schema = SCHEMAS[name]
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        width = len(schema)  # rows may stop before trailing columns added later (e.g. ``arm``): null
        columns = list(zip(*(tuple(r) + (None,) * (width - len(r)) for r in rows))) if rows else [[] for _ in schema]
        table = pa.Table.from_arrays([pa.array(col, type=f.type) for col, f in zip(columns, schema)], schema=schema)
        pq.write_table(table, folder / PART)
    counts = {"recommendations": len(rec_rows), "feedback": len(fb_rows)}
    (out / "_manifest.json").write_text(json.dumps({**manifest, "rows": counts}, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.evaluation.simulated_logs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cutoffs", nargs="+", default=["2025-02-01", "2025-03-01"],
                        help="cut-off dates whose customers get a session (development cut-offs only)")
    parser.add_argument("--k", type=int, default=5, help="list length of both stages")
    parser.add_argument("--seed", type=int, default=101, help="seed of the simulated answers and the exploration")
    parser.add_argument("--limit", type=int, default=None, help="customers per cut-off (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the interest model's)")
    parser.add_argument("--interest-model", choices=INTEREST_MODELS, default=DEFAULT_INTEREST_MODEL,
                        help="the feedback simulator's interest model (ml.datagen.feedback)")
    args = parser.parse_args(argv)
    print(simulate_logs(Paths.from_env(), [date.fromisoformat(c) for c in args.cutoffs], args.k, args.seed, args.out,
                        args.limit, args.interest_model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
