"""The relation table as a product graph: P x P matrices and per-customer graph features."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml.core.catalogue import load_catalogue
from ml.relations.holdings import detect_format

# kind -> (column for a->b, column for b->a); M[i, j] reads "from product i to product j"
DIRECTED = {
    "p_given": ("p_b_given_a", "p_a_given_b"),          # M[i, j] = P(holds j | holds i)
    "coadopt_rate": ("coadopt_rate_ab", "coadopt_rate_ba"),  # opens j within the window after i
    "coadopt_lift": ("coadopt_lift_ab", "coadopt_lift_ba"),
    "opened_first": ("n_a_first", "n_b_first"),          # co-holders who opened i before j
}
ANTISYMMETRIC = {"time_order": "time_order_asymmetry"}   # M[i, j] = -M[j, i]
LABEL_KINDS = ("complement", "substitute", "relation")  # relation: +strength / -strength
FEATURE_KINDS = ("complement_score", "complement_sum", "substitute_held")


def write_table(table: pd.DataFrame, path: str | Path, fmt: str | None = None) -> Path:
    """Write a relation table as Parquet or CSV (by ``fmt`` or the file extension)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if detect_format(path, fmt) == "parquet":
        table.to_parquet(path, index=False)
    else:
        table.to_csv(path, index=False)
    return path


def read_table(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    if detect_format(path, fmt) == "parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype={"product_a": str, "product_b": str, "direction": str,
                                    "evidence": str, "relations_version": str},
                       keep_default_na=False, na_values=[""])


@dataclass(frozen=True, eq=False)
class RelationGraph:
    """A relation table plus a product order (catalogue order unless told otherwise)."""

    pairs: pd.DataFrame
    product_ids: tuple[str, ...]

    @classmethod
    def from_pairs(cls, pairs: pd.DataFrame, product_ids: Sequence[str] | None = None) -> "RelationGraph":
        ids = tuple(product_ids) if product_ids is not None else load_catalogue().ids
        pairs = pairs.copy()
        for col in ("direction", "evidence"):
            if col in pairs:
                pairs[col] = pairs[col].fillna("")
        return cls(pairs=pairs, product_ids=ids)

    @classmethod
    def load(cls, path: str | Path, product_ids: Sequence[str] | None = None,
             fmt: str | None = None) -> "RelationGraph":
        """Read a table written by ``python -m ml.relations``; matrices follow ``product_ids``
        (default: the catalogue). Pairs with products outside that order stay in ``pairs`` only."""
        return cls.from_pairs(read_table(path, fmt), product_ids)

    def save(self, path: str | Path, fmt: str | None = None) -> Path:
        return write_table(self.pairs, path, fmt)

    def _positions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        index = pd.Index(self.product_ids)
        i = index.get_indexer(self.pairs["product_a"].astype(str))
        j = index.get_indexer(self.pairs["product_b"].astype(str))
        keep = (i >= 0) & (j >= 0)
        return i[keep], j[keep], keep

    def matrix(self, kind: str) -> np.ndarray:
        """``(P, P)`` float array in product order.

        ``complement`` / ``substitute``: the strength where the pair has that label, else 0;
        ``relation``: +strength for complements, -strength for substitutes; a directed kind from
        ``DIRECTED`` (``M[i, j]`` from i to j); ``time_order``; or any numeric column of the table
        (symmetric). Label kinds are 0 on the diagonal and for unknown pairs, statistics NaN.
        """
        n = len(self.product_ids)
        i, j, keep = self._positions()
        rows = self.pairs[keep]
        if kind in LABEL_KINDS:
            strength = rows["strength"].to_numpy(dtype=float)
            label = rows["relation"].to_numpy()
            sign = {"complement": label == "complement", "substitute": label == "substitute",
                    "relation": np.select([label == "complement", label == "substitute"], [1.0, -1.0], 0.0)}[kind]
            value = strength * sign
            out = np.zeros((n, n))
            out[i, j] = out[j, i] = value
            return out
        out = np.full((n, n), np.nan)
        if kind in DIRECTED:
            forward, backward = DIRECTED[kind]
            out[i, j] = rows[forward].to_numpy(dtype=float)
            out[j, i] = rows[backward].to_numpy(dtype=float)
        elif kind in ANTISYMMETRIC:
            value = rows[ANTISYMMETRIC[kind]].to_numpy(dtype=float)
            out[i, j], out[j, i] = value, -value
        elif kind in rows and pd.api.types.is_numeric_dtype(rows[kind]):
            out[i, j] = out[j, i] = rows[kind].to_numpy(dtype=float)
        else:
            raise KeyError(f"unknown matrix kind {kind!r}")
        return out

    def related(self, product_id: str, relation: str | None = None) -> pd.DataFrame:
        """The pairs involving one product, as ``other``, ``relation``, ``strength`` and the
        statistics, strongest first (optionally only one relation label)."""
        rows = self.pairs[(self.pairs["product_a"] == product_id) | (self.pairs["product_b"] == product_id)]
        if relation is not None:
            rows = rows[rows["relation"] == relation]
        other = np.where(rows["product_a"] == product_id, rows["product_b"], rows["product_a"])
        return (rows.assign(other=other).sort_values(["strength", "other"], ascending=[False, True])
                .reset_index(drop=True))

    def features(self, held: np.ndarray, *, kinds: Sequence[str] = ("complement_score", "substitute_held"),
                 index: pd.Index | None = None) -> pd.DataFrame:
        """Per-customer graph features from a boolean ``(n, P)`` held matrix in product order.

        ``complement_score_<p>``: strongest complement of ``p`` among the held products;
        ``complement_sum_<p>``: sum of those complement strengths;
        ``substitute_held_<p>``: strongest substitute of ``p`` among the held products.
        float32, 0 where nothing relates.
        """
        held = np.asarray(held, dtype=bool)
        if held.ndim != 2 or held.shape[1] != len(self.product_ids):
            raise ValueError(f"held must be (n, {len(self.product_ids)}), got {held.shape}")
        unknown = set(kinds) - set(FEATURE_KINDS)
        if unknown:
            raise ValueError(f"unknown feature kinds {sorted(unknown)}; choose from {FEATURE_KINDS}")
        blocks, names = [], []
        for kind in kinds:
            matrix = self.matrix("substitute" if kind == "substitute_held" else "complement").astype(np.float32)
            if kind == "complement_sum":
                block = held.astype(np.float32) @ matrix
            else:
                block = _held_max(held, matrix)
            blocks.append(block)
            names += [f"{kind}_{p}" for p in self.product_ids]
        data = np.hstack(blocks) if blocks else np.zeros((len(held), 0), np.float32)
        return pd.DataFrame(data, columns=names, index=index)


def _held_max(held: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """out[c, p] = max over products j held by c of matrix[j, p] (0 if none)."""
    out = np.zeros((len(held), matrix.shape[1]), dtype=np.float32)
    for j in np.flatnonzero(matrix.any(axis=1)):
        rows = np.flatnonzero(held[:, j])
        out[rows] = np.maximum(out[rows], matrix[j])
    return out
