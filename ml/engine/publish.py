"""The nightly job's last step: publish everything serving reads as one version, then switch.

    python -m ml.engine.publish [--keep 3]

Assembles ``versions/<id>/`` (``ml.core.versions``) from the working data dir, as a data dir of its
own that ``load_engine`` and the API's snapshot read unchanged:

- ``marts/``: the customer snapshot (``customer_360``, recent events, managers' books), the marts
  cold start reads and the product relations;
- ``models/``: the current model version (``CURRENT`` names it) with its re-ranker;
- ``scores/``: the stage-one table and the match-score reference of that model, and the nightly
  lists (``stage_one.parquet``, the console's call lists read them);
- ``feast/``: the feature sources, a copy of the Feast registry re-pointed at them, and a copy of
  the online store the ``features`` step materialised, seeded with the feedback aggregates of the
  export. Serving pushes fresh feedback into the version it answers from, so materialising the next
  night never touches a store in use, and features never come from another night than the model.

Large files that their writers replace by rename (dbt's Parquet exports, the feature sources, the
model, the table's arrays) are hard-linked: publishing costs no copy of them. Files rewritten in
place are copied. The new version is then loaded exactly as a worker will load it (the table must
be current: no silent live scoring) before ``versions/CURRENT`` is replaced by one rename.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from ml.core.config import Paths
from ml.core.reports import json_default
from ml.core.versions import (
    fsync_dir,
    new_version_id,
    prune,
    publication_lock,
    switch,
    version_dir,
    write_manifest,
)
from ml.engine.loading import load_engine
from ml.features.online import OnlineFeatures
from ml.features.snapshot import feature_source, feature_store
from ml.recommendation.match_score import REFERENCE_FILE
from ml.recommendation.stage_one_table import (
    CHALLENGER_DIR,
    TABLE_DIR,
    StageOneTable,
    copy_table,
    source_stamp,
)
from ml.training.registry import Registry

MARTS_LINKED = ("customer_360.parquet", "customer_recent_events.parquet", "manager_books.parquet",
                "customer_features_monthly.parquet", "labels_adoption.parquet",
                "recommendation_feedback.parquet", "monthly_effect_breakdown.parquet")  # dbt replaces them by rename
MARTS_COPIED = ("product_relations.parquet",)  # ml.relations rewrites it in place
MODEL_LINKED = ("model.txt", "calibration.joblib")  # written once, into a new version folder
FEEDBACK_VIEW = "customer_feedback"


class PublishError(RuntimeError):
    """The working data dir cannot make a consistent version (nothing was switched)."""


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system: copy
        shutil.copyfile(source, target)


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (the backup API), whatever else has it open."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def _inside(path: Path, root: Path) -> Path:
    """``path`` relative to the data dir ``root`` (as written, else with symlinks resolved)."""
    for resolve in (os.path.abspath, os.path.realpath):
        try:
            return Path(resolve(path)).relative_to(resolve(root))
        except ValueError:
            continue
    raise PublishError(f"{path} is outside the data dir {root}: it cannot be versioned")


# -- the parts ---------------------------------------------------------------------------------
def add_marts(paths: Paths, folder: Path) -> list[str]:
    if not (paths.marts / "customer_360.parquet").exists():
        raise PublishError(f"no {paths.marts / 'customer_360.parquet'} (run `make warehouse`)")
    added = []
    for names, put in ((MARTS_LINKED, _link), (MARTS_COPIED, _copy)):
        for name in names:
            if (paths.marts / name).exists():
                put(paths.marts / name, folder / "marts" / name)
                added.append(name)
    return added


def add_model(paths: Paths, folder: Path) -> str:
    registry = Registry(paths.models)
    current = registry.current()
    if current is None:
        raise PublishError(f"no current model under {paths.models} (run `make train`)")
    challenger = registry.challenger()
    for version in (current, challenger) if challenger is not None else (current,):
        target = folder / "models" / version.name
        for item in sorted(version.iterdir()):  # top-level files only: strategies/ are not served
            if item.is_file():
                (_link if item.name in MODEL_LINKED else _copy)(item, target / item.name)
    for pointer in ("CURRENT", "HISTORY"):
        (folder / "models" / pointer).write_text(current.name + "\n")
    if challenger is not None:
        (folder / "models" / "CHALLENGER").write_text(challenger.name + "\n")
    return current.name


def add_feast(paths: Paths, folder: Path) -> dict[str, Any]:
    """Registry and online store copied, sources linked, the registry re-pointed at the version's
    sources (in process: the definitions are unchanged, only paths move; materialisation
    intervals and the online tables stay)."""
    working = feature_store(paths)
    registry = Path(working.config.registry.path)
    if not registry.exists():
        raise PublishError(f"no Feast registry at {registry} (run `make features`)")
    _copy(registry, folder / _inside(registry, paths.data))
    online = working.config.online_store
    kind = getattr(online, "type", "sqlite")
    if kind == "sqlite":
        _copy_sqlite(Path(online.path), folder / _inside(Path(online.path), paths.data))
    store = feature_store(Paths(data=folder, reports=paths.reports))
    repoint_sources(store, paths.data, folder)
    store = feature_store(Paths(data=folder, reports=paths.reports))  # read back what serving will read
    seeded = seed_feedback(store, paths.data / "feedback_export") if kind == "sqlite" else {"customers": 0, "until": None}
    return {"online_store": kind if kind == "sqlite" else f"{kind} (shared between versions)", **seeded}


def repoint_sources(store, old_root: Path, new_root: Path) -> None:
    """Point every file source the registry holds under ``old_root`` at the same path under
    ``new_root`` (hard-linking the file there when it is not yet), and apply the change."""
    from feast import FileSource

    changed: list[Any] = []

    def repoint(source) -> None:
        old = Path(source.path)
        new = new_root / _inside(old, old_root)
        if not new.exists():
            _link(old, new)
        source.file_options.uri = str(new)

    for source in store.list_data_sources():
        if isinstance(source, FileSource):
            repoint(source)
            changed.append(source)
        elif isinstance(getattr(source, "batch_source", None), FileSource):
            repoint(source.batch_source)
            changed.append(source)
    for view in store.list_feature_views():
        for source in (view.batch_source, getattr(view.stream_source, "batch_source", None)):
            if isinstance(source, FileSource):
                repoint(source)
        changed.append(view)
    store.apply(changed, partial=True)


def seed_feedback(store, export_dir: Path) -> dict[str, Any]:
    """Each customer's latest feedback aggregates from the export into the version's online store
    (serving's pushes went into the previous version's store). Serving pushes whatever was
    answered after ``until`` when it loads the version."""
    source = Path(store.get_feature_view(FEEDBACK_VIEW).batch_source.path)
    if not source.exists():
        return {"customers": 0, "until": None}
    con = duckdb.connect()
    frame = con.execute("""select * from read_parquet(?)
                           qualify row_number() over (partition by customer_id order by event_timestamp desc) = 1""",
                        [str(source)]).df()
    if frame.empty:
        return {"customers": 0, "until": None}
    zone = _export_timezone(export_dir)
    for column in ("event_timestamp", "fb_last_response_ts"):  # the export's naive local times, as UTC
        stamps = pd.to_datetime(frame[column])
        if stamps.dt.tz is None:
            stamps = stamps.dt.tz_localize(zone, ambiguous="NaT", nonexistent="shift_forward")
        frame[column] = stamps.dt.tz_convert("UTC")
    OnlineFeatures(store).push_feedback(frame)
    return {"customers": int(len(frame)), "until": frame["event_timestamp"].max().isoformat()}


def _export_timezone(export_dir: Path) -> str:
    try:
        return json.loads((export_dir / "_manifest.json").read_text())["timezone"]
    except (OSError, ValueError, KeyError):
        return os.environ.get("LINGXI_TIMEZONE", "Asia/Shanghai")


def add_scores(paths: Paths, folder: Path) -> dict[str, Any]:
    """The stage-one table (its source stamp moved to the version's feature source, which is the
    same file) and the match reference."""
    table = StageOneTable.load(paths.data / "scores")
    if table is None:
        raise PublishError(f"no stage-one table under {paths.data / 'scores'} (run `make score`)")
    meta = dict(table.meta)
    working_source = Path(meta.get("feature_source", {}).get("path", ""))
    try:
        stale = meta.get("feature_source") != source_stamp(working_source)
    except OSError:
        stale = True
    if stale:
        raise PublishError("the stage-one table was scored over another feature source (run `make score`)")
    new_source = folder / _inside(working_source, paths.data)
    if not new_source.exists():
        _link(working_source, new_source)
    meta["feature_source"] = source_stamp(new_source)
    copy_table(table.folder, folder / "scores" / TABLE_DIR, meta)
    if (paths.data / "scores" / REFERENCE_FILE).exists():
        _copy(paths.data / "scores" / REFERENCE_FILE, folder / "scores" / REFERENCE_FILE)
    if (paths.data / "scores" / "stage_one.parquet").exists():  # written by rename: a link is safe
        _link(paths.data / "scores" / "stage_one.parquet", folder / "scores" / "stage_one.parquet")
    out = {"stage_one_table": table.version()}
    if Registry(paths.models).challenger() is not None:  # the challenger's table, scored over the same source
        scores = paths.data / "scores" / CHALLENGER_DIR
        challenger = StageOneTable.load(scores)
        if challenger is None or challenger.meta.get("feature_source") != table.meta.get("feature_source"):
            raise PublishError("the challenger has no stage-one table over tonight's features (run `make score`)")
        copy_table(challenger.folder, folder / "scores" / CHALLENGER_DIR / TABLE_DIR,
                   {**challenger.meta, "feature_source": meta["feature_source"]})
        _copy(scores / REFERENCE_FILE, folder / "scores" / CHALLENGER_DIR / REFERENCE_FILE)
        out["challenger_table"] = challenger.version()
    return out


def validate(folder: Path, reports: Path) -> dict[str, Any]:
    """Load the version as a worker will; refuse it unless stage one answers from its table."""
    version_paths = Paths(data=folder, reports=reports)
    engine = load_engine(folder)
    table = StageOneTable.load(folder / "scores")
    s1 = engine.stage_one_scorer
    problems = table.problems(s1.model_version, s1.products, s1.values, feature_source(version_paths, engine.online.store))
    if problems or engine.table is None:
        raise PublishError(f"the stage-one table would not be used: {'; '.join(problems) or 'not loaded'} "
                           "(run `make score`)")
    customer = table.ids[0].decode()
    ranking = engine.stage_one(customer, 5)
    if Registry(folder / "models").challenger() is not None:
        if engine.challenger is None or engine.challenger.table is None:
            raise PublishError("the challenger would not be served from its stage-one table (run `make score`)")
        engine.challenger.stage_one(customer, 5)
    if engine.customer_profile(customer) is None:
        raise PublishError("the version's online store has no features for a customer of its table")
    return {"model_version": s1.model_version, "versions": dict(engine.versions()),
            "smoke_products": len(ranking.products)}


def _sync_tree(folder: Path) -> None:
    """fsync every file and directory of the version before the pointer names it."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


