-- Everyday activity per (customer, snapshot): everyday account transactions (product_trade
-- on SAV_DEMAND, the bulk of all events) in the trailing windows before the snapshot, and
-- the counts the activity trend compares. Events join int_snapshot_lookback_days on their
-- date (macro in_trailing_days); customers with no transaction in a snapshot's 180-day
-- window have no row for it.

with

transactions as (

    select * from {{ ref('stg_bank__events') }}
    where event_type = 'product_trade'
        and product_id = '{{ var("everyday_product_id") }}'

),

lookback as (

    select * from {{ ref('int_snapshot_lookback_days') }}

),

windowed as (

    select
        transactions.customer_key,
        lookback.snapshot_ts,
        count(case when {{ in_trailing_days('lookback.days_before', 30) }} then 1 end) as n_everyday_txn_30d,
        count(case when {{ in_trailing_days('lookback.days_before', 90) }} then 1 end) as n_everyday_txn_90d,
        count(case when {{ in_trailing_days_between('lookback.days_before', 180, 90) }} then 1 end)
            as n_everyday_txn_prev_90d,
        sum(case when {{ in_trailing_days('lookback.days_before', 90) }} then transactions.amount end)
            as amount_everyday_90d,
        max(transactions.event_time) as last_everyday_txn_at
    from transactions
    inner join lookback
        on transactions.event_date = lookback.event_date
    group by transactions.customer_key, lookback.snapshot_ts

)

select * from windowed
