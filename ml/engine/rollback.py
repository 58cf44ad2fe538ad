"""Published versions with their model's metrics, and a rollback to an earlier version.

    python -m ml.engine.rollback list
    python -m ml.engine.rollback to 20250701T021500123456Z --by ops-wang [--reason "..."]

A rollback makes an earlier finished version current by the same one rename a publication ends
with (``ml.core.versions.switch``), under the publication lock, so it never interleaves with a
publication; serving's workers pick it up within seconds, without a restart. Every rollback is
appended to ``versions/rollbacks.jsonl`` (when, who, from, to, why). The console's Models page calls
the same functions. The next night's publication makes its new version current again.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ml.core.config import Paths
from ml.core.versions import (
    VersionError,
    current_version,
    publication_lock,
    published,
    read_manifest,
    switch,
    version_dir,
    versions_root,
)
from ml.training.registry import describe

AUDIT_FILE = "rollbacks.jsonl"


def summaries(data_dir: Path) -> list[dict[str, Any]]:
    """Every finished version, newest first: manifest facts, the model's metrics, which is current."""
    try:
        current = current_version(data_dir)
    except VersionError:
        current = None
    out = []
    for version in reversed(published(data_dir)):
        folder = version_dir(data_dir, version)
        manifest = read_manifest(folder)
        model_dir = folder / "models" / str(manifest.get("model_dir") or "")
        metrics = describe(model_dir) if manifest.get("model_dir") and model_dir.is_dir() else {}
        table = manifest.get("stage_one_table") or {}
        out.append({"version": version, "current": version == current,
                    "published_at": manifest.get("published_at"), "model_version": manifest.get("model_version"),
                    "data_snapshot": metrics.get("data_snapshot"), "fit_rows": metrics.get("fit_rows"),
                    "trees": metrics.get("trees"), "map_at_5": metrics.get("map_at_5"),
                    "recall_at_5": metrics.get("recall_at_5"), "top_decile_lift": metrics.get("top_decile_lift"),
                    "customers": table.get("customers") if isinstance(table, dict) else None})
    return out


def history(data_dir: Path, limit: int = 20) -> list[dict[str, Any]]:
    """The latest rollbacks, newest first."""
    path = versions_root(data_dir) / AUDIT_FILE
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in reversed(lines[-limit:]) if line.strip()]


def rollback(data_dir: Path, version: str, actor: str, reason: str = "") -> dict[str, Any]:
    """Make ``version`` (finished, not the current one) current, and record who did it and why."""
    with publication_lock(data_dir):
        previous = current_version(data_dir)
        if version not in published(data_dir):
            raise VersionError(f"{version!r} is not a finished version")
        if version == previous:
            raise VersionError(f"{version} is already current")
        switch(data_dir, version)
        record = {"at": datetime.now(timezone.utc).isoformat(), "by": actor, "from": previous, "to": version,
                  "reason": reason}
        with open(versions_root(data_dir) / AUDIT_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.engine.rollback", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="published versions, newest first (* = current)")
    to = sub.add_parser("to", help="make an earlier published version current")
    to.add_argument("version", help="the published version to make current (an id from `list`)")
    to.add_argument("--by", required=True, help="who rolls back (recorded)")
    to.add_argument("--reason", default="", help="why (recorded)")
    args = parser.parse_args(argv)
    data_dir = Paths.from_env().data
    if args.action == "list":
        for s in summaries(data_dir):
            print(f"{'*' if s['current'] else ' '} {s['version']}  model {s['model_version']}  "
                  f"MAP@5 {s['map_at_5'] if s['map_at_5'] is not None else '-'}  published {s['published_at']}")
        return 0
    try:
        print(json.dumps(rollback(data_dir, args.version, args.by, args.reason)))
    except VersionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
