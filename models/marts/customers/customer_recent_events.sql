-- The latest events of each customer for the account manager's customer view: every valid
-- event in the var recent_events_days days before the extract date. Serving reads the
-- Parquet export (newest first, with its own limit); it is sorted by customer so that a
-- lookup reads only the row groups that can hold the customer.

with

events as (

    select * from {{ ref('stg_bank__events') }}
    where event_time >= {{ dbt.dateadd('day', -1 * var('recent_events_days'), timestamp_literal(var('extract_date'))) }}

),

customers as (

    select * from {{ ref('stg_bank__customers') }}

),

final as (

    select
        customers.customer_id,
        events.event_id,
        events.event_time,
        events.event_type,
        events.product_id,
        events.amount,
        events.channel
    from events
    inner join customers
        on events.customer_key = customers.customer_key

)

select * from final
order by customer_id, event_time desc
