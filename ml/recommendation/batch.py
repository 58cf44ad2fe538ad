"""The nightly stage-one batch: every customer's list, the match-score reference, the stage-one table.

    python -m ml.recommendation.batch [--k 5] [--sample N] [--no-check]

Writes ``scores/stage_one.parquet`` (every customer's list), ``scores/match_reference.json`` and the
memory-mapped ``scores/stage_one_table/`` that serving answers from (and, with a registered
challenger, its own table and reference under ``scores/challenger/``). The drift of every model
input since the model's training snapshot (PSI) goes to ``reports/drift.json``; an input at or
above the threshold flags the run. With the check (default) it
also runs stage two for everyone on random answers and audits both lists against the raw customer
table: suitability must hold whatever the answers (``reports/metrics.json`` → ``suitability``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.core import suitability
from ml.core.config import Paths
from ml.core.logs import working
from ml.core.reports import json_default, merge_report, write_metrics
from ml.core.suitability_rules import RULES_VERSION
from ml.features import drift
from ml.features.layout import STAGE_ONE_FEATURES
from ml.features.snapshot import feature_source, snapshot_features
from ml.recommendation import stage_one_table
from ml.recommendation.config import RecommendConfig
from ml.recommendation.match_score import REFERENCE_FILE, MatchReference
from ml.recommendation.rerankers import load_reranker, random_answers
from ml.recommendation.stage_one import (
    BatchLists,
    StageOne,
    held_from_features,
    suitability_inputs,
)
from ml.recommendation.stage_two import shown_mask, stage_two_batch
from ml.training.registry import load_challenger, load_model


def batch_score(paths: Paths, k: int = 5, sample: int | None = None, config: RecommendConfig | None = None,
                check: bool = True, seed: int = 0, drift_threshold: float | None = None) -> dict:
    """Nightly stage one for every customer: ``scores/stage_one.parquet`` and the match reference.

    With ``check``: stage two for everyone too (answers drawn at random, seeded: the rules must hold
    whatever the answers) and a suitability audit of both lists against the raw customer table,
    written to ``reports/metrics.json`` under ``suitability``.
    """

    started = time.perf_counter()
    config = config or RecommendConfig()
    model, folder = load_model(paths)
    s1 = StageOne(model, config)
    source = stage_one_table.source_stamp(feature_source(paths))  # before reading: a later rebuild is seen
    ids, x = snapshot_features(paths, limit=sample)
    t_read = time.perf_counter() - started
    with working(f"stage one for {len(ids):,} customers"):
        lists = s1.score_batch(x, k)
    t_score = time.perf_counter() - started - t_read
    reference = MatchReference.fit(lists.probabilities, lists.allowed, s1.products, s1.model_version, s1.values)
    s1.reference = reference
    out_dir = paths.data / "scores"
    reference.save(out_dir / REFERENCE_FILE)
    frame = _lists_frame(s1, ids, lists, stage=1)
    _write_parquet(frame, out_dir / "stage_one.parquet")
    stage_one_table.write(out_dir, ids, lists.x, lists.probabilities, s1.ranking_key(lists.probabilities, lists.raw),
                          {"model_version": s1.model_version, "products": list(s1.products),
                           "values": s1.values.tolist(), "feature_source": source})
    result: dict[str, Any] = {"customers": int(len(ids)), "k": k, "model_version": s1.model_version,
                              "read_s": round(t_read, 1), "stage_one_s": round(t_score, 1),
                              "rows": int(len(frame))}
    result["drift"] = input_drift(paths, folder, x, drift_threshold)
    challenger = load_challenger(paths)
    if challenger is not None:
        result["challenger"] = score_challenger(challenger[0], config, out_dir / stage_one_table.CHALLENGER_DIR, ids, x, k, source)
    if check:
        reranker = load_reranker(folder, config)
        rng = np.random.default_rng(seed)
        shown = shown_mask(lists.top, lists.allowed.shape[1])
        answers = random_answers(rng, shown)
        t = time.perf_counter()
        with working("stage two for everyone, for the suitability audit"):
            second = stage_two_batch(s1, reranker, x, shown, answers, k, p_first=lists.probabilities,
                                     raw_first=lists.raw, objective=config.stage_two_objective)
        result["stage_two_s"] = round(time.perf_counter() - t, 1)
        owns = np.zeros((len(ids), len(s1.catalogue)), dtype=bool)
        owns[:, s1.positions] = answers == 3
        audit = audit_lists(paths, ids, x, [(lists.top, None), (second.top, owns)], s1)
        overlap = int(np.sum((second.top[:, :, None] == lists.top[:, None, :]) & (second.top[:, :, None] >= 0)))
        result["suitability"] = {**audit, "stage_two_reshown": overlap, "reranker": reranker.version}
        write_metrics(paths.reports, {"suitability": result["suitability"]})
    result["total_s"] = round(time.perf_counter() - started, 1)
    return result


def score_challenger(model, config: RecommendConfig, out_dir: Path, ids: np.ndarray, x: np.ndarray, k: int,
                     source: dict) -> dict:
    """The challenger's stage-one table and match reference (serving answers its arm and its
    shadow lists from them, as the champion's from ``scores/``)."""
    started = time.perf_counter()
    s1 = StageOne(model, config)
    lists = s1.score_batch(x, k)
    MatchReference.fit(lists.probabilities, lists.allowed, s1.products, s1.model_version).save(out_dir / REFERENCE_FILE)
    stage_one_table.write(out_dir, ids, lists.x, lists.probabilities, s1.ranking_key(lists.probabilities, lists.raw),
                          {"model_version": s1.model_version, "products": list(s1.products),
                           "values": s1.values.tolist(), "feature_source": source})
    return {"model_version": s1.model_version, "stage_one_s": round(time.perf_counter() - started, 1)}


