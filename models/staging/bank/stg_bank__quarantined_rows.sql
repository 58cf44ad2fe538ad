-- Raw rows that failed validation, with the reason, so bad data is visible instead of dropped.
-- One row per quarantined raw row; both source tables in one relation for the DQ dashboard.

with

customers as (

    select * from {{ ref('base_bank__customers') }}
    where quarantine_reason is not null

),

events as (

    select * from {{ ref('base_bank__events') }}
    where quarantine_reason is not null

),

quarantined_customers as (

    select
        'customers' as source_table,
        quarantine_reason,
        customer_id,
        cast(null as {{ dbt.type_bigint() }}) as event_id,
        age,
        cast(null as {{ dbt.type_string() }}) as event_type,
        cast(null as {{ dbt.type_string() }}) as product_id,
        cast(null as {{ type_double() }}) as amount,
        cast(null as {{ dbt.type_timestamp() }}) as event_time
    from customers

),

quarantined_events as (

    select
        'events' as source_table,
        quarantine_reason,
        raw_customer_id as customer_id,
        event_id,
        cast(null as integer) as age,
        event_type,
        product_id,
        amount,
        event_time
    from events

),

final as (

    select * from quarantined_customers
    union all
    select * from quarantined_events

)

select * from final
