"""Evaluate the current model on the held-out cut-off (``make evaluate``).

    python -m ml.evaluation.evaluate [--figures docs/figures.json]

Every customer of the held-out cut-off (2025-04-01) is ranked over the cross-sell products they
did not hold and may be offered; labels are adoptions in the following three months. The list the
API serves (``ml.evaluation.served``: stage one's own code, value weighting and suitability), the
propensity-only ranking, every imbalance strategy, the baselines (random, popularity, the banks'
rule-based match score) and the generator's oracles are scored the same way, with customer-level
95% intervals: the posterior oracle (the best prediction from everything observable at the
cut-off: the ceiling a learner faces), the prior oracle (latent tastes integrated over their
prior, the window's triggers read off the realised path) and the full oracle (knows the tastes).
Writes reports/metrics.json (merging keys other tools write), reports/report.html with its
figures and, with ``--figures``, the ``lists`` section of docs/figures.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from ml.core import metrics
from ml.core.catalogue import load_catalogue
from ml.core.config import HOLDOUT_CUTOFF, Paths
from ml.core.logs import step_log
from ml.core.reports import write_metrics
from ml.evaluation import figures, served
from ml.evaluation.report import write_report
from ml.features.layout import STAGE_ONE_FEATURES
from ml.features.pairs import feature_names
from ml.features.store import get_store
from ml.imbalance.strategy_review import load_review
from ml.recommendation.match_score import rule_scores
from ml.training.dataset import fetch_features, load_labels, suitable_mask
from ml.training.model import PropensityModel
from ml.training.registry import Registry

BATCH = 100_000

STRATEGY_CUSTOMERS = 100_000  # the strategy table is scored on this many held-out customers (all when fewer)


log = step_log("evaluate")


class HoldoutSet:
    """Features, labels and the eligibility mask of every customer at the held-out cut-off."""

    def __init__(self, paths: Paths, products: list[str]):
        labels = load_labels(paths, [HOLDOUT_CUTOFF])
        features = fetch_features(get_store(paths), labels)
        frame = labels.merge(features, on=["customer_id", "snapshot_ts"])
        y = np.column_stack([frame[f"label_{p.lower()}"].to_numpy(dtype=float) for p in products])
        self.customer_ids = frame.customer_id.to_numpy()
        self.features = frame[list(STAGE_ONE_FEATURES)].to_numpy(dtype=np.float32)
        self.eligible = ~np.isnan(y) & suitable_mask(frame, products)
        self.labels = np.nan_to_num(y).astype(bool) & self.eligible
        self.products = products

    @property
    def mask(self) -> np.ndarray:
        return ~self.eligible

    def subset(self, rows: np.ndarray) -> "HoldoutSet":
        """The same set restricted to customer rows ``rows``."""
        part = object.__new__(HoldoutSet)
        part.customer_ids, part.features = self.customer_ids[rows], self.features[rows]
        part.eligible, part.labels, part.products = self.eligible[rows], self.labels[rows], self.products
        return part


def score_in_batches(fn, features: np.ndarray) -> np.ndarray:
    return np.vstack([fn(features[i:i + BATCH]) for i in range(0, len(features), BATCH)])


def oracle_scores(paths: Paths, holdout: HoldoutSet, kind: str) -> np.ndarray | None:
    folder = paths.oracle / f"cutoff={HOLDOUT_CUTOFF.isoformat()}"
    if not folder.exists():
        return None
    columns = [f"{kind}__{p}" for p in holdout.products]
    table = pd.read_parquet(folder, columns=["customer_id", *columns]).set_index("customer_id")
    scores = table.loc[holdout.customer_ids, columns].to_numpy(dtype=float)
    return np.clip(np.nan_to_num(scores, nan=0.0), 0.0, 1.0)


def rule_match_scores(holdout: HoldoutSet) -> np.ndarray:
    """The banks' rule-based 0-100 match score (age, risk, assets, category use, triggers, tags)."""
    from dataclasses import asdict


    catalogue = load_catalogue()
    return np.column_stack([rule_scores(holdout.features, asdict(catalogue[p])) for p in holdout.products])


def evaluate_scores(scores: np.ndarray, holdout: HoldoutSet, calibrated: bool) -> dict:
    report = metrics.ranking_report(scores, holdout.labels, holdout.mask, ks=(1, 3, 5))
    y, s = holdout.labels[holdout.eligible], scores[holdout.eligible]
    out = {
        "map_at_5": report["map@5"], "ndcg_at_5": report["ndcg@5"], "recall_at_5": report["recall@5"],
        "precision_at_5": report["precision@5"], "top_decile_lift": report["lift_top_decile"],
        "pr_auc": metrics.pr_auc(y, s), "roc_auc": metrics.roc_auc(y, s),
        "brier": metrics.brier(y, s) if calibrated else None,
    }
    return {**out, "ranking": report}


