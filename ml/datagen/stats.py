"""Recompute the synthetic bank's headline rates from the raw tables alone.

    python -m ml.datagen.stats --raw data/raw [--markdown]

Holding rate: share of customers holding the product at a date (opens minus closes).
Adoption rate: share of customers who newly open it in the 3-month label window of a cut-off
without holding it at the cut-off. Reads only ``raw/`` (never the oracle).
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from ml.core.config import EXTRACT_DATE, HOLDOUT_CUTOFF, SEEDS_DIR

HOLDINGS_SQL = """
with opens_closes as (
    select customer_id, product_id,
           sum(case when event_type = 'product_open' then 1 else -1 end) as balance
    from events
    where event_type in ('product_open', 'product_close') and event_time < $as_of
    group by all
)
select customer_id, product_id from opens_closes where balance > 0
"""


def _connect(raw: Path) -> duckdb.DuckDBPyConnection:
    """Views over the raw tables; customers restricted to well-formed rows."""
    con = duckdb.connect()
    con.execute(f"create view events as select * from read_parquet('{raw}/events/*.parquet')").fetchall()
    con.execute(f"""create view customers as select * from read_parquet('{raw}/customers/*.parquet')
                    where customer_id is not null and regexp_full_match(customer_id, '[0-9A-F]{{32}}')
                      and age between 16 and 110""").fetchall()
    return con


def product_rates(raw: Path, cutoff: date = HOLDOUT_CUTOFF, as_of: date = EXTRACT_DATE) -> pd.DataFrame:
    con = _connect(raw)
    n = con.execute("select count(*) from customers").fetchall()[0][0]
    products = pd.read_csv(SEEDS_DIR / "products.csv")[["product_id", "category"]]
    con.register("products", products)
    held_now = f"({HOLDINGS_SQL})"
    return con.execute(f"""
        with held_now as {held_now.replace('$as_of', f"timestamp '{as_of}'")},
             held_cut as {held_now.replace('$as_of', f"timestamp '{cutoff}'")},
             adopted as (
                 select distinct e.customer_id, e.product_id from events e
                 where e.event_type = 'product_open'
                   and e.event_time >= timestamp '{cutoff}'
                   and e.event_time < timestamp '{cutoff}' + interval 3 month
                   and not exists (select 1 from held_cut h
                                   where h.customer_id = e.customer_id and h.product_id = e.product_id))
        select p.product_id, p.category,
               round(100.0 * (select count(*) from held_now h join customers c using (customer_id)
                              where h.product_id = p.product_id) / {n}, 3) as holding_pct,
               round(100.0 * (select count(*) from adopted a join customers c using (customer_id)
                              where a.product_id = p.product_id) / {n}, 3) as adoption_3m_pct
        from products p order by p.category, p.product_id
    """).df().assign(customers=n)


def any_non_savings(raw: Path, cutoff: date = HOLDOUT_CUTOFF) -> dict:
    """Share of customers holding any non-savings product, and adopting one in the window."""
    rates = product_rates(raw, cutoff)
    con = _connect(raw)
    held = con.execute(HOLDINGS_SQL.replace("$as_of", f"timestamp '{cutoff}'")).df()
    non_savings = set(rates.loc[rates.category != "savings", "product_id"])
    holders = held[held.product_id.isin(non_savings)].customer_id.nunique()
    adopters = con.execute(f"""
        select count(distinct customer_id) from events
        where event_type = 'product_open' and list_contains($1, product_id)
          and event_time >= timestamp '{cutoff}' and event_time < timestamp '{cutoff}' + interval 3 month
    """, [sorted(non_savings)]).fetchall()[0][0]
    n = int(rates.customers.iloc[0])
    return {"customers": n, "any_non_savings_holding_pct": round(100 * holders / n, 3),
            "any_non_savings_adoption_3m_pct": round(100 * adopters / n, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.datagen.stats", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    rates = product_rates(args.raw)
    overall = any_non_savings(args.raw)
    if args.markdown:
        print(rates.drop(columns="customers").to_markdown(index=False))
        print()
        print(f"Customers: {overall['customers']:,}; holding any non-savings product on "
              f"{HOLDOUT_CUTOFF}: {overall['any_non_savings_holding_pct']}%; adopting one in the "
              f"3 months after it: {overall['any_non_savings_adoption_3m_pct']}%.")
    else:
        print(json.dumps({"products": rates.drop(columns="customers").to_dict("records"), **overall}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
