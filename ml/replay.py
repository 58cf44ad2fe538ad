"""Replay evaluation of the two-stage strategy with the generator's feedback simulator.

    python -m ml.replay --eval-data-dir DIR [--k 5] [--sessions N] [--seed S] [--bootstrap B]

The model and the learned re-ranker come from the development data (``LINGXI_DATA_DIR``); the
sessions are replayed on the customers of *another* bank (``--eval-data-dir`` or
``LINGXI_EVAL_DATA_DIR``: a different generator seed, with its own raw/, oracle/, marts and Feast
registry), at the held-out cut-off (``ml.config.HOLDOUT_CUTOFF``). Per customer:

1. stage one: the top K (point-in-time features from the evaluation bank's Feast store);
2. the simulator answers each shown product (interested / not interested / already owns);
3. a second list of K from the products not yet shown, by (a) ``one_step`` (the next K of the
   stage-one ranking), (b) ``rule`` (category re-weighting) and (c) ``learned``;
4. the simulator answers the second lists; a session's *hits* are its "interested" answers.

Reported under ``two_stage`` in ``reports/metrics.json`` (merged) and in ``reports/two_stage.md``:
mean hits per session of each second list with paired-bootstrap 95% intervals, the uplift
learned / one-step (and rule / one-step) with intervals, the same on expected hits (the
simulator's interest probabilities: no answer noise), the oracle ceiling (the K remaining
products with the highest true interest), and the suitability audit of every list shown.
Deterministic for a seed. A session is a customer with a first list and at least one suitable
product left for the second.
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

from ml.config import HOLDOUT_CUTOFF, Paths



def log(message: str) -> None:
    print(f"[replay] {message}", file=sys.stderr, flush=True)


def _generator_seed(data_dir: Path):
    manifest = data_dir / "raw" / "_manifest.json"
    return json.loads(manifest.read_text()).get("seed") if manifest.exists() else None


_SNAPSHOTS: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # one read per process for K / model variants


def eval_features(eval_paths: Paths, customer_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``stage_one_v1`` features at the held-out cut-off from the evaluation bank's feature store.

    Read column-wise from the snapshot rows of the Feast view's batch source (as the nightly batch
    does): for an entity timestamp equal to a snapshot, exactly the point-in-time join's rows (tested
    against ``get_historical_features``), without a join over a million entity rows. Customers with
    no snapshot row are dropped; the order of ``customer_ids`` is kept.
    """
    from ml.recommend import snapshot_features

    key = str(eval_paths.data)
    if key not in _SNAPSHOTS:
        _SNAPSHOTS.clear()
        _SNAPSHOTS[key] = snapshot_features(eval_paths, pd.Timestamp(HOLDOUT_CUTOFF))
    ids, x = _SNAPSHOTS[key]
    rows = pd.Index(ids).get_indexer(customer_ids)
    ok = rows >= 0
    return np.asarray(customer_ids)[ok], x[rows[ok]]


def bootstrap(values: dict[str, np.ndarray], ratios: dict[str, tuple[str, str]], n_boot: int, seed: int) -> dict:
    """Paired bootstrap over sessions: 95% intervals of each mean and of each ratio of means."""
    rng = np.random.default_rng(seed)
    n = len(next(iter(values.values())))
    means = {k: [] for k in values}
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        for k, v in values.items():
            means[k].append(v[idx].mean())
    out = {}
    for k, m in means.items():
        out[k] = [round(float(np.percentile(m, 2.5)), 5), round(float(np.percentile(m, 97.5)), 5)]
    for name, (num, den) in ratios.items():
        r = np.asarray(means[num]) / np.maximum(np.asarray(means[den]), 1e-12)
        out[name] = [round(float(np.percentile(r, 2.5)), 4), round(float(np.percentile(r, 97.5)), 4)]
    return out


def by_products_left(values: dict[str, np.ndarray], n_left: np.ndarray, k: int, n_boot: int, seed: int) -> list[dict]:
    """The replay split by how many suitable products are left for the second list: with K or fewer
    every strategy shows the same products; the more are left, the more a re-ranker can choose."""
    buckets = [(f"1-{k}", n_left <= k), (f"{k + 1}-{2 * k - 1}", (n_left > k) & (n_left < 2 * k)),
               (f">={2 * k}", n_left >= 2 * k)]
    total = values["one_step"].sum()
    out = []
    for label, mask in buckets:
        row = {"products_left": label, "n_sessions": int(mask.sum())}
        if mask.sum() > 1:
            sub = {name: v[mask] for name, v in values.items()}
            ci = bootstrap({s: sub[s] for s in ("one_step", "learned", "expected_one_step", "expected_ceiling")},
                           {"uplift": ("learned", "one_step"),
                            "ceiling_uplift": ("expected_ceiling", "expected_one_step")},
                           n_boot, seed)
            den, exp_den = sub["one_step"].mean(), sub["expected_one_step"].mean()
            row.update({
                "share_of_one_step_hits": round(float(sub["one_step"].sum() / max(total, 1e-12)), 4),
                "mean_products_left": round(float(n_left[mask].mean()), 2),
                "one_step_hit_rate": round(float(den), 5), "rule_hit_rate": round(float(sub["rule"].mean()), 5),
                "learned_hit_rate": round(float(sub["learned"].mean()), 5),
                "uplift": round(float(sub["learned"].mean() / den), 4) if den > 0 else None,
                "uplift_ci95": ci["uplift"],
                "ceiling_uplift": round(float(sub["expected_ceiling"].mean() / exp_den), 4) if exp_den > 0 else None,
                "ceiling_uplift_ci95": ci["ceiling_uplift"]})
        out.append(row)
    return out