def per_product(scores: np.ndarray, holdout: HoldoutSet, oracle: np.ndarray | None = None) -> dict:
    """Per product: the model's PR-AUC, ROC-AUC, lift and calibration, next to the observable oracle's."""
    out = {}
    for j, pid in enumerate(holdout.products):
        e = holdout.eligible[:, j]
        y, s = holdout.labels[e, j], scores[e, j]
        row = {"eligible": int(e.sum()), "positives": int(y.sum()),
               "pr_auc": metrics.pr_auc(y, s) if y.any() else None,
               "roc_auc": metrics.roc_auc(y, s) if 0 < y.sum() < len(y) else None,
               "top_decile_lift": metrics.lift_at(y, s, 0.10) if y.any() else None,
               "mean_predicted": float(s.mean()), "observed_rate": float(y.mean())}
        if oracle is not None and y.any():
            o = oracle[e, j]
            row.update({"oracle_pr_auc": metrics.pr_auc(y, o), "oracle_roc_auc": metrics.roc_auc(y, o),
                        "oracle_top_decile_lift": metrics.lift_at(y, o, 0.10)})
        out[pid] = row
    return out


def popularity_scores(paths: Paths, holdout: HoldoutSet, model: PropensityModel) -> np.ndarray:
    """Adoption rate per product over the training cut-offs, the same for every customer."""
    labels = load_labels(paths, [pd.Timestamp(c).date() for c in model.metadata["fit_cutoffs"]])
    rates = np.array([labels[f"label_{p.lower()}"].mean() for p in holdout.products])
    return np.tile(np.nan_to_num(rates), (len(holdout.customer_ids), 1))


