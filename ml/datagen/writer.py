"""Turn a simulated chunk into the bank's raw Parquet tables and the separate oracle."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ml.datagen import world
from ml.datagen.simulate import CHANNELS, EVENT_TYPES, ChunkResult

DIRTY_CUSTOMER_SHARE = 0.0004  # junk rows appended, as a real extract has them
DIRTY_EVENT_SHARE = 0.0002


def write_chunk(result: ChunkResult, catalogue: world.Catalogue, chunk_index: int, raw_dir: Path,
                oracle_dir: Path, rng: np.random.Generator) -> dict:
    """Write customers, events and oracle parts of one chunk; return row counts."""
    name = f"part-{chunk_index:05d}.parquet"
    customers = pa.Table.from_pandas(result.population.customers_table(), preserve_index=False)
    customers = _append_dirty_customers(customers, rng)
    pq.write_table(customers, raw_dir / "customers" / name, compression="zstd")

    events = _events_table(result, catalogue, chunk_index)
    events = _append_dirty_events(events, rng)
    pq.write_table(events, raw_dir / "events" / name, compression="zstd", row_group_size=1_000_000)

    ids = pa.array(result.population.customer_id, pa.string())
    targets = [p for p, t in zip(catalogue.ids, catalogue.targets) if t]
    for cutoff, arrays in result.oracle.items():
        folder = oracle_dir / f"cutoff={cutoff.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        columns = {"customer_id": ids}
        for key in ("p_true", "p_observable", "interest", "held_elsewhere"):
            for j, pid in enumerate(targets):
                columns[f"{key}__{pid}"] = pa.array(arrays[key][:, j])
        pq.write_table(pa.table(columns), folder / name, compression="zstd")
    if result.posterior is not None:
        _write_posterior(result, targets, oracle_dir, name)
    return {"customers": customers.num_rows, "events": events.num_rows}


def _write_posterior(result: ChunkResult, targets: list[str], oracle_dir: Path, name: str) -> None:
    """``oracle/posterior/cutoff=<date>/``: the posterior oracle's sampled customers of this chunk."""
    posterior = result.posterior
    folder = oracle_dir / "posterior" / f"cutoff={posterior.cutoff.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    columns = {"customer_id": pa.array(result.population.customer_id[posterior.rows], pa.string())}
    for j, pid in enumerate(targets):
        columns[f"p_posterior__{pid}"] = pa.array(posterior.p[:, j])
    columns["effective_draws"] = pa.array(posterior.ess)
    pq.write_table(pa.table(columns), folder / name, compression="zstd")


def write_assignments(assignments: pa.Table, chunk_index: int, raw_dir: Path) -> int:
    """One chunk's ``customer_assignments`` part (books of business); returns its row count."""
    pq.write_table(assignments, raw_dir / "customer_assignments" / f"part-{chunk_index:05d}.parquet",
                   compression="zstd")
    return assignments.num_rows


def write_roster(managers: pa.Table, raw_dir: Path) -> int:
    """The ``account_managers`` roster (one part: about 270 rows); returns its row count."""
    pq.write_table(managers, raw_dir / "account_managers" / "part-00000.parquet", compression="zstd")
    return managers.num_rows


def _events_table(result: ChunkResult, catalogue: world.Catalogue, chunk_index: int) -> pa.Table:
    ev = result.events
    order = np.argsort(ev["time"], kind="stable")
    n = len(order)
    ids = pa.array(result.population.customer_id, pa.string())
    product = ev["product"][order]
    amount = ev["amount"][order]
    return pa.table({
        "event_id": pa.array(np.int64(chunk_index) * 10**9 + np.arange(n, dtype=np.int64)),
        "customer_id": ids.take(pa.array(ev["cust"][order])),
        "event_time": pa.array(ev["time"][order].astype("datetime64[us]")),
        "event_type": _decode(ev["etype"][order], EVENT_TYPES),
        "product_id": _decode(product, catalogue.ids, mask=product < 0),
        "amount": pa.array(amount, mask=np.isnan(amount)),
        "channel": _decode(ev["channel"][order], CHANNELS),
    })


def _decode(codes: np.ndarray, labels, mask: np.ndarray | None = None) -> pa.Array:
    """Integer codes to a plain string column (via a dictionary, in C++ rather than Python)."""
    indices = pa.array(np.where(mask, 0, codes) if mask is not None else codes, pa.int32(), mask=mask)
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(labels), pa.string())).cast(pa.string())


def _append_dirty_customers(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """Junk rows: malformed or null ids, impossible ages (the warehouse must quarantine them)."""
    k = max(3, int(table.num_rows * DIRTY_CUSTOMER_SHARE))
    junk = table.take(pa.array(rng.integers(0, table.num_rows, k))).to_pandas()
    kind = np.arange(k) % 3
    bad_ids = junk.customer_id.str.lower().str[:30]
    junk["customer_id"] = np.where(kind == 0, bad_ids, np.where(kind == 1, None, _fresh_ids(rng, k)))
    junk["age"] = np.where(kind == 2, rng.choice([0, 7, 130, 150], k), junk["age"]).astype("int32")
    return pa.concat_tables([table, pa.Table.from_pandas(junk, schema=table.schema, preserve_index=False)])


def _append_dirty_events(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """Junk copies of everyday transactions: unknown product or type, negative amount, orphan customer."""
    trades = np.flatnonzero(np.asarray(table["product_id"].to_numpy(zero_copy_only=False) == "SAV_DEMAND"))
    k = max(4, int(table.num_rows * DIRTY_EVENT_SHARE))
    if len(trades) == 0:
        return table
    junk = table.take(pa.array(rng.choice(trades, k))).to_pandas()
    kind = np.arange(k) % 4
    junk["event_id"] = table["event_id"].to_numpy().max() + 1 + np.arange(k)
    junk.loc[kind == 0, "product_id"] = "LEGACY_99"
    junk.loc[kind == 1, "event_type"] = "manual_adjustment"
    junk.loc[kind == 2, "amount"] = -junk.loc[kind == 2, "amount"].abs()
    junk.loc[kind == 3, "customer_id"] = _fresh_ids(rng, int((kind == 3).sum()))
    return pa.concat_tables([table, pa.Table.from_pandas(junk, schema=table.schema, preserve_index=False)])


def _fresh_ids(rng: np.random.Generator, k: int) -> np.ndarray:
    """Well-formed ids of nobody in the customer table."""
    return np.array(["".join(rng.choice(list("0123456789ABCDEF"), 32)) for _ in range(k)], dtype=object)
