"""Build the engine from a data directory: the current model, its re-ranker, match reference and table."""
from __future__ import annotations

import logging
from pathlib import Path

from ml.core.config import Paths
from ml.engine.engine import Engine
from ml.features.online import OnlineFeatures
from ml.features.snapshot import feature_source, feature_store
from ml.recommendation import stage_one_table
from ml.recommendation.config import RecommendConfig
from ml.recommendation.match_score import load_reference
from ml.recommendation.rerankers import load_reranker
from ml.recommendation.stage_one import StageOne
from ml.training.registry import load_challenger, load_model

log = logging.getLogger("lingxi.serving")


def load_engine(data_dir: Path, config: RecommendConfig | None = None) -> Engine:
    """The factory serving calls (``LINGXI_ENGINE=ml.engine.loading:load_engine``). With a
    registered challenger, ``engine.challenger`` is a second engine over the same features."""

    paths = Paths(data=Path(data_dir).resolve(), reports=Paths.from_env().reports)
    config = config or RecommendConfig.from_env()
    model, folder = load_model(paths)
    online = OnlineFeatures(feature_store(paths))
    engine = Engine(paths, model, online, config, load_reranker(folder, config), load_reference(paths, model))
    engine.table = load_table(paths, engine.stage_one_scorer, online.store)
    try:
        engine.challenger = load_challenger_engine(paths, engine, config)
    except Exception as exc:  # noqa: BLE001 - a broken challenger must not stop the champion
        log.warning("challenger not loaded: %s: %s", type(exc).__name__, exc, extra={"event": "challenger_failed"})
    return engine


def load_challenger_engine(paths: Paths, champion: Engine, config: RecommendConfig) -> Engine | None:
    loaded = load_challenger(paths)
    if loaded is None:
        return None
    model, folder = loaded
    scores = paths.data / "scores" / stage_one_table.CHALLENGER_DIR
    challenger = Engine(paths, model, champion.online, config, load_reranker(folder, config),
                        load_reference(paths, model, scores))
    if tuple(challenger.stage_one_scorer.products) != tuple(champion.stage_one_scorer.products):
        raise ValueError("the challenger ranks another product list than the champion")
    challenger._read_lock = champion._read_lock  # one online store, one connection
    challenger.table = load_table(paths, challenger.stage_one_scorer, champion.online.store, scores)
    return challenger


def load_table(paths: Paths, s1: StageOne, store=None,
               scores_dir: Path | None = None) -> stage_one_table.StageOneTable | None:
    """The nightly stage-one table if it was scored by this model over the current features."""
    table = stage_one_table.StageOneTable.load(scores_dir or paths.data / "scores")
    if table is None:
        return None
    problems = table.problems(s1.model_version, s1.products, s1.values, feature_source(paths, store))
    if problems:
        log.warning("stage-one table not used: %s", "; ".join(problems), extra={"event": "stage_one_table_stale"})
        return None
    return table
