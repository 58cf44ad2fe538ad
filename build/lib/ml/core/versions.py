"""Published versions: what serving reads, one directory per night, switched by one rename.

    data/versions/
      20250701T021500123456Z/   a self-contained data dir for serving: marts/, feast/, models/,
                                scores/ and manifest.json (written last: a directory without it is
                                unfinished and never named by the pointer)
      CURRENT                   the id of the version serving answers from

The nightly job builds in the working data dir; its last step (``ml.engine.publish``) assembles a
new version directory and then replaces ``CURRENT`` with a single ``os.replace``: every reader sees
either the old id or the new one, never a mix. A version is never modified after the switch.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

VERSIONS_DIR = "versions"
POINTER = "CURRENT"
MANIFEST = "manifest.json"
VERSION_ID = re.compile(r"^[0-9]{8}T[0-9]{12}Z$")


class VersionError(RuntimeError):
    """The pointer or a version directory is unusable."""


def versions_root(data_dir: Path) -> Path:
    return Path(data_dir) / VERSIONS_DIR


def version_dir(data_dir: Path, version: str) -> Path:
    if not VERSION_ID.match(version):
        raise VersionError(f"{version!r} is not a version id")
    return versions_root(data_dir) / version


def new_version_id(now: datetime | None = None) -> str:
    """A sortable id from the UTC time (microseconds; publications are serialised by a lock)."""
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def current_version(data_dir: Path) -> str | None:
    """The published version id, None when nothing was ever published (raises ``VersionError`` when
    the pointer names something that is not a finished version)."""
    pointer = versions_root(data_dir) / POINTER
    try:
        text = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    folder = version_dir(data_dir, text)
    if not (folder / MANIFEST).is_file():
        raise VersionError(f"{pointer} names {text!r}, which has no {MANIFEST}")
    return text


def read_manifest(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))


def write_file_durably(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file, fsync and rename (readers see old or new)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    write_file_durably(Path(folder) / MANIFEST, json.dumps(manifest, indent=2, default=str) + "\n")


def switch(data_dir: Path, version: str) -> None:
    """Make ``version`` current: one rename of the pointer (the only step readers can observe)."""
    folder = version_dir(data_dir, version)
    if not (folder / MANIFEST).is_file():
        raise VersionError(f"{folder} is not a finished version (no {MANIFEST})")
    write_file_durably(versions_root(data_dir) / POINTER, version + "\n")


def published(data_dir: Path) -> list[str]:
    """Finished versions, oldest first."""
    root = versions_root(data_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if VERSION_ID.match(p.name) and (p / MANIFEST).is_file())


def prune(data_dir: Path, keep: int = 3) -> list[str]:
    """Remove all but the ``keep`` newest finished versions (never the current one) and unfinished
    directories left by failed publications. Workers that are slow to switch read the previous
    version for a few seconds; ``keep`` >= 2 leaves it in place."""
    root = versions_root(data_dir)
    if not root.is_dir():
        return []
    try:
        current = current_version(data_dir)
    except VersionError:
        current = None
    finished = published(data_dir)
    doomed = [v for v in finished[: max(0, len(finished) - max(keep, 1))] if v != current]
    doomed += [p.name for p in root.iterdir()
               if p.is_dir() and VERSION_ID.match(p.name) and p.name not in finished and p.name != current]
    for name in doomed:
        shutil.rmtree(root / name, ignore_errors=True)
    return sorted(doomed)


@contextmanager
def publication_lock(data_dir: Path) -> Iterator[None]:
    """One publication at a time per data dir (a second one waits)."""
    root = versions_root(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
