-- Holding spells reconstructed from open / close events: one row per period
-- [opened_at, closed_at) during which a customer held a product (closed_at null = still held).
-- A customer holds a product or not (no parallel positions): an open while holding and a
-- close while not holding change nothing. A product closed and reopened has two spells.

with

events as (

    select * from {{ ref('stg_bank__events') }}
    where event_type in ('product_open', 'product_close')

),

products as (

    select * from {{ ref('products') }}

),

sequenced as (

    select
        customer_key,
        product_id,
        event_id,
        event_type,
        event_time,
        amount,
        lag(event_type) over (
            partition by customer_key, product_id order by event_time, event_id
        ) as previous_event_type
    from events

),

state_changes as (

    -- opens that start a holding and closes that end one; these alternate open, close, ...
    select * from sequenced
    where (event_type = 'product_open' and coalesce(previous_event_type, 'product_close') = 'product_close')
        or (event_type = 'product_close' and previous_event_type = 'product_open')

),

spells as (

    select
        customer_key,
        product_id,
        event_id as open_event_id,
        event_type,
        event_time as opened_at,
        amount as opening_amount_cny,
        lead(event_time) over (
            partition by customer_key, product_id order by event_time, event_id
        ) as closed_at,
        row_number() over (
            partition by customer_key, product_id order by event_time, event_id
        ) as state_change_number
    from state_changes

),

final as (

    select
        -- ids
        spells.open_event_id,
        spells.customer_key,
        spells.product_id,

        -- attributes
        products.category as product_category,
        cast((spells.state_change_number + 1) / 2 as integer) as spell_number,
        spells.opening_amount_cny,

        -- timestamps
        spells.opened_at,
        spells.closed_at

    from spells
    inner join products
        on spells.product_id = products.product_id
    where spells.event_type = 'product_open'

)

select * from final
