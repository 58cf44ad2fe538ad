"""Two-stage replay on an unseen bank: stage one as served, simulated answers, every stage-two policy.

    python -m ml.evaluation.replay --eval-data-dir DIR [--sessions N] [--also-k 3]

The feedback simulator answers with the evaluation bank's own latent tastes (oracle, evaluation
only); every policy sees the same sessions, so ratios are paired and bootstrapped by customer.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ml.core.config import HOLDOUT_CUTOFF, Paths
from ml.core.logs import step_log
from ml.core.reports import write_metrics
from ml.datagen.feedback import (
    DEFAULT_INTEREST_MODEL,
    INTEREST_MODELS,
    FeedbackSimulator,
)
from ml.evaluation.replay_report import (
    bootstrap,
    by_products_left,
    summary,
    write_report,
)
from ml.evaluation.simulated_logs import simulate_logs
from ml.features.snapshot import snapshot_features
from ml.recommendation.batch import audit_lists
from ml.recommendation.config import RecommendConfig
from ml.recommendation.rerank_training import log_dir, reranker_file, train
from ml.recommendation.rerankers import (
    ANSWER_CODES,
    INTERESTED,
    CategoryRule,
    LearnedReranker,
    OneStep,
    PriorOnly,
)
from ml.recommendation.stage_one import StageOne
from ml.recommendation.stage_two import stage_two_batch
from ml.training.registry import load_model

log = step_log("replay")
_SNAPSHOTS: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # one read per process for K / model variants


def eval_features(eval_paths: Paths, customer_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``stage_one_v1`` features at the held-out cut-off from the evaluation bank's feature store.

    Read column-wise from the snapshot rows of the Feast view's batch source (as the nightly batch
    does): for an entity timestamp equal to a snapshot, exactly the point-in-time join's rows (tested
    against ``get_historical_features``), without a join over a million entity rows. Customers with
    no snapshot row are dropped; the order of ``customer_ids`` is kept.
    """

    key = str(eval_paths.data)
    if key not in _SNAPSHOTS:
        _SNAPSHOTS.clear()
        _SNAPSHOTS[key] = snapshot_features(eval_paths, pd.Timestamp(HOLDOUT_CUTOFF))
    ids, x = _SNAPSHOTS[key]
    rows = pd.Index(ids).get_indexer(customer_ids)
    ok = rows >= 0
    return np.asarray(customer_ids)[ok], x[rows[ok]]


