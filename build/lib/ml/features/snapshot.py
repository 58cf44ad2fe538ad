"""A whole snapshot of the customer features, read column-wise for batch scoring of every customer."""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ml.core.config import Paths
from ml.features.layout import STAGE_ONE_FEATURES, VECTOR_FEATURE
from ml.features.store import get_store


# ------------------------------------------------------------------------------------------------
# Batch features and nightly scoring
# ------------------------------------------------------------------------------------------------
def feature_store(paths: Paths):
    """``ml.features.get_store`` for ``paths`` without leaving ``LINGXI_DATA_DIR`` re-pointed
    (the store resolves its paths when it is built)."""

    previous = os.environ.get("LINGXI_DATA_DIR")
    try:
        return get_store(paths)
    finally:
        if previous is None:
            os.environ.pop("LINGXI_DATA_DIR", None)
        else:
            os.environ["LINGXI_DATA_DIR"] = previous


def feature_source(paths: Paths, store=None) -> Path:
    """The Parquet behind Feast's ``customer_features`` view (as registered by ``feast apply``)."""
    store = store if store is not None else feature_store(paths)
    source = Path(store.get_feature_view("customer_features").batch_source.path)
    return source if source.exists() else paths.feast / "sources" / "customer_feature_vectors.parquet"


def snapshot_features(paths: Paths, snapshot: datetime | str | None = None, limit: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(customer ids, (n, 75) float32) of one snapshot of the ``customer_features`` source.

    The same rows Feast serves (the view's batch source), read column-wise for batch scoring of
    every customer; default: the latest snapshot. Sorted by customer id; ``limit`` keeps the first.
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    dataset = ds.dataset(str(feature_source(paths)), format="parquet")
    if snapshot is None:
        snapshot = pc.max(dataset.to_table(columns=["snapshot_ts"])["snapshot_ts"]).as_py()
    table = dataset.to_table(columns=["customer_id", VECTOR_FEATURE],
                             filter=ds.field("snapshot_ts") == pd.Timestamp(snapshot).to_pydatetime())
    table = table.sort_by("customer_id")
    if limit is not None:
        table = table.slice(0, limit)
    ids = table["customer_id"].to_numpy(zero_copy_only=False)
    values = table[VECTOR_FEATURE].combine_chunks()
    flat = values.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    x = flat.reshape(len(ids), len(STAGE_ONE_FEATURES))
    return ids, x
