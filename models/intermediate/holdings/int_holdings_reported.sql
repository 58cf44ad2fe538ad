-- Products customers told their account manager they already own (possibly at another bank):
-- the latest report per (customer, product) says `already_owns`. customer_360 and
-- holdings_current treat these as held so serving never offers them again.

with

responses as (

    select * from {{ ref('stg_feedback__responses') }}

),

customers as (

    select * from {{ ref('stg_bank__customers') }}

),

products as (

    select * from {{ ref('products') }}

),

latest as (

    -- reports about unknown customers or products cannot correct a holding
    select
        customers.customer_key,
        responses.customer_id,
        responses.product_id,
        responses.response,
        responses.recorded_at,
        responses.manager_id,
        row_number() over (
            partition by responses.customer_id, responses.product_id
            order by responses.recorded_at desc, responses.feedback_id desc
        ) as recency_rank
    from responses
    inner join customers
        on responses.customer_id = customers.customer_id
    inner join products
        on responses.product_id = products.product_id

),

final as (

    select
        customer_key,
        customer_id,
        product_id,
        recorded_at as reported_at,
        manager_id as reported_by_manager_id
    from latest
    where recency_rank = 1
        and response = 'already_owns'

)

select * from final
