-- Current holdings, one row per (customer, product) the customer holds now: at this bank
-- (open at the extract date) and/or reported by the customer (`already_owns` feedback).
-- Serving reads the Parquet export to never offer a product the customer already has.

with

holdings as (

    select * from {{ ref('int_holdings_current_combined') }}

),

products as (

    select * from {{ ref('products') }}

),

final as (

    select
        -- ids
        holdings.customer_id,
        holdings.product_id,

        -- attributes
        holdings.product_category,
        products.risk_level as product_risk_level,
        holdings.is_held_at_bank,
        holdings.is_reported_held,
        holdings.holding_source,

        -- timestamps
        holdings.held_since,
        holdings.reported_at,
        cast('{{ var("extract_date") }}' as {{ dbt.type_timestamp() }}) as as_of_ts

    from holdings
    inner join products
        on holdings.product_id = products.product_id

)

select * from final
