"""The nightly stage-one lists (``scores/stage_one.parquet``) held in memory, for the call list.

A call list needs the nightly list of every customer of a book (thousands at full scale); scanning
the Parquet file per request costs seconds at a million customers. Each worker therefore keeps the
lists as sorted numpy columns (customer ids, offsets, product codes, probability, expected value,
match score: about 40 bytes per customer and 20 per list item), reloaded in a background thread when
the file is republished. While the first load runs, ``lists`` reads the file with DuckDB: slower,
the same answer.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

log = logging.getLogger("lingxi.serving")

FILE = Path("scores") / "stage_one.parquet"
COLUMNS = ["customer_id", "stage", "rank", "product_id", "probability", "score", "match_score"]


class Proposal(NamedTuple):
    """One product of a customer's nightly list: P(adopt), expected value (P x value), match 0..100."""

    product_id: str
    probability: float
    expected_value: float
    match_score: int


@dataclass(frozen=True)
class ListsIndex:
    stamp: tuple
    ids: np.ndarray          # S32, sorted, unique
    starts: np.ndarray       # int64 (n + 1): rows of customer i are starts[i]:starts[i + 1], best first
    product: np.ndarray      # int16 codes into products
    products: list[str]
    probability: np.ndarray  # float64
    value: np.ndarray        # float64
    match: np.ndarray        # int16

    def lists(self, customer_ids: Sequence[str]) -> dict[str, list[Proposal]]:
        if not len(customer_ids) or not len(self.ids):
            return {}
        keys = np.asarray([c.upper() for c in customer_ids], dtype="S32")
        at = np.minimum(np.searchsorted(self.ids, keys), len(self.ids) - 1)
        found = np.flatnonzero(self.ids[at] == keys)
        first, last = self.starts[at[found]], self.starts[at[found] + 1]
        lengths = last - first
        # every list item of the found customers at once, in customer order (no per-customer numpy calls)
        rows = np.repeat(first - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths) + np.arange(lengths.sum())
        names = [self.products[c] for c in self.product[rows].tolist()]
        items = list(map(Proposal._make, zip(names, self.probability[rows].tolist(), self.value[rows].tolist(),
                                             self.match[rows].tolist())))
        out, offset = {}, 0
        for j, n in zip(found.tolist(), lengths.tolist()):
            out[customer_ids[j]] = items[offset:offset + n]
            offset += n
        return out


def _stamp(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (str(path), st.st_mtime_ns, st.st_ino, st.st_size)


def load_index(path: Path, stamp: tuple) -> ListsIndex:
    """Read the stage-one rows, sorted by customer and rank, into numpy columns."""
    table = pq.read_table(path, columns=COLUMNS, filters=[("stage", "=", 1)])
    table = table.sort_by([("customer_id", "ascending"), ("rank", "ascending")])
    ids = pc.cast(pc.utf8_upper(pc.cast(table["customer_id"], pa.string())).combine_chunks(), pa.binary(32))
    flat = np.frombuffer(ids.buffers()[1], dtype="S32", count=len(ids), offset=ids.offset * 32)
    first = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]]) if len(flat) else np.empty(0, np.int64)
    products = pc.dictionary_encode(table["product_id"]).combine_chunks()
    return ListsIndex(
        stamp=stamp, ids=flat[first].copy(), starts=np.r_[first, len(flat)].astype(np.int64),
        product=products.indices.to_numpy(zero_copy_only=False).astype(np.int16),
        products=[str(p) for p in products.dictionary.to_pylist()],
        probability=table["probability"].to_numpy().astype(np.float64),
        value=table["score"].to_numpy().astype(np.float64),
        match=table["match_score"].to_numpy().astype(np.int16))


class NightlyLists:
    """The current index of ``<root>/scores/stage_one.parquet``, swapped when the file changes. ``root``
    (a callable) names the data dir of the version being served: a published version's own lists,
    else the working data dir's."""

    def __init__(self, root: Path | Callable[[], Path], *, background: bool = True,
                 check_seconds: float = 5.0) -> None:
        self._root = root if callable(root) else (lambda: Path(root))
        self.background = background
        self.check_seconds = check_seconds
        self._index: ListsIndex | None = None
        self._lock = threading.Lock()
        self._checked = float("-inf")
        self._duck = threading.local()

    @property
    def path(self) -> Path:
        """The file of the version being served (resolved in the request that asks)."""
        return Path(self._root()) / FILE

    def as_of(self) -> datetime | None:
        stamp = _stamp(self.path)
        return datetime.fromtimestamp(stamp[1] / 1e9, timezone.utc) if stamp else None

    def refresh(self, path: Path) -> None:
        """Load ``path`` if it is not what the index was built from (one loader at a time)."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            stamp = _stamp(path)
            if stamp is None:
                self._index = None
            elif self._index is None or self._index.stamp != stamp:
                started = time.perf_counter()
                self._index = load_index(path, stamp)
                log.info("nightly lists loaded: %d customers in %.0f ms", len(self._index.ids),
                         (time.perf_counter() - started) * 1000, extra={"event": "nightly_lists_loaded"})
        except (OSError, pa.ArrowException, ValueError) as exc:  # a file being replaced: try again later
            log.warning("nightly lists not loaded: %s", type(exc).__name__, extra={"event": "nightly_lists_failed"})
        finally:
            self._lock.release()

    def _maybe_refresh(self, path: Path, stamp: tuple | None) -> None:
        current = self._index.stamp if self._index is not None else None
        if stamp == current or time.monotonic() - self._checked < self.check_seconds:
            return
        self._checked = time.monotonic()
        if self.background:
            threading.Thread(target=self.refresh, args=(path,), name="lingxi-nightly-lists", daemon=True).start()
        else:
            self.refresh(path)

    def lists(self, customer_ids: Sequence[str]) -> dict[str, list[Proposal]]:
        """Each customer's nightly list, best first (customers without one are left out)."""
        path = self.path
        stamp = _stamp(path)
        self._maybe_refresh(path, stamp)
        index = self._index
        if index is not None and index.stamp == stamp:
            return index.lists(customer_ids)
        return self._scan(path, customer_ids)

    def _scan(self, path: Path, customer_ids: Sequence[str]) -> dict[str, list[Proposal]]:
        """The same answer straight from the file (while the index loads)."""
        if not path.exists() or not len(customer_ids):
            return {}
        conn = getattr(self._duck, "conn", None) or duckdb.connect(":memory:")
        self._duck.conn = conn
        try:
            rows = conn.execute(
                "SELECT customer_id, product_id, probability, score, match_score FROM read_parquet(?)"
                " WHERE stage = 1 AND customer_id IN (SELECT unnest(?)) ORDER BY customer_id, rank",
                [str(path), list(customer_ids)]).fetchall()
        except duckdb.Error as exc:
            log.warning("nightly lists unavailable: %s", type(exc).__name__, extra={"event": "nightly_lists_failed"})
            return {}
        out: dict[str, list[Proposal]] = {}
        for customer_id, product_id, probability, score, match in rows:
            out.setdefault(customer_id, []).append(Proposal(product_id, float(probability), float(score), int(match)))
        return out
