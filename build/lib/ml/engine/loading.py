"""Build the engine from a data directory: the current model, its re-ranker, match reference and table."""
from __future__ import annotations

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
from ml.training.registry import load_model


def load_engine(data_dir: Path, config: RecommendConfig | None = None) -> Engine:
    """The factory serving calls (``LINGXI_ENGINE=ml.engine.loading:load_engine``)."""

    paths = Paths(data=Path(data_dir).resolve(), reports=Paths.from_env().reports)
    config = config or RecommendConfig.from_env()
    model, folder = load_model(paths)
    online = OnlineFeatures(feature_store(paths))
    engine = Engine(paths, model, online, config, load_reranker(folder, config), load_reference(paths, model))
    engine.table = load_table(paths, engine.stage_one_scorer, online.store)
    return engine


def load_table(paths: Paths, s1: StageOne, store=None) -> stage_one_table.StageOneTable | None:
    """The nightly stage-one table if it was scored by this model over the current features."""
    import logging

    table = stage_one_table.StageOneTable.load(paths.data / "scores")
    if table is None:
        return None
    problems = table.problems(s1.model_version, s1.products, s1.values, feature_source(paths, store))
    if problems:
        logging.getLogger("lingxi.serving").warning("stage-one table not used: %s", "; ".join(problems),
                                                    extra={"event": "stage_one_table_stale"})
        return None
    return table
