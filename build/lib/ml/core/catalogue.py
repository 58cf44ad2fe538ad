"""The product catalogue (``seeds/products.csv``) as a typed, immutable object.

Everything that needs "the products" — suitability, relations, features, serving — reads it
through :func:`load_catalogue`, so product order is the same everywhere: *catalogue order* is the
row order of the seed, and every P-wide matrix in Lingxi uses it.

    >>> cat = load_catalogue()
    >>> cat.ids[:2]
    ('SAV_DEMAND', 'SAV_TIME')
    >>> cat["WLT_STOCK_FUND"].risk_level
    5
"""
from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.core.config import SEEDS_DIR

CATALOGUE_PATH = SEEDS_DIR / "products.csv"

CATEGORIES = ("savings", "protection", "credit", "wealth")  # catalogue order; the model's category codes
CATEGORY_CODES = {category: code for code, category in enumerate(CATEGORIES)}

RISK_LEVELS = ("R1", "R2", "R3", "R4", "R5")


@dataclass(frozen=True)
class Product:
    """One product of the catalogue. ``risk_level`` is 1..5 (R1..R5)."""

    product_id: str
    name_zh: str
    name_en: str
    category: str
    category_zh: str
    risk_level: int
    min_investment_cny: float
    expected_return_pct: float
    target_age_min: int
    target_age_max: int
    tags: tuple[str, ...]
    annual_value_cny: float

    @property
    def risk_label(self) -> str:
        return f"R{self.risk_level}"

    def summary(self) -> dict[str, Any]:
        """The product as the API names it in a list or an answer."""
        return {"product_id": self.product_id, "name": self.name_en, "name_zh": self.name_zh,
                "category": self.category, "risk_level": self.risk_label}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Product":
        """Build and validate a product from a seed row (or any mapping with the seed's columns)."""
        pid = str(row["product_id"]).strip()
        if not pid:
            raise ValueError("product_id is empty")
        risk = str(row["risk_level"]).strip().upper()
        if risk not in RISK_LEVELS:
            raise ValueError(f"{pid}: risk_level {risk!r} is not one of {RISK_LEVELS}")
        category = str(row["category"]).strip()
        if category not in CATEGORIES:
            raise ValueError(f"{pid}: category {category!r} is not one of {CATEGORIES}")
        raw_tags = row.get("tags", "")
        tags = raw_tags if isinstance(raw_tags, tuple) else tuple(
            t.strip() for t in str(raw_tags or "").split("|") if t.strip()
        )
        product = cls(
            product_id=pid,
            name_zh=str(row.get("product_name_zh", row.get("name_zh", ""))),
            name_en=str(row.get("product_name_en", row.get("name_en", ""))),
            category=category,
            category_zh=str(row.get("category_zh", "")),
            risk_level=int(risk[1]),
            min_investment_cny=float(row["min_investment_cny"]),
            expected_return_pct=float(row.get("expected_return_pct", 0.0) or 0.0),
            target_age_min=int(row["target_age_min"]),
            target_age_max=int(row["target_age_max"]),
            tags=tags,
            annual_value_cny=float(row.get("annual_value_cny", 0.0) or 0.0),
        )
        if product.min_investment_cny < 0:
            raise ValueError(f"{pid}: negative min_investment_cny")
        if product.target_age_min > product.target_age_max:
            raise ValueError(f"{pid}: target_age_min > target_age_max")
        return product


@dataclass(frozen=True)
class Catalogue:
    """The products in catalogue order, with vectorised views for P-wide computations."""

    products: tuple[Product, ...]

    def __post_init__(self) -> None:
        ids = [p.product_id for p in self.products]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate product ids: {dupes}")

    # -- lookup -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.products)

    def __iter__(self) -> Iterator[Product]:
        return iter(self.products)

    def __contains__(self, product_id: object) -> bool:
        return product_id in self._position

    def __getitem__(self, key: str | int) -> Product:
        return self.products[key] if isinstance(key, int) else self.products[self.index(key)]

    @cached_property
    def ids(self) -> tuple[str, ...]:
        return tuple(p.product_id for p in self.products)

    @cached_property
    def _position(self) -> dict[str, int]:
        return {pid: i for i, pid in enumerate(self.ids)}

    def get(self, product_id: str) -> Product | None:
        """The product, or None when the id is not in the catalogue."""
        position = self._position.get(product_id)
        return None if position is None else self.products[position]

    def in_category(self, category: str) -> list[str]:
        """Ids of the category's products, in catalogue order."""
        return [p.product_id for p in self.products if p.category == category]

    @cached_property
    def category_names(self) -> tuple[str, ...]:
        """The categories the catalogue has products in (sorted)."""
        return tuple(sorted({p.category for p in self.products}))

    def index(self, product_id: str) -> int:
        """Catalogue position of one product; ``KeyError`` if unknown."""
        try:
            return self._position[product_id]
        except KeyError:
            raise KeyError(f"unknown product {product_id!r}") from None

    def indices(self, product_ids: Iterable[object]) -> np.ndarray:
        """Catalogue positions of many product ids (vectorised); -1 for unknown or missing ids."""
        values = pd.Series(np.asarray(list(product_ids) if not isinstance(product_ids, np.ndarray)
                                      else product_ids, dtype=object))
        return values.map(self._position).fillna(-1).to_numpy(dtype=np.int64)

    # -- vectorised attributes (length P, catalogue order) ------------------------------------
    @cached_property
    def risk_levels(self) -> np.ndarray:
        return np.array([p.risk_level for p in self.products], dtype=np.int8)

    @cached_property
    def min_investment(self) -> np.ndarray:
        return np.array([p.min_investment_cny for p in self.products], dtype=np.float64)

    @cached_property
    def age_min(self) -> np.ndarray:
        return np.array([p.target_age_min for p in self.products], dtype=np.int16)

    @cached_property
    def age_max(self) -> np.ndarray:
        return np.array([p.target_age_max for p in self.products], dtype=np.int16)

    @cached_property
    def categories(self) -> np.ndarray:
        return np.array([p.category for p in self.products], dtype=object)

    def to_frame(self) -> pd.DataFrame:
        """One row per product (tags joined with ``|`` as in the seed)."""
        rows = [{**asdict(p), "tags": "|".join(p.tags), "risk_label": p.risk_label}
                for p in self.products]
        return pd.DataFrame(rows, columns=[*Product.__dataclass_fields__, "risk_label"])


def read_catalogue(path: str | Path) -> Catalogue:
    """Read and validate a catalogue CSV with the columns of ``seeds/products.csv``."""
    with open(path, newline="", encoding="utf-8") as fh:
        return Catalogue(tuple(Product.from_row(row) for row in csv.DictReader(fh)))


@lru_cache(maxsize=8)
def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """The catalogue seed (cached; pass ``path`` to read another file with the same columns)."""
    return read_catalogue(CATALOGUE_PATH if path is None else path)
