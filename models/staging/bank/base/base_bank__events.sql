-- Every raw event row, typed and cleaned, with the reason it is quarantined (null if valid).
-- The one staging model that joins (to the product seed and the valid customers), because
-- those checks decide whether a row is quarantined. At 23M rows this is the largest table,
-- so it is kept slim: valid rows are identified by customer_key (resolving to
-- stg_bank__customers) and the raw customer id string is kept only for quarantined rows.

with

source as (

    select * from {{ source('bank', 'events') }}

),

products as (

    select product_id from {{ ref('products') }}

),

valid_customers as (

    select customer_key from {{ ref('base_bank__customers') }}
    where quarantine_reason is null

),

typed as (

    select
        -- ids
        cast(event_id as {{ dbt.type_bigint() }}) as event_id,
        customer_id as raw_customer_id,
        {{ customer_key('customer_id') }} as customer_key,
        {{ clean_enum('product_id', product_ids(), case='upper') }} as product_id,

        -- attributes
        {{ clean_enum('event_type', var('event_types')) }} as event_type,
        {{ clean_enum('channel', var('channels')) }} as channel,
        cast(amount as {{ type_double() }}) as amount,

        -- timestamps
        cast(event_time as {{ dbt.type_timestamp() }}) as event_time

    from source

),

checked as (

    select
        typed.event_id,
        typed.customer_key,
        typed.product_id,
        typed.event_type,
        typed.channel,
        typed.amount,
        typed.event_time,
        case
            when typed.event_id is null then 'missing_event_id'
            when typed.raw_customer_id is null then 'missing_customer_id'
            -- ids are validated on the customer table; an id that matches no valid customer
            -- is either malformed or unknown
            when valid_customers.customer_key is null then
                case
                    when {{ is_hex_digest('typed.raw_customer_id') }} then 'unknown_customer'
                    else 'malformed_customer_id'
                end
            when typed.event_time is null then 'missing_event_time'
            when typed.event_time >= cast('{{ var("extract_date") }}' as {{ dbt.type_timestamp() }})
                then 'event_after_extract_date'
            when typed.event_type not in ('{{ var("event_types") | join("', '") }}')
                or typed.event_type is null then 'unknown_event_type'
            when typed.product_id is null
                and (typed.event_type like 'product_%' or typed.event_type = 'deposit_maturity')
                then 'missing_product_id'
            when typed.product_id is not null and products.product_id is null then 'unknown_product_id'
            when typed.amount < 0 then 'negative_amount'
            when typed.channel not in ('{{ var("channels") | join("', '") }}')
                or typed.channel is null then 'unknown_channel'
        end as quarantine_reason,
        typed.raw_customer_id

    from typed
    left join products
        on typed.product_id = products.product_id
    left join valid_customers
        on typed.customer_key = valid_customers.customer_key

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

        -- data quality
        quarantine_reason,
        case when quarantine_reason is not null then raw_customer_id end as raw_customer_id

    from checked

)

select * from final
