"""Recompute the synthetic bank's headline rates from the raw tables alone.

    python -m ml.datagen.stats --raw data/raw [--markdown]

Holding rate: share of customers holding the product at a date (opens minus closes).
Adoption rate: share of customers who newly open it in the 3-month label window of a cut-off
without holding it at the cut-off. Books: managers in post, book sizes at the extract date and
the reassignments of the history window. Reads only ``raw/`` (never the oracle).
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from ml.core.config import EXTRACT_DATE, HISTORY_START, HOLDOUT_CUTOFF, SEEDS_DIR

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


def book_sizes(raw: Path, as_of: date = EXTRACT_DATE) -> dict:
    """Managers with a book at ``as_of``, the spread of book sizes and the window's reassignments."""
    con = duckdb.connect()
    con.execute(f"create view assignments as select * from read_parquet('{raw}/customer_assignments/*.parquet')")
    con.execute(f"create view managers as select * from read_parquet('{raw}/account_managers/*.parquet')")
    sizes = con.execute("""
        select count(*), min(n), quantile_disc(n, 0.1), quantile_disc(n, 0.5), quantile_disc(n, 0.9), max(n)
        from (select manager_id, count(*) as n from assignments
              where valid_from <= $1 and (valid_to is null or valid_to > $1) group by manager_id)""",
                        [as_of]).fetchall()[0]
    reasons = dict(con.execute("""select assignment_reason, count(*) from assignments
                                  where assignment_reason <> 'initial' group by 1 order by 1""").fetchall())
    roster = con.execute("select count(*), count(left_on) from managers").fetchall()[0]
    return {"managers_with_book": sizes[0], "book_size_min": sizes[1], "book_size_p10": sizes[2],
            "book_size_median": sizes[3], "book_size_p90": sizes[4], "book_size_max": sizes[5],
            "managers_on_roster": roster[0], "managers_left": roster[1], "reassignments_in_window": reasons}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.datagen.stats", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", type=Path, default=Path("data/raw"), help="the raw tables folder of a generated bank")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    rates = product_rates(args.raw)
    overall = any_non_savings(args.raw)
    books = book_sizes(args.raw)
    if args.markdown:
        print(rates.drop(columns="customers").to_markdown(index=False))
        print()
        print(f"Customers: {overall['customers']:,}; holding any non-savings product on "
              f"{HOLDOUT_CUTOFF}: {overall['any_non_savings_holding_pct']}%; adopting one in the "
              f"3 months after it: {overall['any_non_savings_adoption_3m_pct']}%.")
        print(f"Books on {EXTRACT_DATE}: {books['managers_with_book']} managers, book sizes "
              f"{books['book_size_min']} / {books['book_size_p10']} / {books['book_size_median']} / "
              f"{books['book_size_p90']} / {books['book_size_max']} (min / p10 / median / p90 / max); "
              f"reassignments since {HISTORY_START}: {books['reassignments_in_window']}.")
    else:
        print(json.dumps({"products": rates.drop(columns="customers").to_dict("records"), **overall,
                          "books": books}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