def evaluate(paths: Paths, figures_path: Path | None = None, command: str = "python -m ml.evaluation.evaluate") -> dict:
    started = time.perf_counter()
    folder = Registry(paths.models).current()
    if folder is None:
        raise SystemExit("no current model: run `make train` first")
    model = PropensityModel.load(folder)
    holdout = HoldoutSet(paths, model.products)
    log(f"{len(holdout.customer_ids):,} customers, {int(holdout.labels.sum()):,} adoptions in "
        f"{int(holdout.eligible.sum()):,} eligible cells ({time.perf_counter() - started:.0f} s)")

    chosen = score_in_batches(model.predict, holdout.features)
    log(f"model scored ({time.perf_counter() - started:.0f} s)")
    rng = np.random.default_rng(0)
    candidates = {"model": (chosen, True),
                  "random": (rng.random(chosen.shape), False),
                  "popularity": (popularity_scores(paths, holdout, model), True)}
    candidates["rule_match_score"] = (rule_match_scores(holdout), False)
    for kind in ("p_observable", "p_true"):
        scores = oracle_scores(paths, holdout, kind)
        if scores is not None:
            candidates[f"oracle_{kind.removeprefix('p_')}"] = (scores, True)

    table = {}
    for name, (scores, calibrated) in candidates.items():
        table[name] = evaluate_scores(scores, holdout, calibrated)
        _log_row(name, table[name])
    strategy_table = _strategy_table(folder, model, holdout, candidates)
    log(f"strategies scored ({time.perf_counter() - started:.0f} s)")
    lists_started = time.perf_counter()
    baselines = {"rule_match_score": "rule_match_score", "popularity": "popularity", "random": "random",
                 "oracle_prior": "oracle_observable", "oracle_true": "oracle_true"}
    lists = served.evaluate_lists(served.ListRanker(model), holdout.features, holdout.labels, holdout.mask,
                                  {name: candidates[key][0] for name, key in baselines.items() if key in candidates},
                                  served.posterior_scores(paths, holdout.customer_ids, holdout.products))
    lists_seconds = time.perf_counter() - lists_started
    for name, row in lists["all"]["rows"].items():
        _log_row(f"list:{name}", row)
    log(f"lists and intervals ({lists_seconds:.0f} s)")

    chosen_metrics = table["model"]
    positive_cells = int(holdout.labels.sum())
    summary = {key: chosen_metrics[key] for key in ("map_at_5", "ndcg_at_5", "recall_at_5", "precision_at_5",
                                                     "pr_auc", "top_decile_lift", "brier")}
    summary.update({
        "oracle_map_at_5": table.get("oracle_true", {}).get("map_at_5"),
        "observable_oracle_map_at_5": table.get("oracle_observable", {}).get("map_at_5"),
        "n_customers": int(len(holdout.customer_ids)),
        "positive_rate": positive_cells / int(holdout.eligible.sum()),
        "customers_adopting_rate": float(holdout.labels.any(axis=1).mean()),
        "generator_seed": model.metadata.get("generator_seed"),
        "cutoff": HOLDOUT_CUTOFF.isoformat(),
        "model_version": folder.name,
    })
    if summary["observable_oracle_map_at_5"]:
        summary["map_at_5_vs_observable_oracle"] = summary["map_at_5"] / summary["observable_oracle_map_at_5"]
    summary.update(served.summary_keys(lists))
    result = {
        "summary": summary,
        "strategies": {k: {m: v for m, v in row.items() if m != "ranking"} for k, row in table.items()},
        "rankings": {k: row["ranking"] for k, row in table.items()},
        "strategy_table": strategy_table,
        "lists": lists,
        "per_product": per_product(chosen, holdout, candidates.get("oracle_observable", (None,))[0]),
        "training": training_summary(folder, model.metadata),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_metrics(paths.reports, {"evaluation": result, "summary": summary})

    write_report(paths.reports, result, holdout, {k: v[0] for k, v in candidates.items()}, model)
    if figures_path is not None:
        _record_figures(paths, figures_path, command, lists, summary, time.perf_counter() - started, lists_seconds)
    ratio = summary.get("served_vs_posterior_oracle", {}).get("ratio")
    log(f"served MAP@5 {summary['served']['map_at_5']:.5f}, {ratio if ratio is None else round(ratio, 3)}x the "
        f"posterior oracle; report in {paths.reports} ({time.perf_counter() - started:.0f} s)")
    return result


def _record_figures(paths: Paths, figures_path: Path, command: str, lists: dict, summary: dict,
                    total_seconds: float, lists_seconds: float) -> None:
    """The ``lists`` section of docs/figures.json: figures, intervals, provenance, cost."""
    world_file = paths.oracle / "world.json"
    world = json.loads(world_file.read_text()) if world_file.exists() else {}
    section = {
        "source": figures.provenance(command, summary.get("generator_seed"), world.get("customers"),
                                     cutoff=summary["cutoff"], model_version=summary["model_version"],
                                     replicates=lists["replicates"]),
        "all": lists["all"], "sample": lists.get("sample"),
        "posterior_oracle": world.get("posterior_oracle"),
        "seconds": {"evaluation": total_seconds, "lists": lists_seconds},
    }
    figures.record(figures_path, "lists", section)


def training_summary(folder: Path, metadata: dict) -> dict:
    """How the model was trained, with the strategy review's calibration table when it has been run."""
    out = {k: metadata.get(k) for k in ("negative_sampling", "rows", "fit_cutoffs", "calibration_cutoff",
                                        "model_shape", "params", "calibration_table", "trained_seconds",
                                        "trained_cpu_seconds")}
    review = load_review(folder)
    if review is None:
        out["chosen"] = {"candidate": "production", "reason": "the strategy review has not been run (make strategies)"}
    else:
        out["calibration_table"] = {**(out["calibration_table"] or {}), **review["rows"]}
        out["chosen"] = review["chosen"]
    return out


def _log_row(name: str, row: dict) -> None:
    log(f"{name:>28}: MAP@5 {row['map_at_5']:.5f}  recall@5 {row['recall_at_5']:.3f}  "
        f"lift {row['top_decile_lift']:.2f}")


def _strategy_table(folder: Path, model: PropensityModel, holdout: HoldoutSet, candidates: dict) -> dict:
    """Every saved strategy, with the model and the oracles, on the same held-out customers (a random
    ``STRATEGY_CUSTOMERS`` of them at full scale: the ensembles are slow to score)."""
    rows = strategy_sample(len(holdout.customer_ids))
    part = holdout.subset(rows)
    table = {}
    for name in ("model", "oracle_observable", "oracle_true"):
        if name in candidates:
            table[name] = evaluate_scores(candidates[name][0][rows], part, calibrated=True)
    for name, scores in _strategy_scores(folder, model, holdout, rows).items():
        table[name] = evaluate_scores(scores, part, calibrated=False)
        _log_row(name, table[name])
    return {"customers": int(len(rows)), "of_customers": int(len(holdout.customer_ids)),
            "rows": {k: {m: v for m, v in row.items() if m != "ranking"} for k, row in table.items()}}


def strategy_sample(n_customers: int, limit: int = STRATEGY_CUSTOMERS, seed: int = 0) -> np.ndarray:
    """Sorted row numbers of the customers the strategy table is scored on (all, up to ``limit``)."""
    if n_customers <= limit:
        return np.arange(n_customers)
    return np.sort(np.random.default_rng(seed).choice(n_customers, limit, replace=False))


def _strategy_scores(folder: Path, model: PropensityModel, holdout: HoldoutSet, rows: np.ndarray) -> dict:
    out = {}
    names = feature_names()
    for path in sorted((folder / "strategies").glob("*.joblib")):
        pipeline = joblib.load(path)

        def predict(batch, pipeline=pipeline):
            frame = pd.DataFrame(model.rows(batch), columns=names)
            return pipeline.predict_proba(frame)[:, 1].reshape(len(batch), len(holdout.products))

        out[f"strategy:{path.stem}"] = score_in_batches(predict, holdout.features[rows])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.evaluation.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--figures", type=Path, default=None,
                        help="also record the lists' figures in this file (docs/figures.json)")
    args = parser.parse_args(argv)
    command = "python -m ml.evaluation.evaluate" + (f" --figures {args.figures}" if args.figures else "")
    evaluate(Paths.from_env(), args.figures, command)
    return 0

if __name__ == "__main__":
    sys.exit(main())