def input_drift(paths: Paths, model_folder: Path, x: np.ndarray, threshold: float | None = None) -> dict:
    """PSI of every model input between the model's training snapshot and tonight's, written to
    ``reports/drift.json`` and ``metrics.json`` (``drift``). A feature at or above the threshold
    flags the run (logged; the night goes on: drift asks for a look, not for a stop)."""
    threshold = drift.threshold_from_env() if threshold is None else threshold
    reference = drift.load_profile(model_folder)
    if reference is None:  # a model saved before profiles: its calibration snapshot, if the source keeps it
        meta = json.loads((model_folder / "metadata.json").read_text())
        snapshot = meta.get("calibration_cutoff")
        _, x_ref = snapshot_features(paths, snapshot=snapshot) if snapshot else (None, np.empty((0, 0)))
        if len(x_ref) == 0:
            return {"flagged": False, "skipped": "no training profile and no training snapshot in the source"}
        reference = drift.profile(x_ref, STAGE_ONE_FEATURES, snapshot)
    report = drift.compare(reference, x, STAGE_ONE_FEATURES, threshold)
    report["model_version"] = model_folder.name
    merge_report(paths.reports / "drift.json", report)
    write_metrics(paths.reports, {"drift": {k: report[k] for k in ("flagged", "threshold", "drifted", "max_psi",
                                                                   "reference_snapshot", "top")}})
    if report["flagged"]:
        print(f"warning: input drift: PSI >= {threshold:g} for {', '.join(report['drifted'])}", file=sys.stderr)
    return {k: v for k, v in report.items() if k != "psi"}


def audit_lists(paths: Paths, ids: np.ndarray, x: np.ndarray, lists: Sequence[tuple[np.ndarray, np.ndarray | None]],
                s1: StageOne) -> dict:
    """Audit lists against the *raw* customer table (exact age, risk preference, assets) and holdings.

    ``lists``: (top positions in ``s1.products``, extra reported holdings (n, P_all) or None).
    Customers missing from the raw table are audited on their features (fail closed).
    """
    raw = pd.read_parquet(paths.raw / "customers", columns=["customer_id", "age", "risk_preference", "assets_cny"])
    raw = raw.drop_duplicates("customer_id", keep=False).set_index("customer_id")
    customers = raw.reindex(pd.Index(ids, name="customer_id"))
    fallback = suitability_inputs(x)
    missing = customers["age"].isna().to_numpy()
    customers = customers.reset_index(drop=True)
    for col in ("age", "assets_cny"):
        customers.loc[missing, col] = fallback.loc[missing, col].to_numpy()
    customers["risk_tolerance"] = np.where(missing, fallback["risk_tolerance"], np.nan)
    held = held_from_features(x, s1.catalogue)
    total = {"violations": 0, "recommendations": 0, "customers_checked": int(len(ids)), "lists_checked": 0,
             "by_reason": {}, "rules_version": str(RULES_VERSION),
             "checked_against": "raw customers (age, risk_preference, assets_cny) + holdings + reported holdings"}
    for top, extra in lists:
        ranked = np.where(top >= 0, s1.positions[np.maximum(top, 0)], -1)
        result = suitability.audit(ranked, customers, held if extra is None else (held | extra), catalogue=s1.catalogue)
        total["violations"] += result.n_violations
        total["recommendations"] += result.n_recommendations
        total["lists_checked"] += int((top >= 0).any(axis=1).sum())
        for code, n in result.by_reason.items():
            total["by_reason"][code] = total["by_reason"].get(code, 0) + n
    return total


def _lists_frame(s1: StageOne, ids: np.ndarray, lists: BatchLists, stage: int) -> pd.DataFrame:
    n, k = lists.top.shape
    rows, ranks = np.nonzero(lists.top >= 0)
    pos = lists.top[rows, ranks]
    p = lists.probabilities[rows, pos]
    return pd.DataFrame({
        "customer_id": ids[rows], "stage": np.int32(stage), "rank": (ranks + 1).astype(np.int32),
        "product_id": np.asarray(s1.products, dtype=object)[pos], "probability": p,
        "score": p * s1.values[pos], "match_score": s1.match(p, pos).astype(np.int32),
        "model_version": s1.model_version})


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.recommendation.batch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=5, help="list length (default 5)")
    parser.add_argument("--sample", type=int, default=None, help="only the first N customers (by id)")
    parser.add_argument("--no-check", action="store_true", help="skip stage two and the suitability audit")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random answers the audit's stage two uses")
    parser.add_argument("--drift-threshold", type=float, default=None,
                        help="PSI at which an input flags the run (default LINGXI_DRIFT_PSI_THRESHOLD or 0.25)")
    args = parser.parse_args(argv)
    result = batch_score(Paths.from_env(), args.k, args.sample, RecommendConfig.from_env(), not args.no_check,
                         args.seed, args.drift_threshold)
    print(json.dumps(result, indent=2, default=json_default))
    return 0


if __name__ == "__main__":
    sys.exit(main())
