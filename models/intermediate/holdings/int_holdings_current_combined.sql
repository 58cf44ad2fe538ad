-- What each customer holds now: positions open at the extract date (from bank events) plus
-- products the customer reported owning through an account manager (`already_owns`
-- feedback, possibly held at another bank). One row per (customer, product).

with

bank_holdings as (

    {{ holdings_as_of(timestamp_literal(var('extract_date'))) }}

),

reported as (

    select * from {{ ref('int_holdings_reported') }}

),

customers as (

    select * from {{ ref('stg_bank__customers') }}

),

products as (

    select * from {{ ref('products') }}

),

combined as (

    select
        coalesce(bank_holdings.customer_key, reported.customer_key) as customer_key,
        coalesce(bank_holdings.product_id, reported.product_id) as product_id,
        case when bank_holdings.customer_key is not null then 1 else 0 end as is_held_at_bank,
        case when reported.customer_key is not null then 1 else 0 end as is_reported_held,
        bank_holdings.opened_at as held_since,
        reported.reported_at
    from bank_holdings
    full outer join reported
        on bank_holdings.customer_key = reported.customer_key
        and bank_holdings.product_id = reported.product_id

),

final as (

    select
        customers.customer_id,
        combined.customer_key,
        combined.product_id,
        products.category as product_category,
        combined.is_held_at_bank,
        combined.is_reported_held,
        case
            when combined.is_held_at_bank = 1 and combined.is_reported_held = 1 then 'bank_and_reported'
            when combined.is_held_at_bank = 1 then 'bank'
            else 'reported'
        end as holding_source,
        combined.held_since,
        combined.reported_at
    from combined
    inner join customers
        on combined.customer_key = customers.customer_key
    inner join products
        on combined.product_id = products.product_id

)

select * from final
