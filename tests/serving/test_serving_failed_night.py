"""A failed night changes nothing: the nightly job's model steps (train, score, publish) killed
with SIGKILL at several points leave the previous version serving, unchanged, and the next run
publishes a new version. The real steps run in a child process (``night_steps.py``), killed when
they reach the chosen function; the API answers from the real engine in this process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from night_steps import HERE_FILE, ROOT, night, working_dir

from ml.core.versions import current_version, published, read_manifest, version_dir, versions_root
from serving import create_app
from serving.release import VERSION_HEADER
from serving.tokens import add_token

V1 = "/api/v1"
# (step, where it dies): every stage of the model's night, from a half-saved model to a switch
# whose clean-up never ran
KILL_POINTS = [
    ("train", "ml.training.train:save_feature_profile"),       # model files written, not registered
    ("score", "ml.recommendation.stage_one_table:write"),     # the reference rewritten, the table not
    ("publish", "ml.engine.publish:add_feast"),               # half a version directory
    ("publish", "ml.engine.publish:write_manifest"),          # validated, never finished
    ("publish", "ml.engine.publish:prune"),                   # switched, old versions not pruned
]


def _step(data_dir: Path, reports: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LINGXI_DATA_DIR": str(data_dir), "LINGXI_REPORTS_DIR": str(reports),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(HERE_FILE), *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=900)


def _answer(client, headers, customer: tuple[str, str]) -> tuple[int, str | None, str | None]:
    r = client.post(f"{V1}/recommendations", json={"customer_id": customer[0], "manager_id": customer[1]},
                    headers=headers)
    assert r.status_code == 201, r.json
    return r.status_code, r.headers.get(VERSION_HEADER), (r.json or {}).get("model_version")


@pytest.mark.slow
def test_a_night_killed_at_any_step_leaves_the_previous_version_serving(trained_data_dir, tmp_path):
    from ml.core.config import Paths
    from ml.recommendation.stage_one_table import StageOneTable

    data_dir, reports = working_dir(trained_data_dir, tmp_path), tmp_path / "reports"
    paths = Paths(data=data_dir, reports=reports)
    first = night(paths, sample=3000, retrain=False)
    import pandas as pd

    ids = {i.decode() for i in StageOneTable.load(version_dir(data_dir, first["version"]) / "scores").ids[:500]}
    books = pd.read_parquet(data_dir / "marts" / "manager_books.parquet", columns=["customer_id", "manager_id"])
    customer = next((c, m) for c, m in zip(books["customer_id"], books["manager_id"]) if c in ids and m)
    token = add_token(data_dir / "tokens.json", "crm-night", "crm")
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app({"LINGXI_DATA_DIR": data_dir, "LINGXI_TOKENS_FILE": data_dir / "tokens.json",
                      "LINGXI_SNAPSHOT_BACKGROUND_RELOAD": False, "LINGXI_SNAPSHOT_CHECK_SECONDS": 0,
                      "LINGXI_RATE_LIMITS": "off", "LINGXI_LOG_LEVEL": "WARNING", "LINGXI_PUSH_INTERVAL_SECONDS": 0})
    client = app.test_client()
    status, version, model = _answer(client, headers, customer)
    assert (status, version, model) == (201, first["version"], first["model_version"])

    serving = first
    for step, target in KILL_POINTS:
        before = set(os.listdir(versions_root(data_dir)))
        result = _step(data_dir, reports, step, target)
        assert result.returncode == -9, (step, target, result.stderr[-2000:])
        now = current_version(data_dir)  # the pointer names a finished version, whatever was killed
        if target.endswith(":prune"):  # killed after the switch: the new version is whole and served
            assert now != serving["version"] and now in published(data_dir)
            serving = {"version": now, **read_manifest(version_dir(data_dir, now))}
        else:
            assert now == serving["version"], (step, target)
        assert _answer(client, headers, customer) == (201, serving["version"], serving["model_version"]), target
        fresh = create_app({**app.config, "LINGXI_ENGINE": "ml.engine.loading:load_engine"}).test_client()
        assert _answer(fresh, headers, customer)[:2] == (201, serving["version"]), target  # a restart too
        left = set(os.listdir(versions_root(data_dir))) - before - set(published(data_dir))
        assert all(not (versions_root(data_dir) / name / "manifest.json").exists() for name in left)

    # the next night recovers: score and publish run to the end, half-built directories are pruned
    for step in ("score", "publish"):
        recovered = _step(data_dir, reports, step, "-")
        assert recovered.returncode == 0, (step, recovered.stderr[-2000:])
    latest = current_version(data_dir)
    assert latest != serving["version"]
    assert _answer(client, headers, customer)[:2] == (201, latest)
    assert sorted(p.name for p in versions_root(data_dir).iterdir() if p.is_dir()) == published(data_dir)
    app.extensions["lingxi"].store.close()
