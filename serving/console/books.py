"""Managers' books of business, as the console scopes its pages by them.

A manager sees and works only the customers of their own book; an admin sees every book. The books
come from the ``manager_books`` mart (one row per customer: branch and manager), read next to the
customer snapshot and reloaded when the file changes. This is the console's one place that knows
the rule: the pages ask ``can_see`` / ``book_rows`` and nothing else.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ..auth import Principal
from ..snapshot import Snapshot, SnapshotError, resolve_source

BOOKS_FILE = "manager_books.parquet"
COLUMNS = ("customer_id", "manager_id", "branch_id", "branch_name_zh", "branch_name_en")


@dataclass(frozen=True)
class Branch:
    branch_id: str
    name_zh: str
    name_en: str


@dataclass(frozen=True)
class BookTable:
    """Customer ids sorted, with the index of each one's manager and branch."""

    ids: np.ndarray            # S32, sorted
    manager: np.ndarray        # int32 index into managers
    branch: np.ndarray         # int32 index into branches
    managers: tuple[str, ...]
    branches: tuple[Branch, ...]

    @classmethod
    def empty(cls) -> "BookTable":
        return cls(np.empty(0, "S32"), np.empty(0, np.int32), np.empty(0, np.int32), (), ())

    def position(self, customer_id: str) -> int | None:
        key = customer_id.upper().encode("ascii", "replace")
        i = int(np.searchsorted(self.ids, key))
        return i if i < len(self.ids) and self.ids[i] == key else None


def read_books(path: Path) -> BookTable:
    table = pq.read_table(path, columns=list(COLUMNS)).to_pandas()
    table = table.sort_values("customer_id", kind="stable").drop_duplicates("customer_id")
    managers, manager_codes = np.unique(table["manager_id"].astype(str).to_numpy(), return_inverse=True)
    keys = table[["branch_id", "branch_name_zh", "branch_name_en"]].astype(str)
    branch_codes, branch_rows = keys["branch_id"].factorize()
    first = keys.drop_duplicates("branch_id").set_index("branch_id")
    branches = tuple(Branch(b, first.at[b, "branch_name_zh"], first.at[b, "branch_name_en"]) for b in branch_rows)
    return BookTable(table["customer_id"].str.upper().to_numpy().astype("S32"), manager_codes.astype(np.int32),
                     branch_codes.astype(np.int32), tuple(str(m) for m in managers), branches)


class Books:
    """The current book table, re-read when the mart is republished."""

    def __init__(self, marts: Path) -> None:
        self.marts = Path(marts)
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._table = BookTable.empty()

    def _path(self) -> Path:
        try:
            source = resolve_source(self.marts)
        except (SnapshotError, OSError):
            source = None
        beside = source.customer_360.parent / BOOKS_FILE if source is not None else None
        return beside if beside is not None and beside.exists() else self.marts / BOOKS_FILE

    def table(self) -> BookTable:
        path = self._path()
        try:
            st = os.stat(path)
            stamp: tuple | None = (str(path), st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._table = read_books(path) if stamp else BookTable.empty()
                    self._stamp = stamp
        return self._table

    def manager_ids(self) -> tuple[str, ...]:
        return self.table().managers

    def manager_of(self, customer_id: str) -> str | None:
        table = self.table()
        i = table.position(customer_id)
        return table.managers[table.manager[i]] if i is not None else None

    def branch_of(self, customer_id: str) -> Branch | None:
        table = self.table()
        i = table.position(customer_id)
        return table.branches[table.branch[i]] if i is not None else None

    def customers_of(self, manager_id: str) -> np.ndarray:
        """The manager's customer ids (S32, sorted); empty for an unknown manager."""
        table = self.table()
        code = int(np.searchsorted(table.managers, manager_id)) if table.managers else 0
        if code >= len(table.managers) or table.managers[code] != manager_id:
            return np.empty(0, "S32")
        return table.ids[table.manager == code]


def can_see(books: Books, principal: Principal, customer_id: str) -> bool:
    """An admin sees every customer; a manager only those of their own book."""
    if principal.role == "admin":
        return True
    return principal.manager_id is not None and books.manager_of(customer_id) == principal.manager_id


def book_rows(books: Books, snapshot: Snapshot, manager_id: str | None) -> np.ndarray:
    """A boolean mask over the snapshot's rows: the customers of ``manager_id`` (everyone for None)."""
    if manager_id is None:
        return np.ones(snapshot.rows, dtype=bool)
    ids = books.customers_of(manager_id)
    mask = np.zeros(snapshot.rows, dtype=bool)
    if len(ids):
        at = np.searchsorted(snapshot.ids, ids)
        found = at < snapshot.rows
        found[found] = snapshot.ids[at[found]] == ids[found]
        mask[at[found]] = True
    return mask
