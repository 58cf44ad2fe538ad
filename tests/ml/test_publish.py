"""One version for the whole night: the stage-one table switches atomically, and ``ml.engine.publish``
assembles snapshot, model, table, relations and the Feast registry / online store into one version
that a single rename makes current."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.recommendation import stage_one_table
from ml.recommendation.stage_one_table import StageOneTable


# -- the stage-one table -------------------------------------------------------------------------
def write_table(scores: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = np.array([f"{i:032X}" for i in rng.choice(10**6, n, replace=False)])
    stage_one_table.write(scores, ids, rng.random((n, 4), dtype=np.float32), rng.random((n, 3)), rng.random((n, 3)),
                          {"model_version": f"m{seed}", "products": ["A", "B", "C"], "values": [1.0, 1.0, 1.0]})


def consistent(scores: Path) -> int | None:
    """Customers of the table a reader finds now (None: no table), checking meta against arrays."""
    table = StageOneTable.load(scores)
    if table is None:
        return None
    assert table.meta["customers"] == len(table.ids) == table.x.shape[0] == table.probability.shape[0]
    return len(table.ids)


def test_table_switch_leaves_no_gap(tmp_path: Path, monkeypatch):
    """Before: two renames, and between them no table (a worker starting then scored live, silently)."""
    scores = tmp_path / "scores"
    write_table(scores, 50, seed=1)
    seen = []
    real_replace, real_rename = os.replace, Path.rename

    def replace(src, dst, *args, **kwargs):
        real_replace(src, dst, *args, **kwargs)
        seen.append(consistent(scores))

    def rename(self, target):
        out = real_rename(self, target)
        seen.append(consistent(scores))
        return out

    monkeypatch.setattr(stage_one_table.os, "replace", replace)
    monkeypatch.setattr(Path, "rename", rename)
    write_table(scores, 70, seed=2)
    monkeypatch.undo()
    assert seen and None not in seen and seen[-1] == 70
    assert consistent(scores) == 70


def test_a_reader_never_mixes_metadata_and_arrays(tmp_path: Path, monkeypatch):
    """Before: meta.json and the arrays were opened by path one after the other; a publication in
    between gave one run's metadata with another's arrays."""
    scores = tmp_path / "scores"
    write_table(scores, 50, seed=1)
    real_load = np.load
    published = []

    def load(*args, **kwargs):
        if not published:  # the next night publishes while this reader is half-way
            published.append(True)
            monkeypatch.setattr(stage_one_table.np, "load", real_load)
            write_table(scores, 70, seed=2)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(stage_one_table.np, "load", load)
    table = StageOneTable.load(scores)
    assert published and table.meta["customers"] == len(table.ids) == 50 and table.meta["model_version"] == "m1"
    assert consistent(scores) == 70


def test_table_runs_are_kept_one_back_and_the_old_layout_migrates(tmp_path: Path):
    scores = tmp_path / "scores"
    legacy = scores / "stage_one_table"
    legacy.mkdir(parents=True)  # a table written before the switch to links
    (legacy / "meta.json").write_text("{}")
    for seed in (1, 2, 3):
        write_table(scores, 10 * seed, seed)
    assert (scores / "stage_one_table").is_symlink() and consistent(scores) == 30
    assert len(list(scores.glob(".stage_one_table-*"))) == 2  # this run and the previous one


# -- publication over the test bank ------------------------------------------------------------
@pytest.fixture
def work_dir(feature_data_dir, tmp_path: Path) -> Path:
    """A private working data dir: the test bank's marts and Feast store (registry re-pointed at
    private sources), a tiny current model, and a stage-one table of it over 800 customers."""
    from test_recommend import tiny_model

    from ml.core.config import Paths
    from ml.engine.publish import repoint_sources
    from ml.features.snapshot import feature_store
    from ml.recommendation.batch import batch_score
    from ml.training.registry import Registry

    root = tmp_path / "data"
    for name in ("raw", "marts"):
        (root / name).mkdir(parents=True)
        for item in (feature_data_dir / name).iterdir():  # links: the pipeline replaces, never rewrites
            (root / name / item.name).symlink_to(item)
    (root / "feast").mkdir()
    for name in ("registry.db", "online_store.db"):
        shutil.copy(feature_data_dir / "feast" / name, root / "feast" / name)
    paths = Paths(data=root, reports=tmp_path / "reports")
    repoint_sources(feature_store(paths), feature_data_dir, root)
    registry = Registry(paths.models)
    folder = registry.new_version()
    tiny_model(seed=1).save(folder)
    registry.promote(folder.name)
    batch_score(paths, k=5, sample=800, check=False)
    return root


def test_publish_makes_one_version_current(work_dir: Path):
    from ml.core import versions
    from ml.core.config import Paths
    from ml.engine.loading import load_engine
    from ml.engine.publish import publish
    from ml.features.snapshot import feature_source, feature_store
    from ml.features.store import build_feedback_source

    paths = Paths(data=work_dir, reports=work_dir.parent / "reports")
    # answers exported before the night (naive bank-local times, as serving.export writes them)
    export = work_dir / "feedback_export" / "feedback"
    export.mkdir(parents=True)
    table = StageOneTable.load(work_dir / "scores")
    cid = table.ids[3].decode()
    pd.DataFrame({"customer_id": [cid, cid], "product_id": ["SAV_TIME", "WLT_BOND_FUND"],
                  "response": ["interested", "not_interested"],
                  "recorded_at": [pd.Timestamp("2025-07-02 09:00"), pd.Timestamp("2025-07-02 10:30")]}
                 ).to_parquet(export / "part-0.parquet")
    (work_dir / "feedback_export" / "_manifest.json").write_text(json.dumps({"timezone": "Asia/Shanghai"}))
    build_feedback_source(paths)

    result = publish(paths)
    version = result["version"]
    folder = versions.version_dir(work_dir, version)
    assert versions.current_version(work_dir) == version and result["model_version"] == "tiny-1"
    manifest = versions.read_manifest(folder)
    assert manifest["stage_one_table"] == "tiny-1:800"
    nightly = folder / "scores" / "stage_one.parquet"  # the console's call lists read the version's own
    assert nightly.stat().st_ino == (work_dir / "scores" / "stage_one.parquet").stat().st_ino
    assert manifest["feedback_seeded"] == {"customers": 1, "until": "2025-07-02T02:30:00+00:00"}  # UTC
    assert {"customer_360.parquet", "manager_books.parquet", "labels_adoption.parquet"} <= set(manifest["marts"])
    # big files are links to the working ones, not copies
    same = lambda a, b: os.stat(a).st_ino == os.stat(b).st_ino  # noqa: E731
    assert same(folder / "marts" / "customer_360.parquet", work_dir / "marts" / "customer_360.parquet")
    assert same(folder / "scores" / "stage_one_table" / "probability.npy", table.folder / "probability.npy")
    # the version's Feast registry reads the version's sources, its own online store
    version_paths = Paths(data=folder, reports=paths.reports)
    store = feature_store(version_paths)
    assert feature_source(version_paths, store) == folder / "feast" / "sources" / "customer_feature_vectors.parquet"
    assert Path(store.config.online_store.path) == folder / "feast" / "online_store.db"
    engine = load_engine(folder)
    assert engine.table is not None and engine.versions()["stage_one_table"] == "tiny-1:800"
    profile = engine.customer_profile(cid)
    assert profile["fb_interested_savings"] == 1 and profile["fb_last_response_ts"].startswith("2025-07-02T02:30")

    # the next night rebuilds the working files: the published version does not move
    source = work_dir / "feast" / "sources" / "customer_feature_vectors.parquet"
    shutil.copy(source, source.with_suffix(".tmp"))
    os.replace(source.with_suffix(".tmp"), source)
    os.utime(source, ns=(1, 1))
    engine = load_engine(folder)
    assert engine.table is not None  # before: the stamp of the rebuilt working source made it stale
    assert load_engine(work_dir).table is None  # the working dir's table is stale, as it should be

    with pytest.raises(Exception, match="another feature source"):
        publish(paths)  # scored before the rebuild: refused, nothing switched
    assert versions.current_version(work_dir) == version and versions.published(work_dir) == [version]


def test_publish_refuses_a_table_of_another_model(work_dir: Path):
    from ml.core import versions
    from ml.core.config import Paths
    from ml.engine.publish import PublishError, publish
    from ml.training.model import PropensityModel
    from ml.training.registry import Registry

    paths = Paths(data=work_dir, reports=work_dir.parent / "reports")
    first = publish(paths)["version"]
    registry = Registry(paths.models)
    model = PropensityModel.load(registry.current())
    model.metadata["version"] = "tiny-1-retrained"
    folder = registry.new_version()
    model.save(folder)
    registry.promote(folder.name)  # trained, but `make score` did not run
    with pytest.raises(PublishError, match="is not the current tiny-1-retrained"):
        publish(paths)
    assert versions.current_version(work_dir) == first and versions.published(work_dir) == [first]
