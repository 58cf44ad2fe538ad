-- One row per recommended product served to an account manager, with the manager's recorded
-- response and the customer's segment: the feedback samples (positive = interested,
-- negative = not interested / already owns) for dashboards and the next training run, which
-- reads the Parquet export. Empty until serving exports its first recommendations.

with

outcomes as (

    select * from {{ ref('int_recommendation_outcomes') }}

),

customers as (

    select * from {{ ref('customer_360') }}

),

products as (

    select * from {{ ref('products') }}

),

final as (

    select
        -- ids
        outcomes.recommendation_id,
        outcomes.parent_recommendation_id,
        outcomes.customer_id,
        outcomes.manager_id,
        outcomes.product_id,
        outcomes.feedback_id,

        -- recommendation
        outcomes.stage,
        outcomes.recommendation_rank,
        outcomes.score,
        outcomes.match_score,
        outcomes.model_version,
        outcomes.arm,
        products.category as product_category,

        -- customer segment (now)
        customers.life_stage,
        customers.value_tier,
        customers.age_band,
        customers.region_code,

        -- outcome
        outcomes.response,
        outcomes.is_hit,
        outcomes.is_adopted_in_window,

        -- timestamps
        outcomes.created_at,
        cast({{ dbt.date_trunc('month', 'outcomes.created_at') }} as date) as created_month,
        outcomes.responded_at,
        outcomes.adopted_at

    from outcomes
    left join products
        on outcomes.product_id = products.product_id
    left join customers
        on outcomes.customer_id = customers.customer_id

)

select * from final
