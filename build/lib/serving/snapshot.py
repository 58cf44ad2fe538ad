"""Immutable, in-memory snapshots of the ``customer_360`` mart, swapped atomically.

Serving never opens the warehouse ``.duckdb`` file. It reads the Parquet export of the mart into
numpy columns sorted by customer id (one copy per worker process) and answers lookups and segment
filters from memory. The managers' books (``manager_books.parquet``, ``serving.books``) are read
from the same place in the same load and kept on the snapshot, so the customers and who may see
them never come from two versions. Two ways to publish a new snapshot, checked at most every
``LINGXI_SNAPSHOT_CHECK_SECONDS`` by a request:

1. Preferred: ``marts/_CURRENT`` holds the name of a sub-directory (``marts/<name>/customer_360.parquet``),
   written by the pipeline with write-temp-then-rename after the directory is complete. The name is
   the snapshot version.
2. Otherwise ``marts/customer_360.parquet`` itself; its (mtime, inode, size), with the books
   file's, is the version. Writers should replace it by rename; a half-written file fails to parse
   and the old snapshot stays.

A new snapshot is loaded off to the side (a background thread by default) and then published by a
single reference assignment; a request keeps the snapshot object it started with, so in-flight
requests finish on the old data and the old arrays are freed when the last of them ends.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml.core.catalogue import Catalogue

from .books import MANAGER_BOOKS_FILE, Books, BooksError, load_books

log = logging.getLogger("lingxi.serving")

# ---------------------------------------------------------------------------------------------
# The column mapping: the only place that knows the mart's column names (owned by the dbt models).
CUSTOMER_360_FILE = "customer_360.parquet"
RECENT_EVENTS_FILE = "customer_recent_events.parquet"  # optional; one row per recent event
POINTER_FILE = "_CURRENT"
CORE_COLUMNS = {  # meaning -> column (all required)
    "customer_id": "customer_id",        # 32-char hex
    "age": "age",                        # int years
    "asset_level": "asset_level",        # L1..L5
    "assets_cny": "assets_cny",          # double
    "risk_preference": "risk_preference",  # conservative .. aggressive
    "region_code": "region_code",        # 6-digit code (string or int)
}
HOLDING_COLUMN = "holds_{product}"        # per product (id lower-cased), boolean or 0/1
CATEGORY_COUNT_COLUMNS = ("n_held_{category}", "n_{category}_products")  # first present wins; else holds_ flags
TRIGGER_COLUMNS = {  # trigger -> days since its latest event (null = never)
    "salary_credit": "days_since_salary_credit",
    "deposit_maturity": "days_since_deposit_maturity",
    "card_replacement": "days_since_card_replacement",
}
AS_OF_COLUMN = "as_of_ts"                 # optional: when the mart's data was cut
RECENT_EVENT_COLUMNS = ("customer_id", "event_time", "event_type", "product_id", "amount", "channel")
# ---------------------------------------------------------------------------------------------
ASSET_LEVELS = ("L1", "L2", "L3", "L4", "L5")
RISK_PREFERENCES = ("conservative", "cautious", "balanced", "growth", "aggressive")
_POINTER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class SnapshotError(RuntimeError):
    """The snapshot files are missing or unusable."""


@dataclass(frozen=True)
class Source:
    version: str
    customer_360: Path
    recent_events: Path | None
    manager_books: Path | None = None


def resolve_source(marts: Path) -> Source | None:
    """Which files make up the current snapshot, and its version (None when there is none yet)."""
    pointer = marts / POINTER_FILE
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        name = None
    if name is not None:
        if not _POINTER_NAME.match(name) or name in {".", ".."}:
            raise SnapshotError(f"{pointer} does not name a snapshot directory")
        base = marts / name
        path = base / CUSTOMER_360_FILE
        if not path.exists():
            raise SnapshotError(f"{pointer} points at {name!r}, which has no {CUSTOMER_360_FILE}")
        version = name
    else:
        base = marts
        path = marts / CUSTOMER_360_FILE
        stamps = []
        for file in (path, marts / MANAGER_BOOKS_FILE):  # a new books file is a new version too
            try:
                st = os.stat(file)
            except FileNotFoundError:
                if file == path:
                    return None
                continue
            stamps.append(f"{st.st_mtime_ns}:{st.st_ino}:{st.st_size}")
        version = "f" + hashlib.sha1("|".join(stamps).encode()).hexdigest()[:12]
    events = base / RECENT_EVENTS_FILE
    books = base / MANAGER_BOOKS_FILE
    return Source(version, path, events if events.exists() else None, books if books.exists() else None)


def _dictionary(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """Codes (int16, -1 for null) and labels of a string-like column."""
    encoded = pc.dictionary_encode(pc.cast(column, pa.string())).combine_chunks()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int16)
    return codes, [str(v) for v in encoded.dictionary.to_pylist()]


@dataclass
class Snapshot:
    """One immutable customer_360 snapshot, sorted by customer id. Do not mutate."""

    version: str
    loaded_at: datetime
    ids: np.ndarray                          # S32, sorted, unique
    age: np.ndarray                          # int16, -1 unknown
    assets: np.ndarray                       # float64, NaN unknown
    asset_level: tuple[np.ndarray, list[str]]
    risk: tuple[np.ndarray, list[str]]
    region: tuple[np.ndarray, list[str]]
    holds: dict[str, np.ndarray]             # product id -> bool
    holds_category: dict[str, np.ndarray]    # category -> bool
    days_since: dict[str, np.ndarray]        # trigger -> float32, NaN never
    recent_events: Path | None
    warnings: list[str] = field(default_factory=list)
    as_of: str | None = None
    books: Books | None = None               # the managers' books of this same version

    def __post_init__(self) -> None:
        if self.books is None:
            self.books = Books.empty(self.rows)

    @property
    def rows(self) -> int:
        return int(self.ids.shape[0])

    def index_of(self, customer_id: str) -> int | None:
        key = customer_id.upper().encode("ascii")
        i = int(np.searchsorted(self.ids, key))
        return i if i < self.rows and self.ids[i] == key else None

    def _label(self, pair: tuple[np.ndarray, list[str]], i: int) -> str | None:
        code = int(pair[0][i])
        return pair[1][code] if code >= 0 else None

    def summary(self, i: int) -> dict[str, Any]:
        assets = float(self.assets[i])
        age = int(self.age[i])
        return {
            "customer_id": self.ids[i].decode("ascii"),
            "age": age if age >= 0 else None,
            "asset_level": self._label(self.asset_level, i),
            "assets_cny": assets if np.isfinite(assets) else None,
            "risk_preference": self._label(self.risk, i),
            "region_code": self._label(self.region, i),
        }

    def holdings(self, i: int) -> list[str]:
        return [product for product, flags in self.holds.items() if flags[i]]

    def triggers(self, i: int) -> dict[str, int | None]:
        out = {}
        for trigger, days in self.days_since.items():
            value = float(days[i])
            out[trigger] = int(value) if np.isfinite(value) else None
        return out


def load_snapshot(source: Source, catalogue: Catalogue) -> Snapshot:
    """Read the Parquet file into sorted numpy columns (raises ``SnapshotError``)."""
    try:
        schema = pq.read_schema(source.customer_360)
    except (OSError, pa.ArrowException) as exc:
        raise SnapshotError(f"cannot read {source.customer_360.name}: {exc}") from exc
    names = set(schema.names)
    missing = [col for col in CORE_COLUMNS.values() if col not in names]
    if missing:
        raise SnapshotError(f"{source.customer_360.name} lacks required columns {missing}")
    warnings: list[str] = []
    holding_cols = {p: HOLDING_COLUMN.format(product=p.lower()) for p in catalogue.ids}
    category_cols = {c: next((n.format(category=c) for n in CATEGORY_COUNT_COLUMNS if n.format(category=c) in names),
                             CATEGORY_COUNT_COLUMNS[0].format(category=c)) for c in catalogue.category_names}
    wanted = list(CORE_COLUMNS.values())
    wanted += [col for col in category_cols.values() if col in names]
    wanted += [AS_OF_COLUMN] if AS_OF_COLUMN in names else []
    for label, cols in (("holding", holding_cols), ("trigger", TRIGGER_COLUMNS)):
        absent = sorted(col for col in cols.values() if col not in names)
        if absent:
            warnings.append(f"missing {label} columns (treated as none): {', '.join(absent)}")
        wanted += [col for col in cols.values() if col in names]
    try:
        table = pq.read_table(source.customer_360, columns=wanted)
    except (OSError, pa.ArrowException) as exc:
        raise SnapshotError(f"cannot read {source.customer_360.name}: {exc}") from exc

    raw_ids = pc.utf8_upper(pc.cast(table[CORE_COLUMNS["customer_id"]], pa.string())).combine_chunks()
    valid = pc.and_(pc.is_valid(raw_ids), pc.match_substring_regex(raw_ids, r"^[0-9A-F]{32}$")).fill_null(False)
    n_bad = len(raw_ids) - pc.sum(valid).as_py() if len(raw_ids) else 0
    if n_bad:
        warnings.append(f"{n_bad} rows with malformed customer ids were skipped")
        table = table.filter(valid)
        raw_ids = raw_ids.filter(valid)
    ids = np.array(raw_ids.to_numpy(zero_copy_only=False), dtype="S32")
    if len(ids) < 2 or bool((ids[1:] > ids[:-1]).all()):  # the mart is already sorted and unique
        unique_ids, order = ids, np.arange(len(ids))
    else:
        unique_ids, order = np.unique(ids, return_index=True)
    if len(unique_ids) < len(ids):
        warnings.append(f"{len(ids) - len(unique_ids)} duplicate customer ids (first row kept)")

    def numeric(col: str, dtype: Any, fill: Any) -> np.ndarray:
        arr = pc.cast(table[col], pa.float64()).fill_null(fill).to_numpy()
        return arr[order].astype(dtype)

    def codes(col: str) -> tuple[np.ndarray, list[str]]:
        values, labels = _dictionary(table[col])
        return values[order], labels

    holds = {}
    for product, col in holding_cols.items():
        holds[product] = (pc.cast(table[col], pa.bool_()).fill_null(False).to_numpy(zero_copy_only=False)[order]
                          if col in names else np.zeros(len(order), dtype=bool))
    holds_category = {}
    for category, col in category_cols.items():
        if col in names:
            holds_category[category] = numeric(col, np.float64, 0.0) > 0
        else:
            flags = np.zeros(len(order), dtype=bool)
            for product in catalogue.in_category(category):
                flags |= holds[product]
            holds_category[category] = flags
    days = {t: (numeric(col, np.float32, np.nan) if col in names else np.full(len(order), np.nan, np.float32))
            for t, col in TRIGGER_COLUMNS.items()}
    if source.recent_events is None:
        warnings.append(f"{RECENT_EVENTS_FILE} not found: lookups return no recent events")
    as_of = pc.max(table[AS_OF_COLUMN]).as_py() if AS_OF_COLUMN in names else None
    try:
        books = load_books(source.manager_books, unique_ids, warnings)
    except BooksError as exc:  # a snapshot without its books would show managers the wrong customers
        raise SnapshotError(str(exc)) from exc
    return Snapshot(
        version=source.version,
        loaded_at=datetime.now(timezone.utc),
        ids=unique_ids,
        age=numeric(CORE_COLUMNS["age"], np.int16, -1),
        assets=numeric(CORE_COLUMNS["assets_cny"], np.float64, np.nan),
        asset_level=codes(CORE_COLUMNS["asset_level"]),
        risk=codes(CORE_COLUMNS["risk_preference"]),
        region=codes(CORE_COLUMNS["region_code"]),
        holds=holds,
        holds_category=holds_category,
        days_since=days,
        recent_events=source.recent_events,
        warnings=warnings,
        as_of=as_of.isoformat() if isinstance(as_of, (datetime, date)) else None,
        books=books,
    )


class SnapshotManager:
    """Holds the current snapshot and swaps in a new one when the files change."""

    def __init__(self, marts: Path, catalogue: Catalogue, *, check_seconds: float = 5.0,
                 background: bool = True) -> None:
        self.marts = marts
        self.catalogue = catalogue
        self.check_seconds = check_seconds
        self.background = background
        self._current: Snapshot | None = None
        self._lock = threading.Lock()       # one loader at a time
        self._checked = 0.0
        self.last_error: str | None = None
        self._failed_version: str | None = None

    def current(self) -> Snapshot | None:
        """The snapshot to use for this request (may trigger a check for a newer one)."""
        if time.monotonic() - self._checked >= self.check_seconds:
            self.maybe_refresh()
        return self._current

    def maybe_refresh(self) -> None:
        """Cheap check (a stat or a pointer read); load only when a new version is published."""
        self._checked = time.monotonic()
        if self._lock.locked():
            return
        try:
            source = resolve_source(self.marts)
        except (SnapshotError, OSError) as exc:
            self.last_error = str(exc)
            return
        if source is None or (self._current is not None and source.version == self._current.version):
            return
        if self.background and self._current is not None:
            threading.Thread(target=self.refresh, name="lingxi-snapshot", daemon=True).start()
        else:
            self.refresh()

    def refresh(self) -> bool:
        """Load the published snapshot if it is new; True when a new one was swapped in."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            try:
                source = resolve_source(self.marts)
            except (SnapshotError, OSError) as exc:
                self.last_error = str(exc)
                return False
            if source is None:
                if self._current is None:
                    self.last_error = f"no {CUSTOMER_360_FILE} under {self.marts}"
                return False
            if self._current is not None and source.version == self._current.version:
                return False
            started = time.perf_counter()
            try:
                snapshot = load_snapshot(source, self.catalogue)
            except SnapshotError as exc:
                self.last_error = str(exc)
                if source.version != self._failed_version:
                    log.warning("snapshot %s not loaded: %s", source.version, exc)
                self._failed_version = source.version
                return False
            self._current = snapshot  # the atomic swap
            self.last_error = None
            log.info("snapshot %s loaded: %d customers in %.0f ms", snapshot.version, snapshot.rows,
                     (time.perf_counter() - started) * 1000, extra={"event": "snapshot_loaded"})
            return True
        finally:
            self._lock.release()