# -- the step ----------------------------------------------------------------------------------
def publish(paths: Paths, keep: int = 3) -> dict[str, Any]:
    """Assemble, validate and switch to a new version (nothing switches if any step fails)."""
    started = time.perf_counter()
    with publication_lock(paths.data):
        version = new_version_id()
        folder = version_dir(paths.data, version)
        folder.mkdir(parents=True)
        try:
            marts = add_marts(paths, folder)
            model = add_model(paths, folder)
            scores = add_scores(paths, folder)
            feast = add_feast(paths, folder)
            checks = validate(folder, paths.reports)
            manifest = {"version": version, "published_at": datetime.now(timezone.utc).isoformat(),
                        "model_version": checks["model_version"], "model_dir": model,
                        "stage_one_table": scores["stage_one_table"],
                        "challenger_table": scores.get("challenger_table"),
                        "marts": marts, "online_store": feast["online_store"],
                        "feedback_seeded": {"customers": feast["customers"], "until": feast["until"]},
                        "engine_versions": checks["versions"]}
            write_manifest(folder, manifest)
            _sync_tree(folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        switch(paths.data, version)
        pruned = prune(paths.data, keep)
    return {**manifest, "pruned": pruned, "publish_s": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.engine.publish", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=int, default=3, help="finished versions to keep (default 3; >= 2)")
    args = parser.parse_args(argv)
    try:
        result = publish(Paths.from_env(), keep=max(2, args.keep))
    except PublishError as exc:
        print(f"error: {exc}; the current version is unchanged", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=json_default))
    return 0


if __name__ == "__main__":
    sys.exit(main())
