"""The nightly job's model steps over a private copy of the trained test bank, and a way to kill
one of them at a chosen point.

    python night_steps.py STEP MODULE:FUNCTION

runs STEP (``train``, ``score`` or ``publish``) in this process and SIGKILLs the process as soon
as it calls FUNCTION (looked up in MODULE, where the step calls it): no ``finally`` block, no
clean-up runs, as when the machine's OOM killer or an operator ends the night. ``-`` instead of
MODULE:FUNCTION runs the step to the end."""
from __future__ import annotations

import importlib
import os
import shutil
import signal
import sys
from pathlib import Path

HERE_FILE = Path(__file__).resolve()
ROOT = HERE_FILE.parents[2]


def working_dir(trained_data_dir: Path, tmp_path: Path) -> Path:
    """A private working data dir over the trained test bank (marts and raw linked, Feast registry
    re-pointed at private sources, its own copy of the model registry)."""
    from ml.core.config import Paths
    from ml.engine.publish import repoint_sources
    from ml.features.snapshot import feature_store

    root = tmp_path / "data"
    for name in ("raw", "marts"):
        (root / name).mkdir(parents=True)
        for item in (trained_data_dir / name).iterdir():
            (root / name / item.name).symlink_to(item)
    (root / "feast").mkdir()
    for name in ("registry.db", "online_store.db"):
        shutil.copy(trained_data_dir / "feast" / name, root / "feast" / name)
    shutil.copytree(trained_data_dir / "models", root / "models", symlinks=True,
                    ignore=shutil.ignore_patterns("strategies"))
    repoint_sources(feature_store(Paths(data=root, reports=tmp_path / "reports")), trained_data_dir, root)
    return root


def night(paths, sample: int, retrain: bool) -> dict:
    """One nightly job's model steps: (stub) train, score, publish."""
    from ml.engine.publish import publish
    from ml.recommendation.batch import batch_score
    from ml.training.model import PropensityModel
    from ml.training.registry import Registry

    if retrain:
        registry = Registry(paths.models)
        model = PropensityModel.load(registry.current())
        folder = registry.new_version()
        model.metadata["version"] = folder.name
        model.save(folder)
        registry.promote(folder.name)
    batch_score(paths, k=5, sample=sample, check=False)
    return publish(paths)


def run_step(step: str) -> None:
    from ml.core.config import Paths

    paths = Paths.from_env()
    if step == "train":
        from ml.training.train import train

        train(paths, seed=7, min_non_adopters=15_000)  # as the test bank's fixture trains
    elif step == "score":
        from ml.recommendation.batch import batch_score

        batch_score(paths, k=5, sample=3000, check=False)
    elif step == "publish":
        from ml.engine.publish import publish

        publish(paths)
    else:
        raise SystemExit(f"unknown step {step!r}")


def die_in(target: str) -> None:
    module_name, _, attr = target.partition(":")
    owner = importlib.import_module(module_name)
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)

    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(owner, name, killed)


if __name__ == "__main__":
    if sys.argv[2] != "-":
        die_in(sys.argv[2])
    run_step(sys.argv[1])
