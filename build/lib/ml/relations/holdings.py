"""Holdings input: any (customer id, product id[, opened at]) table, or the raw event log."""
from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd

FORMATS = ("csv", "parquet")


def detect_format(path: str | Path, fmt: str | None = None) -> str:
    """``csv`` or ``parquet``, from ``fmt`` or the path (a folder counts as Parquet parts)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
        return fmt
    path = Path(path)
    if path.is_dir() or path.suffix.lower() in (".parquet", ".pq"):
        return "parquet"
    if path.suffix.lower() in (".csv", ".tsv") or path.name.lower().endswith(".csv.gz"):
        return "csv"
    raise ValueError(f"cannot tell the format of {path}; pass --format csv|parquet")


def load_holdings(path: str | Path, fmt: str | None = None, *, customer_col: str = "customer_id",
                  product_col: str = "product_id", time_col: str | None = "opened_at") -> pd.DataFrame:
    """Read a holdings table into ``customer_id``, ``product_id`` and, if present, ``opened_at``.

    ``time_col`` is optional: when the column is missing the table is used for co-holding only.
    """
    fmt = detect_format(path, fmt)
    if fmt == "parquet":
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path, dtype={customer_col: str, product_col: str},
                            sep="\t" if str(path).lower().endswith(".tsv") else ",")
    missing = [c for c in (customer_col, product_col) if c not in frame]
    if missing:
        raise ValueError(f"holdings table {path} lacks column(s) {missing}; has {list(frame.columns)}")
    out = pd.DataFrame({"customer_id": frame[customer_col].astype("string"),
                        "product_id": frame[product_col].astype("string")})
    if time_col and time_col in frame:
        out["opened_at"] = pd.to_datetime(frame[time_col], errors="coerce")
    return out


def holdings_from_events(events: str | Path, before: date | datetime | str | None = None) -> pd.DataFrame:
    """Holdings from a raw event log (``docs/data_contract.md``) with DuckDB.

    A position is held when its latest ``product_open`` is later than its latest
    ``product_close``; ``opened_at`` is that latest open. ``events`` is a Parquet file or a folder
    of Parquet parts. ``before``: only events strictly before this time (holdings as of a
    cut-off — use it when relations feed features at that cut-off, or labels leak in).
    """
    path = Path(events)
    source = str(path / "**" / "*.parquet") if path.is_dir() else str(path)
    params: list[object] = [source]
    if before is not None:
        params.append(pd.Timestamp(before).to_pydatetime())
    query = f"""
        with events as (
            select customer_id, product_id, event_type, event_time
            from read_parquet(?)
            where event_type in ('product_open', 'product_close')
              and customer_id is not null and product_id is not null
              {"and event_time < ?" if before is not None else ""}
        ),
        positions as (
            select customer_id, product_id,
                   max(event_time) filter (where event_type = 'product_open') as last_open,
                   max(event_time) filter (where event_type = 'product_close') as last_close
            from events
            group by customer_id, product_id
        )
        select customer_id, product_id, last_open as opened_at
        from positions
        where last_open is not null and (last_close is null or last_close < last_open)
        order by customer_id, product_id
    """
    with duckdb.connect() as con:
        con.execute("set enable_progress_bar = false")
        return con.execute(query, params).df()
