"""The product catalogue (``seeds/products.csv``): validates product ids and decorates rankings."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

CATEGORIES = ("protection", "credit", "wealth", "savings")
RISK_LEVELS = ("R1", "R2", "R3", "R4", "R5")


@dataclass(frozen=True)
class Product:
    product_id: str
    name_en: str
    name_zh: str
    category: str
    risk_level: str
    min_investment_cny: float
    expected_return_pct: float
    target_age_min: int
    target_age_max: int
    tags: tuple[str, ...]

    def summary(self) -> dict:
        return {
            "product_id": self.product_id,
            "name": self.name_en,
            "name_zh": self.name_zh,
            "category": self.category,
            "risk_level": self.risk_level,
        }


@dataclass(frozen=True)
class Catalogue:
    products: dict[str, Product]

    def __contains__(self, product_id: object) -> bool:
        return product_id in self.products

    def get(self, product_id: str) -> Product | None:
        return self.products.get(product_id)

    def in_category(self, category: str) -> list[str]:
        return [p.product_id for p in self.products.values() if p.category == category]

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(sorted({p.category for p in self.products.values()}))


def load_catalogue(path: Path) -> Catalogue:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    products = {
        row["product_id"]: Product(
            product_id=row["product_id"],
            name_en=row["product_name_en"],
            name_zh=row["product_name_zh"],
            category=row["category"],
            risk_level=row["risk_level"],
            min_investment_cny=float(row["min_investment_cny"]),
            expected_return_pct=float(row["expected_return_pct"]),
            target_age_min=int(row["target_age_min"]),
            target_age_max=int(row["target_age_max"]),
            tags=tuple(t for t in row["tags"].split("|") if t),
        )
        for row in rows
    }
    return Catalogue(products)
