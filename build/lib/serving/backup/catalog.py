"""The backup directory: one manifest (JSON) per backup, written last, so a backup without a manifest
does not exist; the chain a restore applies (the last full, then its incrementals in order).

A manifest: ``name`` (UTC stamp + kind), ``kind`` (full | incremental), ``backend`` (sqlite |
postgresql), ``file`` and its ``sha256``, ``started_at`` (before anything was read), ``watermark``
(every feedback row with ``seq`` at or below it is in this backup or an earlier one of its chain),
``base`` (the full it builds on) and ``previous`` (the backup it continues), ``rows`` per table.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

KINDS = ("full", "incremental")
FULL_EVERY = timedelta(days=7)  # the bank's schedule: weekly full, daily incremental


class BackupError(RuntimeError):
    """A backup or restore that cannot go ahead (missing chain, checksum mismatch, non-empty target)."""


@dataclass
class Manifest:
    name: str
    kind: str
    backend: str
    file: str
    sha256: str
    started_at: str
    finished_at: str
    watermark: int
    base: str | None = None
    previous: str | None = None
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def started(self) -> datetime:
        return datetime.fromisoformat(self.started_at)


def new_name(kind: str, now: datetime, directory: Path) -> str:
    """``20250701T020000Z-full``; a suffix keeps two backups in the same second apart."""
    stem = f"{now.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}-{kind}"
    name, n = stem, 1
    while (directory / f"{name}.json").exists():
        n += 1
        name = f"{stem}-{n}"
    return name


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    """Write-temp-then-rename: the manifest appears whole or not at all."""
    path = directory / f"{manifest.name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(manifest), indent=2, sort_keys=True), encoding="utf-8")
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def manifests(directory: Path) -> list[Manifest]:
    """Every complete backup in the directory, oldest first."""
    if not directory.exists():
        return []
    out = [Manifest(**json.loads(p.read_text(encoding="utf-8"))) for p in directory.glob("*.json")]
    return sorted(out, key=lambda m: (m.started_at, m.name))


def latest_chain(directory: Path, backend: str | None = None) -> list[Manifest]:
    """The newest full and the incrementals that continue it, in order."""
    chain: list[Manifest] = []
    for manifest in manifests(directory):
        if backend is not None and manifest.backend != backend:
            continue
        if manifest.kind == "full":
            chain = [manifest]
        elif chain and manifest.previous == chain[-1].name:
            chain.append(manifest)
    return chain


def chain_until(directory: Path, name: str | None) -> list[Manifest]:
    """The chain that ends at backup ``name`` (the newest backup when None)."""
    every = {m.name: m for m in manifests(directory)}
    if not every:
        raise BackupError(f"no backups in {directory}")
    if name is None:
        chain = latest_chain(directory)
        if not chain:
            raise BackupError(f"no full backup in {directory}")
        return chain
    if name not in every:
        raise BackupError(f"no backup named {name!r} in {directory}")
    chain = [every[name]]
    while chain[0].kind != "full":
        previous = chain[0].previous
        if previous not in every:
            raise BackupError(f"{chain[0].name} continues {previous!r}, which is missing")
        chain.insert(0, every[previous])
    return chain


def choose_kind(directory: Path, backend: str, now: datetime) -> str:
    """``auto``: a full when there is none of this backend or the last is a week old, else incremental."""
    chain = latest_chain(directory, backend)
    if not chain or now - chain[0].started >= FULL_EVERY:
        return "full"
    return "incremental"


def verify(directory: Path, manifest: Manifest) -> Path:
    path = directory / manifest.file
    if not path.exists():
        raise BackupError(f"{manifest.name}: {manifest.file} is missing")
    if sha256(path) != manifest.sha256:
        raise BackupError(f"{manifest.name}: {manifest.file} does not match its checksum")
    return path
