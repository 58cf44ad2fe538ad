"""``python -m serving.backup``: back up, restore and list the feedback store's backups.

    python -m serving.backup backup [--kind auto|full|incremental] [--url URL] [--dir DIR]
    python -m serving.backup restore --to URL [--at NAME] [--force] [--dir DIR]
    python -m serving.backup list [--dir DIR]

``--url`` defaults to the app's store (``LINGXI_FEEDBACK_DB_URL``, else ``<data dir>/feedback.db``);
``--dir`` to ``LINGXI_BACKUP_DIR``, else ``<data dir>/backups``. ``auto`` takes a full backup when the
last full is a week old (or there is none) and an incremental otherwise: run it daily.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from ..config import finalise, from_env
from ..store import redact
from . import BackupError, backup, default_directory, manifests, restore


def _default_url() -> str:
    return finalise(from_env())["LINGXI_FEEDBACK_DB_URL"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.backup", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    take = commands.add_parser("backup", help="take a backup (full or incremental)")
    take.add_argument("--kind", choices=["auto", "full", "incremental"], default="auto",
                      help="auto: full when the last full is a week old, else incremental")
    take.add_argument("--url", help="the store to back up (default: the app's)")
    back = commands.add_parser("restore", help="restore the last full and its incrementals")
    back.add_argument("--to", required=True, help="the store to restore into: sqlite:///path or postgresql://...")
    back.add_argument("--at", help="restore up to this backup (default: the newest)")
    back.add_argument("--force", action="store_true", help="replace an existing store at --to")
    commands.add_parser("list", help="list the backups, oldest first")
    for sub in commands.choices.values():
        sub.add_argument("--dir", type=Path, help="backup directory (default: LINGXI_BACKUP_DIR or <data>/backups)")
    args = parser.parse_args(argv)
    directory = args.dir or default_directory()
    try:
        if args.command == "backup":
            url = args.url or _default_url()
            manifest = backup(url, directory, args.kind)
            print(json.dumps({"backup": manifest.name, "kind": manifest.kind, "store": redact(url),
                              "file": str(directory / manifest.file), "watermark": manifest.watermark,
                              "rows": manifest.rows}, ensure_ascii=False))
        elif args.command == "restore":
            chain = restore(directory, args.to, args.at, args.force)
            print(json.dumps({"restored": [m.name for m in chain], "into": redact(args.to)}))
        else:
            for manifest in manifests(directory):
                print(json.dumps(asdict(manifest), ensure_ascii=False, sort_keys=True))
    except BackupError as exc:
        print(f"backup: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