def replay(paths: Paths, eval_dir: Path, k: int = 5, sessions: int | None = None, seed: int = 0,
           n_boot: int = 2000, allow_same_seed: bool = False, interest_model: str | None = None,
           reranker: Path | None = None) -> dict:
    from ml.datagen.feedback import DEFAULT_INTEREST_MODEL, FeedbackSimulator
    from ml.recommend import RecommendConfig, StageOne, audit_lists, load_model, stage_two_batch
    from ml.rerank import (ANSWER_CODES, INTERESTED, CategoryRule, LearnedReranker, OneStep, PriorOnly, log_dir,
                           reranker_file, simulate_logs, train)

    started = time.perf_counter()
    interest_model = interest_model or DEFAULT_INTEREST_MODEL
    eval_paths = Paths(data=Path(eval_dir).resolve(), reports=paths.reports)
    dev_seed, eval_seed = _generator_seed(paths.data), _generator_seed(eval_paths.data)
    if dev_seed is not None and dev_seed == eval_seed and not allow_same_seed:
        raise SystemExit(f"the evaluation bank has the development generator seed ({dev_seed}): "
                         "generate another seed (or pass --allow-same-seed)")
    model, folder = load_model(paths)
    s1 = StageOne(model, RecommendConfig())
    reranker = reranker or reranker_file(folder, interest_model)
    if not reranker.exists():
        log(f"no learned re-ranker at {reranker}: simulating logged sessions on the development "
            "data and training one (python -m ml.rerank simulate-logs / train)")
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


