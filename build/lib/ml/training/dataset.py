"""Training and evaluation sets: labels mart -> (customer, cut-off, product) rows -> Feast features.

Rows are customer × product pairs at a cut-off, restricted to cross-sell products the customer
did not hold and may be offered (suitability). Negatives are sampled *before* the point-in-time
retrieval (cheap at full scale) and weighted back by 1 / rate so probabilities stay calibrated.
All model inputs come from Feast's ``stage_one_v1`` service; nothing here reads the oracle.
"""
from __future__ import annotations

import sys
from datetime import date

import numpy as np
import pandas as pd

from ml.core import suitability
from ml.core.catalogue import load_catalogue
from ml.core.config import Paths
from ml.features.layout import FEATURE_SERVICE, VECTOR_FEATURE, from_vectors


def target_products() -> list[str]:
    """Cross-sell products the models rank: everything but savings."""
    cat = load_catalogue()
    return [p for p, c in zip(cat.ids, cat.categories) if c != "savings"]


def load_labels(paths: Paths, cutoffs: list[date]) -> pd.DataFrame:
    """customer_id, snapshot_ts and the ``label_*`` columns (float32; NaN: held at the cut-off) of
    the labels mart at ``cutoffs``. Only those rows and columns are read (the full-scale mart has
    11M rows)."""
    import duckdb

    path = str(paths.marts / "labels_adoption.parquet")
    with duckdb.connect() as con:
        con.execute("set enable_progress_bar = false")
        names = [row[0] for row in con.execute("select name from parquet_schema(?)", [path]).fetchall()]
        labels = [n for n in names if n.startswith("label_") and n != "label_window_end_ts"]
        select = ", ".join(f"cast({n} as float) as {n}" for n in labels)
        wanted = [pd.Timestamp(c).to_pydatetime() for c in cutoffs]
        frame = con.execute(f"""select customer_id, snapshot_ts, {select} from read_parquet(?)
                                where snapshot_ts in (select unnest(?::timestamp[]))
                                order by snapshot_ts, customer_id""", [path, wanted]).df()
    frame["snapshot_ts"] = pd.to_datetime(frame["snapshot_ts"]).astype("datetime64[ns]")
    return frame


def adopted_any(labels: pd.DataFrame, products: list[str]) -> np.ndarray:
    """(n,) bool: did each (customer, cut-off) row adopt at least one of ``products``."""
    columns = [f"label_{p.lower()}" for p in products]
    return (labels[columns].fillna(0).to_numpy() > 0).any(axis=1)


def choose_customer_rate(labels: pd.DataFrame, products: list[str], non_adopters_per_adopter: float,
                         minimum: int = 0) -> float:
    """Share of non-adopting (customer, cut-off) rows to keep: ``non_adopters_per_adopter`` of them
    per adopting one, and at least ``minimum`` of them (a small bank keeps more; 1.0 keeps all)."""
    adopters = int(adopted_any(labels, products).sum())
    wanted = max(non_adopters_per_adopter * adopters, minimum)
    return float(min(1.0, max(wanted, 1) / max(len(labels) - adopters, 1)))


def sample_customers(labels: pd.DataFrame, products: list[str], rate: float, seed: int) -> pd.DataFrame:
    """Keep every (customer, cut-off) that adopted one of ``products`` and a ``rate`` share of the
    others, whole (all their candidate products), with a ``weight`` column of 1 / inclusion chance.

    Sampling whole customers rather than single pairs keeps every positive, costs one Feast
    point-in-time lookup per kept customer (not per pair), and leaves each kept customer's full
    product list, so ranking metrics (MAP@5) can be computed on the sample exactly: every customer
    who adopted is in it. Weights are Horvitz-Thompson: a kept pair stands for 1 / (its chance of
    being kept) pairs, so weighted means (and the calibrated probabilities) match the population.
    """
    adopters = adopted_any(labels, products)
    if rate >= 1.0:
        return labels.assign(weight=1.0)
    rng = np.random.default_rng(seed)
    keep = adopters | (rng.random(len(labels)) < rate)
    out = labels[keep].copy()
    out["weight"] = np.where(adopters[keep], 1.0, 1.0 / rate)
    return out.reset_index(drop=True)


def candidate_pairs(labels: pd.DataFrame, products: list[str]) -> pd.DataFrame:
    """Long (customer_id, snapshot_ts, product_id, label[, weight]) for products not held at the cut-off."""
    frames = []
    for pid in products:
        column = labels[f"label_{pid.lower()}"]
        keep = column.notna().to_numpy()
        frame = pd.DataFrame({
            "customer_id": labels.customer_id.to_numpy()[keep],
            "snapshot_ts": labels.snapshot_ts.to_numpy()[keep],
            "product_id": pid,
            "label": column.to_numpy()[keep].astype(np.int8),
        })
        if "weight" in labels:
            frame["weight"] = labels.weight.to_numpy()[keep]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def fetch_features(store, entities: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time ``stage_one_v1`` features for unique (customer_id, snapshot_ts) rows."""
    entity_df = entities[["customer_id", "snapshot_ts"]].drop_duplicates().rename(
        columns={"snapshot_ts": "event_timestamp"})
    entity_df["contact_ts"] = pd.to_datetime(entity_df["event_timestamp"]).dt.tz_localize("UTC")
    service = store.get_feature_service(FEATURE_SERVICE)
    frame = store.get_historical_features(entity_df=entity_df, features=service).to_df()
    features = from_vectors(frame[VECTOR_FEATURE].tolist())
    features.insert(0, "customer_id", frame["customer_id"].to_numpy())
    features.insert(1, "snapshot_ts", pd.to_datetime(frame["event_timestamp"]).dt.tz_localize(None).to_numpy())
    missing = frame[VECTOR_FEATURE].isna().sum()
    if missing:
        print(f"[dataset] {missing} entity rows had no snapshot in the feature store", file=sys.stderr)
    return features


def customer_frame(features: pd.DataFrame) -> pd.DataFrame:
    """The suitability inputs, recovered from the model features."""
    return pd.DataFrame({
        "age": features["age"].to_numpy(dtype=float),
        "risk_tolerance": features["risk_tolerance"].to_numpy(dtype=float),
        "assets_cny": np.expm1(features["log_assets"].to_numpy(dtype=float)),
    })


def suitable_mask(features: pd.DataFrame, products: list[str]) -> np.ndarray:
    """(n, len(products)) bool: may each product be offered to each feature row's customer."""
    elig = suitability.eligibility(customer_frame(features))
    positions = [elig.product_ids.index(p) for p in products]
    return elig.allowed[:, positions]


def build_pairs(store, pairs: pd.DataFrame, products: list[str]) -> pd.DataFrame:
    """Model-ready rows: sampled pairs joined to their point-in-time features, suitable pairs only
    (customer_id, snapshot_ts, product_id, label, weight + the feature columns)."""
    features = fetch_features(store, pairs)
    allowed = suitable_mask(features, products)
    allowed_long = pd.DataFrame(allowed, columns=products)
    allowed_long[["customer_id", "snapshot_ts"]] = features[["customer_id", "snapshot_ts"]]
    allowed_long = allowed_long.melt(id_vars=["customer_id", "snapshot_ts"], var_name="product_id",
                                     value_name="suitable")
    merged = pairs.merge(allowed_long, on=["customer_id", "snapshot_ts", "product_id"])
    merged = merged[merged.suitable].drop(columns="suitable")
    merged = merged.merge(features, on=["customer_id", "snapshot_ts"])
    return merged.reset_index(drop=True)