def replay(paths: Paths, eval_dir: Path, k: int = 5, sessions: int | None = None, seed: int = 0,
           n_boot: int = 2000, allow_same_seed: bool = False, interest_model: str | None = None,
           reranker: Path | None = None) -> dict:
    started = time.perf_counter()
    interest_model = interest_model or DEFAULT_INTEREST_MODEL
    eval_paths = Paths(data=Path(eval_dir).resolve(), reports=paths.reports)
    dev_seed, eval_seed = paths.generator_seed(), eval_paths.generator_seed()
    if dev_seed is not None and dev_seed == eval_seed and not allow_same_seed:
        raise SystemExit(f"the evaluation bank has the development generator seed ({dev_seed}): "
                         "generate another seed (or pass --allow-same-seed)")
    model, folder = load_model(paths)
    s1 = StageOne(model, RecommendConfig())
    reranker = reranker or reranker_file(folder, interest_model)
    if not reranker.exists():
        log(f"no learned re-ranker at {reranker}: simulating logged sessions on the development "
            "data and training one (python -m ml.evaluation.simulated_logs / train)")
        if not (log_dir(paths, interest_model) / "feedback").exists():
            simulate_logs(paths, [date(2025, 2, 1), date(2025, 3, 1)], k=k, interest_model=interest_model)
        train(paths, out=reranker, interest_model=interest_model)
    learned = LearnedReranker.load(reranker)
    trained_with = learned.metadata.get("interest_model") or "additive"
    if trained_with != interest_model:
        log(f"note: the re-ranker was trained on answers of the {trained_with!r} interest model, the replay "
            f"simulates the {interest_model!r} model")
    # (name, strategy, objective): the headline three, a decomposition row, and the value objective
    specs = [("one_step", OneStep(), "value"), ("prior_only", PriorOnly(learned), "interest"),
             ("rule", CategoryRule(prior=learned), "interest"), ("learned", learned, "interest"),
             ("rule_value", CategoryRule(), "value"), ("learned_value", learned, "value")]

    sim = FeedbackSimulator(eval_paths.oracle, HOLDOUT_CUTOFF, seed=seed, interest_model=interest_model)
    everyone = np.array(sorted(sim.customers()))
    if sessions is not None and 3 * sessions < len(everyone):  # about half the customers have a session
        everyone = np.sort(np.random.default_rng(seed).choice(everyone, 3 * sessions, replace=False))
    ids, x = eval_features(eval_paths, everyone)
    log(f"{len(ids):,} evaluation customers with features ({time.perf_counter() - started:.0f} s)")
    first = s1.score_batch(x, k)
    n_first = (first.top >= 0).sum(axis=1)
    n_left = first.allowed.sum(axis=1) - n_first
    keep = np.flatnonzero((n_first > 0) & (n_left > 0))
    if sessions is not None and sessions < len(keep):
        keep = np.sort(np.random.default_rng(seed).choice(keep, sessions, replace=False))
    ids, x = ids[keep], x[keep]
    first = type(first)(first.top[keep], first.probabilities[keep], first.allowed[keep], first.x[keep],
                        first.raw[keep])
    n_left = n_left[keep]
    n, P = len(ids), len(s1.products)

    # the simulator's truth for these customers (expected hits and the ceiling)
    rows_sim = [sim._row[c] for c in ids]
    interest = np.zeros((n, P))
    for j, pid in enumerate(s1.products):
        col = sim.interest[rows_sim, sim._product_index[pid]]
        owns = sim.held_elsewhere[rows_sim, sim._product_index[pid]].astype(bool)
        interest[:, j] = np.where(owns | np.isnan(col), 0.0, col)

    shown = np.zeros((n, P), dtype=bool)
    answers = np.zeros((n, P), dtype=np.int8)
    for i, cid in enumerate(ids):
        top = [int(j) for j in first.top[i] if j >= 0]
        for j, response in zip(top, sim.respond(cid, [s1.products[j] for j in top])):
            shown[i, j] = True
            answers[i, j] = ANSWER_CODES[response]
    hits_first = (answers == INTERESTED).sum(axis=1).astype(float)
    log(f"{n:,} sessions; first lists answered ({time.perf_counter() - started:.0f} s)")

    hits, expected, lists = {}, {}, {}
    rows = np.repeat(np.arange(n)[:, None], k, axis=1)
    for name, strategy, objective in specs:
        second = stage_two_batch(s1, strategy, x, shown, answers, k, p_first=first.probabilities,
                                 raw_first=first.raw, objective=objective)
        lists[name] = second
        h = np.zeros(n)
        for i, cid in enumerate(ids):
            top = [int(j) for j in second.top[i] if j >= 0]
            h[i] = sum(r == "interested" for r in sim.respond(cid, [s1.products[j] for j in top]))
        hits[name] = h
        expected[name] = np.where(second.top >= 0, interest[rows, np.maximum(second.top, 0)], 0.0).sum(axis=1)
        reshown = int(np.sum(np.take_along_axis(shown, np.maximum(second.top, 0), axis=1) & (second.top >= 0)))
        if reshown:
            raise AssertionError(f"{name}: {reshown} products shown again in the second list")
    # ceiling: the K remaining suitable products with the highest true interest
    ceiling = -np.sort(-np.where(lists["one_step"].allowed, interest, 0.0), axis=1)[:, :k].sum(axis=1)

    owns_now = np.zeros((n, len(s1.catalogue)), dtype=bool)
    owns_now[:, s1.positions] = answers == ANSWER_CODES["already_owns"]
    audit = audit_lists(eval_paths, ids, x, [(first.top, None)] + [(lists[name].top, owns_now) for name, _, _ in specs],
                        s1)

    names = [name for name, _, _ in specs]
    values = {**{s: hits[s] for s in names}, **{f"expected_{s}": expected[s] for s in names},
              "expected_ceiling": ceiling}
    ratios = {f"{s}_uplift": (s, "one_step") for s in names[1:]}
    ratios.update({f"expected_{s}_uplift": (f"expected_{s}", "expected_one_step") for s in names[1:]})
    ratios.update({"learned_vs_rule": ("learned", "rule"), "answers_uplift": ("learned", "prior_only"),
                   "expected_ceiling_uplift": ("expected_ceiling", "expected_one_step")})
    ci = bootstrap(values, ratios, n_boot, seed)
    choice = n_left > k
    sub_ci = bootstrap({s: values[s][choice] for s in ("one_step", "learned", "expected_one_step",
                                                       "expected_learned", "expected_ceiling")},
                       {"uplift": ("learned", "one_step"), "expected_uplift": ("expected_learned", "expected_one_step"),
                        "ceiling_uplift": ("expected_ceiling", "expected_one_step")},
                       n_boot, seed) if choice.sum() > 1 else {}
    mean = lambda v: round(float(np.mean(v)), 5) if len(v) else None  # noqa: E731
    ratio = lambda a, b: round(float(np.mean(a) / np.mean(b)), 4) if len(a) and np.mean(b) > 0 else None  # noqa: E731
    uplift = ratio(hits["learned"], hits["one_step"])
    result = {
        "k": k, "n_sessions": int(n), "seed": seed, "bootstrap": n_boot,
        "one_step_hit_rate": mean(hits["one_step"]), "rule_hit_rate": mean(hits["rule"]),
        "learned_hit_rate": mean(hits["learned"]),
        "one_step_hit_rate_ci95": ci["one_step"], "rule_hit_rate_ci95": ci["rule"],
        "learned_hit_rate_ci95": ci["learned"],
        "uplift": uplift, "uplift_ci95": ci["learned_uplift"],
        "rule_uplift": ratio(hits["rule"], hits["one_step"]), "rule_uplift_ci95": ci["rule_uplift"],
        "learned_vs_rule": ratio(hits["learned"], hits["rule"]), "learned_vs_rule_ci95": ci["learned_vs_rule"],
        "target_uplift": 1.5, "meets_target": bool(uplift is not None and uplift >= 1.5),
        "first_list_hit_rate": mean(hits_first),
        "objective": "(a) ranks like stage one (probability x value); (b) and (c) rank by P(interested | answers) "
                     "(b: the learned interest prior x the category rule)",
        "decomposition": {
            "note": "prior_only: the learned interest prior with every answer ignored; the uplift of (c) = "
                    "objective (prior_only / one_step) x answers (learned / prior_only)",
            "prior_only_hit_rate": mean(hits["prior_only"]), "prior_only_hit_rate_ci95": ci["prior_only"],
            "prior_only_uplift": ratio(hits["prior_only"], hits["one_step"]),
            "prior_only_uplift_ci95": ci["prior_only_uplift"],
            "answers_uplift": ratio(hits["learned"], hits["prior_only"]), "answers_uplift_ci95": ci["answers_uplift"],
        },
        "value_objective": {
            "note": "the same strategies ranking by probability x lift x value, like stage one",
            "rule_hit_rate": mean(hits["rule_value"]), "rule_uplift": ratio(hits["rule_value"], hits["one_step"]),
            "rule_uplift_ci95": ci["rule_value_uplift"],
            "learned_hit_rate": mean(hits["learned_value"]),
            "learned_uplift": ratio(hits["learned_value"], hits["one_step"]),
            "learned_uplift_ci95": ci["learned_value_uplift"],
        },
        "expected": {
            "note": "mean of the simulator's interest probabilities over the second list (no answer noise); "
                    "ceiling = the K remaining suitable products with the highest true interest",
            **{s: mean(expected[s]) for s in names}, "ceiling": mean(ceiling),
            "uplift": ratio(expected["learned"], expected["one_step"]), "uplift_ci95": ci["expected_learned_uplift"],
            "rule_uplift": ratio(expected["rule"], expected["one_step"]),
            "prior_only_uplift": ratio(expected["prior_only"], expected["one_step"]),
            "ceiling_uplift": ratio(ceiling, expected["one_step"]),
            "ceiling_uplift_ci95": ci["expected_ceiling_uplift"],
        },
        "sessions_with_choice": {
            "definition": "more than K suitable products left after the first list (otherwise every strategy "
                          "shows the same remaining products)",
            "n_sessions": int(choice.sum()),
            "one_step_hit_rate": mean(hits["one_step"][choice]), "rule_hit_rate": mean(hits["rule"][choice]),
            "learned_hit_rate": mean(hits["learned"][choice]),
            "uplift": ratio(hits["learned"][choice], hits["one_step"][choice]),
            "uplift_ci95": sub_ci.get("uplift"),
            "expected_uplift": ratio(expected["learned"][choice], expected["one_step"][choice]),
            "ceiling_uplift": ratio(ceiling[choice], expected["one_step"][choice]),
            "ceiling_uplift_ci95": sub_ci.get("ceiling_uplift"),
        },
        "by_products_left": by_products_left(values, n_left, k, n_boot, seed),
        "suitability_violations": audit["violations"],
        "lists_audited": audit["lists_checked"],
        "evaluation_bank": {"data_dir": str(eval_paths.data), "generator_seed": eval_seed,
                            "cutoff": HOLDOUT_CUTOFF.isoformat(), "customers": int(len(sim.customers()))},
        "development_bank": {"generator_seed": dev_seed, "model_version": s1.model_version,
                             "reranker": learned.version, "reranker_logs": learned.metadata.get("logs"),
                             "reranker_validation": learned.metadata.get("validation")},
        "rule": {"up": CategoryRule.up, "down": CategoryRule.down},
        "interest_model": interest_model, "reranker_interest_model": trained_with,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.evaluation.replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-data-dir", type=Path, default=os.environ.get("LINGXI_EVAL_DATA_DIR"),
                        help="data dir of a bank generated with another seed (default: LINGXI_EVAL_DATA_DIR)")
    parser.add_argument("--k", type=int, default=5, help="products per list (stage one and stage two)")
    parser.add_argument("--sessions", type=int, default=None, help="replay a random subset of N sessions")
    parser.add_argument("--seed", type=int, default=0, help="simulator and bootstrap seed")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples of the 95%% intervals")
    parser.add_argument("--also-k", type=int, nargs="*", default=[],
                        help="other list lengths to replay as well (summarised under other_k)")
    parser.add_argument("--allow-same-seed", action="store_true",
                        help="allow replaying on the bank the models were trained on (optimistic figures)")
    parser.add_argument("--also-interest-model", nargs="*", default=[], choices=INTEREST_MODELS,
                        help="replay the simulator's other interest models too, each with the re-ranker trained on "
                             "its own simulated sessions (summarised under other_interest_models)")
    parser.add_argument("--interest-model", choices=INTEREST_MODELS, default=DEFAULT_INTEREST_MODEL,
                        help="the feedback simulator's interest model (ml.datagen.feedback)")
    parser.add_argument("--reranker", type=Path, default=None,
                        help="learned re-ranker file (default: reranker[-MODEL].json next to the current model)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.eval_data_dir is None:
        parser.error("--eval-data-dir (or LINGXI_EVAL_DATA_DIR) is required")
    paths = Paths.from_env()
    result = replay(paths, args.eval_data_dir, args.k, args.sessions, args.seed, args.bootstrap,
                    args.allow_same_seed, args.interest_model, args.reranker)
    other = {str(k): summary(replay(paths, args.eval_data_dir, k, args.sessions, args.seed, args.bootstrap,
                                    args.allow_same_seed, args.interest_model, args.reranker))
             for k in args.also_k}
    if other:
        result["other_k"] = other
    models = {m: summary(replay(paths, args.eval_data_dir, args.k, args.sessions, args.seed, args.bootstrap,
                                args.allow_same_seed, m))
              for m in args.also_interest_model if m != args.interest_model}
    if models:
        result["other_interest_models"] = models
    if not args.no_write:
        write_metrics(paths.reports, {"two_stage": result})
        write_report(paths, result)  # after other_k, so the report lists them too
    print(json.dumps(result, indent=2))
    return 0

if __name__ == "__main__":
    sys.exit(main())
