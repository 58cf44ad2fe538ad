"""Generate the whole synthetic bank, chunk by chunk, on every core."""
from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ml.core.config import HOLDOUT_CUTOFF
from ml.datagen import books, posterior, world
from ml.datagen.simulate import (
    Parameters,
    calibrate,
    default_oracle_cutoffs,
    simulate_chunk,
)
from ml.datagen.writer import write_assignments, write_chunk, write_roster

GENERATOR_VERSION = "4"  # 3: books of business; 4: the posterior oracle (raw tables unchanged)
CHUNK_SIZE = 50_000  # fixed, so the output for a seed does not depend on the number of workers
RAW_TABLES = ("customers", "events", "customer_assignments", "account_managers")


def _run_chunk(args) -> dict:
    params, roster, chunk_index, start, count, raw_dir, oracle_dir = args
    catalogue = world.Catalogue.load()
    result = simulate_chunk(params, catalogue, chunk_index, start, count)
    rng = np.random.default_rng([params.seed, chunk_index, 1])
    counts = write_chunk(result, catalogue, chunk_index, raw_dir, oracle_dir, rng)
    # the books come last, from their own random stream: the tables above are unchanged by them
    population = result.population
    assignments = books.assign_chunk(roster, params.seed, chunk_index, population.customer_id,
                                     population.region_code, population.customer_since)
    counts["customer_assignments"] = write_assignments(assignments, chunk_index, raw_dir)
    counts["variance_share"] = result.variance_share
    if result.posterior is not None:
        counts["posterior"] = {"ess": result.posterior.ess, "seconds": result.posterior.seconds}
    return counts


def manifest_matches(raw_dir: Path, customers: int, seed: int) -> bool:
    """True when ``raw_dir`` holds every raw table of this size, seed and generator version."""
    path = raw_dir / "_manifest.json"
    if not path.exists():
        return False
    manifest = json.loads(path.read_text())
    complete = all(any((raw_dir / table).glob("*.parquet")) for table in RAW_TABLES)
    return complete and (manifest.get("customers"), manifest.get("seed"), manifest.get("generator_version")) == (
        customers, seed, GENERATOR_VERSION)


def generate(customers: int, seed: int, raw_dir: Path, oracle_dir: Path, workers: int = 2,
             oracle_cutoffs: tuple | None = None, progress: bool = True, posterior_oracle: bool = True) -> dict:
    """Write ``raw_dir/<table>`` for every raw table and ``oracle_dir``; return the manifest.

    ``posterior_oracle=False`` skips the posterior oracle (``ml.datagen.posterior``): the raw tables
    are the same byte for byte either way.
    """
    started = time.perf_counter()
    raw_dir, oracle_dir = Path(raw_dir), Path(oracle_dir)
    if raw_dir.resolve() == oracle_dir.resolve() or oracle_dir.resolve().is_relative_to(raw_dir.resolve()):
        raise ValueError("the oracle must live outside the raw data folder")
    for folder in (*(raw_dir / table for table in RAW_TABLES), oracle_dir):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    (raw_dir / "_manifest.json").unlink(missing_ok=True)

    catalogue = world.Catalogue.load()
    params: Parameters = calibrate(seed, catalogue)
    params = replace(params, oracle_cutoffs=tuple(oracle_cutoffs or default_oracle_cutoffs()),
                     posterior_cutoff=HOLDOUT_CUTOFF if posterior_oracle else None,
                     posterior_every=posterior.sample_every(customers))
    roster = books.draw_roster(seed)
    jobs = [(params, roster, i, start, min(CHUNK_SIZE, customers - start), raw_dir, oracle_dir)
            for i, start in enumerate(range(0, customers, CHUNK_SIZE))]
    totals = {"customers": 0, "events": 0, "customer_assignments": 0,
              "account_managers": write_roster(roster.table(), raw_dir)}
    shares, posteriors = [], []
    bar = tqdm(total=customers, unit="customer", disable=not progress, desc="synthetic bank")
    ctx = mp.get_context("fork")
    with ctx.Pool(processes=max(1, min(workers, len(jobs)))) as pool:
        for job, counts in zip(jobs, pool.imap(_run_chunk, jobs)):
            for table in ("customers", "events", "customer_assignments"):
                totals[table] += counts[table]
            shares.append(counts["variance_share"])
            posteriors.append(counts.get("posterior"))
            bar.update(job[4])
    bar.close()

    manifest = {
        "generator_version": GENERATOR_VERSION,
        "customers": customers,
        "seed": seed,
        "rows": totals,
        "chunk_size": CHUNK_SIZE,
        "oracle_cutoffs": [c.isoformat() for c in params.oracle_cutoffs],
        "seconds": round(time.perf_counter() - started, 1),
    }
    world_summary = {
        **manifest,
        "latent_variance_share": _pooled_share(shares),
        "posterior_oracle": _posterior_summary(params, posteriors),
        "base_hold": dict(zip(catalogue.ids, np.round(params.base_hold, 4).tolist())),
        "base_adopt": dict(zip(catalogue.ids, np.round(params.base_adopt, 4).tolist())),
    }
    (oracle_dir / "world.json").write_text(json.dumps(world_summary, indent=2))
    (raw_dir / "_manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def _posterior_summary(params: Parameters, chunks: list[dict | None]) -> dict | None:
    """The posterior oracle's sample, its cost (CPU seconds summed over chunks) and its draws' quality."""
    if not chunks or chunks[0] is None:
        return None
    ess = np.concatenate([c["ess"] for c in chunks])
    return {"cutoff": params.posterior_cutoff.isoformat(), "customers": int(len(ess)),
            "every": params.posterior_every, "draws": posterior.DRAWS, "nodes": posterior.NODES,
            "seconds": round(sum(c["seconds"] for c in chunks), 1),
            "median_ess": round(float(np.median(ess)), 1), "p10_ess": round(float(np.percentile(ess, 10)), 1)}


def _pooled_share(shares: list[dict]) -> dict:
    """Share of the true log-odds variance due to latent factors, pooled over chunks."""
    out = {}
    for cutoff in shares[0] if shares else {}:
        n = sum(s[cutoff]["n"] for s in shares)
        latent = sum(s[cutoff]["latent_variance"] * s[cutoff]["n"] for s in shares) / n
        total = sum(s[cutoff]["true_logit_variance"] * s[cutoff]["n"] for s in shares) / n
        out[cutoff] = round(latent / total, 4)
    return out
