with

events as (

    select * from {{ ref('base_bank__events') }}
    where quarantine_reason is null

),

final as (

    select
        -- ids
        event_id,
        customer_key,
        product_id,

        -- attributes
        event_type,
        channel,
        amount,

        -- timestamps
        event_time,
        cast(event_time as date) as event_date

    from events

)

select * from final
