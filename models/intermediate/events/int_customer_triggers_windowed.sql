-- Trigger events per (customer, snapshot) in the trailing 180 days before the snapshot, the
-- moments when customers respond best: the latest deposit maturity (and the amount that
-- matured) and the latest card replacement. Salary credits are in
-- int_customer_salary_windowed, the first one ("new payroll") in int_customer_milestones.

with

triggers as (

    select * from {{ ref('stg_bank__events') }}
    where event_type in ('deposit_maturity', 'card_replacement')

),

lookback as (

    select * from {{ ref('int_snapshot_lookback_days') }}

),

windowed as (

    select
        triggers.customer_key,
        lookback.snapshot_ts,
        max(case when triggers.event_type = 'deposit_maturity' then triggers.event_time end)
            as last_deposit_maturity_at,
        max_by(
            case when triggers.event_type = 'deposit_maturity' then triggers.amount end,
            case when triggers.event_type = 'deposit_maturity' then triggers.event_time end
        ) as last_deposit_maturity_amount,
        max(case when triggers.event_type = 'card_replacement' then triggers.event_time end)
            as last_card_replacement_at
    from triggers
    inner join lookback
        on triggers.event_date = lookback.event_date
    group by triggers.customer_key, lookback.snapshot_ts

)

select * from windowed
