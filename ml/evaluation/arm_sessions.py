"""Simulated champion / challenger / control sessions, in the feedback log's format with ``arm``.

    python -m ml.evaluation.arm_sessions --challenger shuffled|oracle|registered [--out DIR]
    python -m ml.operations.impact --export DIR

Each customer of the development bank at a cut-off is put in an arm exactly as serving does
(``ml.engine.arms.assign``: a hash of the customer id) and shown that arm's stage-one list:

- ``champion``: the current model's stage one;
- ``challenger``: ``registered`` - the registry's challenger model (a real candidate);
  ``shuffled`` - a deliberately worse one, a random order of the suitable products;
  ``oracle`` - a deliberately better one, the products ranked by the simulator's true interest
  (this reads the generator's oracle: evaluation only, never a model);
- ``control``: the rule-based match score (``ml.recommendation.control``).

Answers come from the generator's feedback simulator (``ml.datagen.feedback``). The impact report
then has to promote the better challenger and refuse the worse one.
"""
from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from ml.core.config import HOLDOUT_CUTOFF, Paths
from ml.datagen.feedback import FeedbackSimulator
from ml.engine.arms import CHALLENGER, CHAMPION, CONTROL, ArmShares, assign
from ml.evaluation.simulated_logs import make_id, write_export
from ml.features.snapshot import snapshot_features
from ml.recommendation.control import CONTROL_VERSION, rule_matrix, rule_top
from ml.recommendation.stage_one import StageOne
from ml.training.registry import load_challenger, load_model

POLICIES = ("registered", "shuffled", "oracle")


def challenger_top(policy: str, paths: Paths, s1: StageOne, x: np.ndarray, ids: np.ndarray, allowed: np.ndarray,
                   sim: FeedbackSimulator, k: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """(n, k) challenger lists (positions in ``s1.products``) and the challenger's version label."""
    if policy == "registered":
        loaded = load_challenger(paths)
        if loaded is None:
            raise ValueError("no challenger is registered (python -m ml.training.registry challenger VERSION)")
        other = StageOne(loaded[0])
        if tuple(other.products) != tuple(s1.products):
            raise ValueError("the challenger ranks another product list than the champion")
        return other.score_batch(x, k).top, other.model_version
    if policy == "shuffled":
        return rule_top(rng.random(allowed.shape), allowed, k), "sim-shuffled"
    if policy == "oracle":
        rows = np.array([sim._row[c] for c in ids])
        truth = np.full(allowed.shape, -1.0)
        for j, pid in enumerate(s1.products):
            if pid in sim._product_index:
                truth[:, j] = np.nan_to_num(sim.interest[rows, sim._product_index[pid]], nan=-1.0)
        return rule_top(truth, allowed, k), "sim-oracle"
    raise ValueError(f"challenger policy must be one of {POLICIES}")


def simulate_arm_sessions(paths: Paths, policy: str = "shuffled", shares: ArmShares | None = None,
                          cutoff: date = HOLDOUT_CUTOFF, k: int = 5, seed: int = 11, out: Path | None = None,
                          limit: int | None = None) -> Path:
    shares = shares or ArmShares(challenger=0.3, control=0.2)
    model, _ = load_model(paths)
    s1 = StageOne(model)
    sim = FeedbackSimulator(paths.oracle, cutoff, seed=seed)
    ids, x = snapshot_features(paths, snapshot=cutoff.isoformat())
    known = np.isin(ids, np.asarray(sim.customers(), dtype=object))
    ids, x = ids[known][:limit], x[known][:limit]
    first = s1.score_batch(x, k)
    rng = np.random.default_rng(seed)
    tops = {CHAMPION: (first.top, s1.model_version)}
    tops[CHALLENGER] = challenger_top(policy, paths, s1, x, ids, first.allowed, sim, k, rng)
    tops[CONTROL] = (rule_top(rule_matrix(x, s1.products, s1.catalogue), first.allowed, k), CONTROL_VERSION)
    created = datetime(cutoff.year, cutoff.month, cutoff.day, 10, 0, 0)
    rec_rows, fb_rows = [], []
    for i, cid in enumerate(ids):
        arm = assign(cid, shares)
        top, version = tops[arm]
        shown = [int(j) for j in top[i] if j >= 0]
        if not shown:
            continue
        products = [s1.products[j] for j in shown]
        rid = make_id("arm", seed, policy, cid, cutoff)
        for rank, (j, pid, answer) in enumerate(zip(shown, products, sim.respond(cid, products)), start=1):
            p = float(first.probabilities[i, j])
            rec_rows.append((rid, cid, "SIMULATED", 1, None, pid, rank, p, 0, version, created, arm))
            fb_rows.append((make_id("fb", rid, pid), rid, cid, pid, "SIMULATED", answer,
                            created + timedelta(minutes=3), f"{rid}#{pid}"))
    out = out or paths.data / "simulated_arms" / policy
    write_export(out, rec_rows, fb_rows, {"source": f"simulated arms, challenger {policy}", "cutoff": cutoff.isoformat(),
                                          "shares": {"challenger": shares.challenger, "control": shares.control},
                                          "seed": seed, "k": k})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.evaluation.arm_sessions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--challenger", choices=POLICIES, default="registered",
                        help="registered: the registry's challenger; shuffled: a worse one; oracle: a better one")
    parser.add_argument("--challenger-share", type=float, default=0.3, help="share of customers in the challenger arm")
    parser.add_argument("--control-share", type=float, default=0.2, help="share of customers in the control arm")
    parser.add_argument("--cutoff", default=HOLDOUT_CUTOFF.isoformat(), help="the cut-off (YYYY-MM-DD) whose customers get a session")
    parser.add_argument("--seed", type=int, default=11, help="seed of the simulated answers")
    parser.add_argument("--limit", type=int, default=None, help="first N customers (by id)")
    parser.add_argument("--out", type=Path, default=None, help="output folder of the sessions (a feedback export)")
    args = parser.parse_args(argv)
    shares = ArmShares(challenger=args.challenger_share, control=args.control_share)
    print(simulate_arm_sessions(Paths.from_env(), args.challenger, shares, date.fromisoformat(args.cutoff),
                                seed=args.seed, out=args.out, limit=args.limit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