def write_report(paths: Paths, result: dict) -> Path:
    r, e, c, d, v = (result, result["expected"], result["sessions_with_choice"], result["decomposition"],
                     result["value_objective"])
    lines = [
        "# Two-stage replay (generated by `python -m ml.replay`)", "",
        f"Evaluation bank: generator seed {r['evaluation_bank']['generator_seed']}, cut-off "
        f"{r['evaluation_bank']['cutoff']}; model and re-ranker from seed {r['development_bank']['generator_seed']} "
        f"(model {r['development_bank']['model_version']}, {r['development_bank']['reranker']}).", "",
        f"K = {r['k']}, {r['n_sessions']:,} sessions (customers with a first list and a suitable product left). "
        "Hit rate = mean number of 'interested' answers per session in the second list; 95% paired-bootstrap "
        "intervals. (a) ranks like stage one (probability x value); (a'), (b), (c) rank by interest.", "",
        "| second list | hit rate | 95% CI | expected (no answer noise) |", "|---|---|---|---|",
        f"| (a) one step | {r['one_step_hit_rate']:.4f} | {r['one_step_hit_rate_ci95']} | {e['one_step']:.4f} |",
        f"| (a') interest prior, answers ignored | {d['prior_only_hit_rate']:.4f} | {d['prior_only_hit_rate_ci95']} "
        f"| {e['prior_only']:.4f} |",
        f"| (b) category rule | {r['rule_hit_rate']:.4f} | {r['rule_hit_rate_ci95']} | {e['rule']:.4f} |",
        f"| (c) learned | {r['learned_hit_rate']:.4f} | {r['learned_hit_rate_ci95']} | {e['learned']:.4f} |",
        f"| oracle ceiling | | | {e['ceiling']:.4f} |", "",
        f"Uplift learned / one step: **{r['uplift']}** (95% CI {r['uplift_ci95']}); rule / one step: "
        f"{r['rule_uplift']} ({r['rule_uplift_ci95']}); learned / rule {r['learned_vs_rule']} "
        f"({r['learned_vs_rule_ci95']}); target 1.5: {'met' if r['meets_target'] else 'NOT met'}.",
        f"Of the learned uplift, ranking by interest instead of probability x value gives {d['prior_only_uplift']} "
        f"and the answers x{d['answers_uplift']} ({d['answers_uplift_ci95']}). With the value objective: "
        f"learned {v['learned_uplift']}, rule {v['rule_uplift']}.",
        f"On expected hits: {e['uplift']} ({e['uplift_ci95']}); the oracle ceiling is {e['ceiling_uplift']} "
        f"({e['ceiling_uplift_ci95']}): no re-ranking of the remaining products can do better than that.", "",
        f"Sessions with a real choice (more than K products left): {c['n_sessions']:,}; uplift {c['uplift']} "
        f"({c['uplift_ci95']}), ceiling {c['ceiling_uplift']}.", "",
        f"First-list hit rate: {r['first_list_hit_rate']}. Suitability violations in all {r['lists_audited']:,} "
        f"lists audited: {r['suitability_violations']}.", ""]
    lines += ["## Where the ceiling is: sessions by suitable products left for the second list", "",
              "| products left | sessions | share of one-step hits | one step | learned | uplift (95% CI) "
              "| oracle ceiling (95% CI) |", "|---|---|---|---|---|---|---|"]
    for b in r["by_products_left"]:
        if b["n_sessions"] > 1:
            lines.append(f"| {b['products_left']} | {b['n_sessions']:,} | {b['share_of_one_step_hits']:.1%} "
                         f"| {b['one_step_hit_rate']:.4f} | {b['learned_hit_rate']:.4f} | {b['uplift']} "
                         f"{b['uplift_ci95']} | {b['ceiling_uplift']} {b['ceiling_uplift_ci95']} |")
    lines += ["", "With K or fewer products left every strategy shows the same ones; a catalogue of 15 cross-sell "
              "products leaves at most 10 after a first list of 5.", ""]
    lines += [f"Interest model of the feedback simulator: `{r['interest_model']}` (ml/datagen/feedback.py; "
              f"re-ranker trained on `{r['reranker_interest_model']}` answers).", ""]
    for k, o in r.get("other_k", {}).items():
        lines += [f"K = {k}: {o['n_sessions']:,} sessions; one step {o['one_step_hit_rate']}, "
                  f"rule {o['rule_hit_rate']}, learned {o['learned_hit_rate']}; uplift {o['uplift']} "
                  f"({o['uplift_ci95']}), rule "
                  f"{o['rule_uplift']}; oracle ceiling {o['ceiling_uplift']} ({o['ceiling_uplift_ci95']}).", ""]
    for m, o in r.get("other_interest_models", {}).items():
        lines += [f"Interest model `{m}` (re-ranker trained on its own simulated sessions), K = {o['k']}: "
                  f"{o['n_sessions']:,} sessions; first list {o['first_list_hit_rate']}; one step "
                  f"{o['one_step_hit_rate']}, rule {o['rule_hit_rate']}, learned {o['learned_hit_rate']}; uplift "
                  f"{o['uplift']} ({o['uplift_ci95']}), answers alone x{o['answers_uplift']} ({o['answers_uplift_ci95']}); "
                  f"oracle ceiling "
                  f"{o['ceiling_uplift']} ({o['ceiling_uplift_ci95']}).", ""]
    path = paths.reports / "two_stage.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def summary(result: dict) -> dict:
    """The headline figures of a replay (for other list lengths and interest models)."""
    keys = ("k", "n_sessions", "interest_model", "one_step_hit_rate", "rule_hit_rate", "learned_hit_rate",
            "one_step_hit_rate_ci95", "rule_hit_rate_ci95", "learned_hit_rate_ci95", "uplift", "uplift_ci95",
            "rule_uplift", "rule_uplift_ci95", "learned_vs_rule", "learned_vs_rule_ci95", "meets_target",
            "first_list_hit_rate")
    choice = result["sessions_with_choice"]
    return {**{key: result[key] for key in keys},
            "prior_only_uplift": result["decomposition"]["prior_only_uplift"],
            "answers_uplift": result["decomposition"]["answers_uplift"],
            "answers_uplift_ci95": result["decomposition"]["answers_uplift_ci95"],
            "expected_uplift": result["expected"]["uplift"],
            "ceiling_uplift": result["expected"]["ceiling_uplift"],
            "ceiling_uplift_ci95": result["expected"]["ceiling_uplift_ci95"],
            "sessions_with_choice": {key: choice[key] for key in ("n_sessions", "uplift", "uplift_ci95",
                                                                   "ceiling_uplift", "ceiling_uplift_ci95")},
            "by_products_left": result["by_products_left"],
            "reranker_validation": result["development_bank"].get("reranker_validation")}


def main(argv: list[str] | None = None) -> int:
    from ml.datagen.feedback import DEFAULT_INTEREST_MODEL, INTEREST_MODELS
    from ml.recommend import write_metrics

    parser = argparse.ArgumentParser(prog="python -m ml.replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-data-dir", type=Path, default=os.environ.get("LINGXI_EVAL_DATA_DIR"),
                        help="data dir of a bank generated with another seed (default: LINGXI_EVAL_DATA_DIR)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=None, help="replay a random subset of N sessions")
    parser.add_argument("--seed", type=int, default=0, help="simulator and bootstrap seed")
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--also-k", type=int, nargs="*", default=[],
                        help="other list lengths to replay as well (summarised under other_k)")
    parser.add_argument("--allow-same-seed", action="store_true")
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
        write_metrics(paths, {"two_stage": result})
        write_report(paths, result)  # after other_k, so the report lists them too
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
