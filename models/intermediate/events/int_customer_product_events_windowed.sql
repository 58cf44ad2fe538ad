-- Recency, frequency and monetary value per product category and (customer, snapshot), over
-- the trailing windows before the snapshot (30 / 90 / 180 days), plus event counts by type.
-- Category RFM counts opens, trades and redeems of every product but the everyday account
-- (whose transactions are the activity features); the amount is what was put in (opens and
-- trades). Recency looks back as far as the longest window: NULL = nothing in 180 days.

{% set longest = var('trailing_windows_days') | max %}
{% set everyday = var('everyday_product_id') %}

with

events as (

    select * from {{ ref('stg_bank__events') }}
    where event_type in ('product_open', 'product_trade', 'product_redeem', 'product_close')
        and not (event_type = 'product_trade' and product_id = '{{ everyday }}')

),

products as (

    select * from {{ ref('products') }}

),

lookback as (

    select * from {{ ref('int_snapshot_lookback_days') }}

),

classified as (

    select
        events.customer_key,
        events.event_date,
        events.event_time,
        events.event_type,
        events.amount,
        case
            when events.product_id <> '{{ everyday }}' and events.event_type <> 'product_close'
                then products.category
        end as rfm_category
    from events
    inner join products
        on events.product_id = products.product_id

),

windowed as (

    select
        classified.customer_key,
        lookback.snapshot_ts,
        {%- for category in product_categories() %}
        {%- for days in var('trailing_windows_days') %}
        count(case
            when rfm_category = '{{ category }}' and {{ in_trailing_days('lookback.days_before', days) }} then 1
        end) as n_{{ category }}_events_{{ days }}d,
        {%- endfor %}
        sum(case
            when rfm_category = '{{ category }}' and event_type in ('product_open', 'product_trade') then amount
        end) as amount_{{ category }}_{{ longest }}d,
        max(case when rfm_category = '{{ category }}' then event_time end) as last_{{ category }}_event_at,
        {%- endfor %}
        count(case when event_type = 'product_open' then 1 end) as n_opens_{{ longest }}d,
        count(case when event_type = 'product_redeem' then 1 end) as n_redeems_{{ longest }}d,
        count(case when event_type = 'product_close' then 1 end) as n_closes_{{ longest }}d
    from classified
    inner join lookback
        on classified.event_date = lookback.event_date
    group by classified.customer_key, lookback.snapshot_ts

)

select * from windowed
