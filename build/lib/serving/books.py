"""Books of business: which account manager (and branch) each customer of a snapshot belongs to.

Loaded from ``marts/manager_books.parquet`` (the dbt mart ``manager_books``: one row per customer)
together with the customer snapshot and kept on it, so a request sees the customers and their
managers of one and the same version. The columns are aligned with the snapshot's sorted ids; a
customer without a row belongs to no manager's book (only admin sees them). Without the file no
customer belongs to anyone: managers and the CRM see nothing rather than everything.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

MANAGER_BOOKS_FILE = "manager_books.parquet"
REQUIRED_COLUMNS = ("customer_id", "manager_id")
OPTIONAL_COLUMNS = ("branch_id", "branch_name_zh", "branch_name_en", "assigned_since")


class BooksError(RuntimeError):
    """The books file exists but cannot be used."""


def _encode(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """Per-row dictionary codes (int32, -1 for null) and their labels."""
    encoded = pc.dictionary_encode(pc.cast(column, pa.string())).combine_chunks()
    return (encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32),
            [str(v) for v in encoded.dictionary.to_pylist()])


def _scatter(values: np.ndarray, target: np.ndarray, rows: int, fill: Any) -> np.ndarray:
    out = np.full(rows, fill, dtype=values.dtype)
    out[target] = values
    return out


@dataclass(frozen=True)
class Books:
    """Per snapshot row: the manager and branch (codes into label lists), the assignment date."""

    manager: tuple[np.ndarray, list[str]]
    branch: tuple[np.ndarray, list[str]]
    branch_names: dict[str, tuple[str | None, str | None]]
    assigned_since: np.ndarray               # datetime64[D], NaT unknown
    loaded: bool

    @classmethod
    def empty(cls, rows: int) -> Books:
        none = (np.full(rows, -1, dtype=np.int32), [])
        return cls(none, none, {}, np.full(rows, np.datetime64("NaT"), dtype="datetime64[D]"), loaded=False)

    def manager_of(self, i: int) -> str | None:
        code = int(self.manager[0][i])
        return self.manager[1][code] if code >= 0 else None

    def mask(self, manager_id: str) -> np.ndarray:
        """Rows in ``manager_id``'s book (all False for an unknown manager)."""
        codes, labels = self.manager
        try:
            code = labels.index(manager_id)
        except ValueError:
            return np.zeros(codes.shape[0], dtype=bool)
        return codes == code

    def managers(self) -> list[str]:
        return sorted(self.manager[1])

    def entry(self, i: int) -> dict[str, Any] | None:
        """What a lookup shows of the customer's book (None when the customer has none)."""
        manager_id = self.manager_of(i)
        if manager_id is None:
            return None
        code = int(self.branch[0][i])
        branch_id = self.branch[1][code] if code >= 0 else None
        zh, en = self.branch_names.get(branch_id, (None, None)) if branch_id else (None, None)
        return {"manager_id": manager_id, "branch_id": branch_id, "branch_name_zh": zh, "branch_name_en": en,
                "assigned_since": None if np.isnat(since := self.assigned_since[i]) else str(since)}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def load_books(path: Path | None, ids: np.ndarray, warnings: list[str]) -> Books:
    """The books of the snapshot whose sorted ids are ``ids`` (raises ``BooksError`` on a bad file)."""
    rows = int(ids.shape[0])
    if path is None:
        warnings.append(f"{MANAGER_BOOKS_FILE} not found: no customer belongs to a manager's book")
        return Books.empty(rows)
    try:
        names = set(pq.read_schema(path).names)
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise BooksError(f"{path.name} lacks required columns {missing}")
        table = pq.read_table(path, columns=[*REQUIRED_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in names)])
    except (OSError, pa.ArrowException) as exc:
        raise BooksError(f"cannot read {path.name}: {exc}") from exc
    raw = pc.utf8_upper(pc.cast(table["customer_id"], pa.string())).combine_chunks()
    valid = pc.match_substring_regex(raw, r"^[0-9A-F]{32}$").fill_null(False).to_numpy(zero_copy_only=False)
    keys = np.array(raw.fill_null("").to_numpy(zero_copy_only=False), dtype="S32")
    order = np.minimum(np.searchsorted(ids, keys), max(rows - 1, 0))
    found = (ids[order] == keys) & valid if rows else np.zeros(len(keys), dtype=bool)
    first = np.zeros(len(keys), dtype=bool)  # the first row of a duplicated id wins
    _, first_index = np.unique(order[found], return_index=True)
    first[np.flatnonzero(found)[first_index]] = True
    if (~found).sum():
        warnings.append(f"{int((~found).sum())} {MANAGER_BOOKS_FILE} rows name customers outside the snapshot (ignored)")
    if found.sum() - first.sum():
        warnings.append(f"{int(found.sum() - first.sum())} duplicate customers in {MANAGER_BOOKS_FILE} (first row kept)")
    found = first
    target = order[found]
    codes, labels = _encode(table["manager_id"])
    manager = (_scatter(codes[found], target, rows, -1), labels)
    branch: tuple[np.ndarray, list[str]] = (np.full(rows, -1, dtype=np.int32), [])
    branch_names: dict[str, tuple[str | None, str | None]] = {}
    if "branch_id" in names:
        codes, labels = _encode(table["branch_id"])
        branch = (_scatter(codes[found], target, rows, -1), labels)
        present, first_row = np.unique(codes, return_index=True)  # one row per branch for its names
        for code, row in zip(present.tolist(), first_row.tolist()):
            if code >= 0:
                branch_names[labels[code]] = tuple(  # type: ignore[assignment]
                    _text(table[col][row].as_py()) if col in names else None
                    for col in ("branch_name_zh", "branch_name_en"))
    since = np.full(rows, np.datetime64("NaT"), dtype="datetime64[D]")
    if "assigned_since" in names:
        try:
            days = pc.cast(table["assigned_since"], pa.date32()).to_numpy(zero_copy_only=False)
        except (pa.ArrowException, TypeError) as exc:
            raise BooksError(f"{path.name}: assigned_since is not a date ({exc})") from exc
        since[target] = np.asarray(days, dtype="datetime64[D]")[found]
    unassigned = int((manager[0] < 0).sum())
    if unassigned:
        warnings.append(f"{unassigned} customers have no manager in {MANAGER_BOOKS_FILE} (admin only)")
    return Books(manager, branch, branch_names, since, loaded=True)
