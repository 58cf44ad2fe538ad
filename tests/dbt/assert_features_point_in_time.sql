-- No leakage: for a fixed sample of customers (ids starting with '00', about 1 in 256), recompute
-- a set of features at every snapshot straight from the typed raw event rows with plain SQL
-- that keeps only events strictly before the snapshot (no macro, no intermediate model), and
-- compare with customer_features_monthly. Returns the mismatching rows; none = correct.
-- (tests/warehouse/test_dbt_build.py does the same from the raw Parquet files.)

{% set sample_prefix = '00' %}

with

snapshots as (

    select snapshot_ts from {{ ref('int_snapshot_dates') }}

),

sample_customers as (

    select customer_id, customer_key from {{ ref('base_bank__customers') }}
    where customer_id like '{{ sample_prefix }}%'
        and quarantine_reason is null

),

known as (

    -- every valid event row of the sampled customers
    select
        sample_customers.customer_id,
        events.event_time,
        events.event_type,
        events.product_id,
        events.amount,
        events.channel
    from {{ ref('base_bank__events') }} as events
    inner join sample_customers
        on events.customer_key = sample_customers.customer_key
    where events.quarantine_reason is null

),

sample_features as (

    select * from {{ ref('customer_features_monthly') }}
    where customer_id like '{{ sample_prefix }}%'

),

recomputed as (

    select
        sample_features.customer_id,
        sample_features.snapshot_ts,
        -- everyday transactions in [snapshot - 30 days, snapshot)
        (select count(*) from known
         where known.customer_id = sample_features.customer_id
            and known.event_type = 'product_trade' and known.product_id = '{{ var("everyday_product_id") }}'
            and known.event_time >= {{ dbt.dateadd('day', -30, 'sample_features.snapshot_ts') }}
            and known.event_time < sample_features.snapshot_ts) as n_everyday_txn_30d,
        -- salary credits in [snapshot - 90 days, snapshot)
        (select count(*) from known
         where known.customer_id = sample_features.customer_id
            and known.event_type = 'salary_credit'
            and known.event_time >= {{ dbt.dateadd('day', -90, 'sample_features.snapshot_ts') }}
            and known.event_time < sample_features.snapshot_ts) as n_salary_credits_90d,
        -- mobile banking bound before the snapshot
        (select count(*) > 0 from known
         where known.customer_id = sample_features.customer_id
            and known.event_type = 'channel_bind' and known.channel = 'mobile_banking'
            and known.event_time < sample_features.snapshot_ts) as has_mobile_banking,
        -- the latest salary credit in [snapshot - 180 days, snapshot)
        (select max(known.event_time) from known
         where known.customer_id = sample_features.customer_id
            and known.event_type = 'salary_credit'
            and known.event_time >= {{ dbt.dateadd('day', -180, 'sample_features.snapshot_ts') }}
            and known.event_time < sample_features.snapshot_ts) as last_salary_credit_at,
        -- time deposit held: the latest open / close before the snapshot is an open
        coalesce((select max_by(event_type = 'product_open', event_time) from known
         where known.customer_id = sample_features.customer_id
            and known.product_id = 'SAV_TIME' and known.event_type in ('product_open', 'product_close')
            and known.event_time < sample_features.snapshot_ts), false) as holds_sav_time,
        sample_features.n_everyday_txn_30d as mart_n_everyday_txn_30d,
        sample_features.n_salary_credits_90d as mart_n_salary_credits_90d,
        sample_features.has_mobile_banking as mart_has_mobile_banking,
        sample_features.days_since_salary_credit as mart_days_since_salary_credit,
        sample_features.holds_sav_time as mart_holds_sav_time
    from sample_features

),

compared as (

    -- (days since: outside the subqueries, where Spark allows no outer column but in WHERE)
    select
        *,
        {{ dbt.datediff('last_salary_credit_at', 'snapshot_ts', 'day') }} as days_since_salary_credit
    from recomputed

)

select *
from compared
where n_everyday_txn_30d <> mart_n_everyday_txn_30d
    or n_salary_credits_90d <> mart_n_salary_credits_90d
    or cast(has_mobile_banking as integer) <> mart_has_mobile_banking
    or days_since_salary_credit is distinct from mart_days_since_salary_credit
    or cast(holds_sav_time as integer) <> mart_holds_sav_time
