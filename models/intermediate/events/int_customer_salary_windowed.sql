-- Salary credits per (customer, snapshot) in the trailing 180 days before the snapshot: the
-- latest credit, the number in the last 90 days and the average amount. Customers without a
-- credit in a snapshot's window have no row for it.

{% set longest = var('trailing_windows_days') | max %}

with

credits as (

    select * from {{ ref('stg_bank__events') }}
    where event_type = 'salary_credit'

),

lookback as (

    select * from {{ ref('int_snapshot_lookback_days') }}

),

windowed as (

    select
        credits.customer_key,
        lookback.snapshot_ts,
        max(credits.event_time) as last_salary_credit_at,
        count(case when {{ in_trailing_days('lookback.days_before', 90) }} then 1 end) as n_salary_credits_90d,
        avg(credits.amount) as avg_salary_amount_{{ longest }}d
    from credits
    inner join lookback
        on credits.event_date = lookback.event_date
    group by credits.customer_key, lookback.snapshot_ts

)

select * from windowed
