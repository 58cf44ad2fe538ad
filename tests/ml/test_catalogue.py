"""The product catalogue seed as a typed object."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from ml.core.catalogue import (
    CATALOGUE_PATH,
    CATEGORIES,
    Catalogue,
    Product,
    load_catalogue,
    read_catalogue,
)


def test_seed_loads_in_row_order():
    cat = load_catalogue()
    seed = pd.read_csv(CATALOGUE_PATH)
    assert len(cat) == 19 and cat.ids == tuple(seed["product_id"])
    assert set(cat.categories) == set(CATEGORIES)
    assert load_catalogue() is cat  # cached


def test_typed_fields():
    stock = load_catalogue()["WLT_STOCK_FUND"]
    assert (stock.category, stock.risk_level, stock.risk_label) == ("wealth", 5, "R5")
    assert stock.min_investment_cny == 1000.0 and stock.tags == ("equity", "growth", "high-volatility")
    assert (stock.target_age_min, stock.target_age_max) == (22, 60)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stock.risk_level = 1  # type: ignore[misc]


def test_lookups_and_vectors():
    cat = load_catalogue()
    assert cat.index("CRD_MORTGAGE") == 9 and cat[9].product_id == "CRD_MORTGAGE"
    assert "SAV_LCD" in cat and "NOPE" not in cat
    with pytest.raises(KeyError, match="NOPE"):
        cat.index("NOPE")
    assert cat.indices(["WLT_WMP", "NOPE", None, "SAV_DEMAND"]).tolist() == [17, -1, -1, 0]
    assert cat.risk_levels.tolist() == [p.risk_level for p in cat]
    assert np.array_equal(cat.min_investment, [p.min_investment_cny for p in cat])
    assert (cat.age_min <= cat.age_max).all()


def test_to_frame_round_trips(tmp_path):
    cat = load_catalogue()
    frame = cat.to_frame()
    assert list(frame["product_id"]) == list(cat.ids) and frame.loc[0, "risk_label"] == "R1"
    seed = pd.read_csv(CATALOGUE_PATH)
    assert read_catalogue(CATALOGUE_PATH) == cat
    assert list(frame["tags"]) == list(seed["tags"])


ROW = {"product_id": "X", "category": "wealth", "risk_level": "R3", "min_investment_cny": "100",
       "target_age_min": "20", "target_age_max": "60", "tags": "a|b"}


@pytest.mark.parametrize("change, message", [
    ({"risk_level": "R6"}, "risk_level"),
    ({"category": "crypto"}, "category"),
    ({"target_age_min": "70"}, "target_age_min"),
    ({"min_investment_cny": "-1"}, "negative"),
    ({"product_id": " "}, "empty"),
])
def test_bad_rows_are_rejected(change, message):
    with pytest.raises(ValueError, match=message):
        Product.from_row({**ROW, **change})


def test_duplicate_ids_are_rejected():
    product = Product.from_row(ROW)
    with pytest.raises(ValueError, match="duplicate"):
        Catalogue((product, product))


def test_a_new_product_can_be_defined_from_a_mapping():
    product = Product.from_row({**ROW, "risk_level": "r2"})
    assert product.risk_level == 2 and product.tags == ("a", "b") and product.annual_value_cny == 0.0
