-- Every served recommendation (one product for one customer) with what came of it: the
-- manager's latest recorded response, whether that was a hit, and whether the customer
-- opened the product within the label window after the recommendation was served.

with

recommendations as (

    select * from {{ ref('stg_feedback__recommendations') }}

),

responses as (

    select * from {{ ref('stg_feedback__responses') }}

),

customers as (

    select * from {{ ref('stg_bank__customers') }}

),

opens as (

    select * from {{ ref('stg_bank__events') }}
    where event_type = 'product_open'

),

latest_responses as (

    select
        recommendation_id,
        product_id,
        feedback_id,
        response,
        recorded_at,
        row_number() over (
            partition by recommendation_id, product_id order by recorded_at desc, feedback_id desc
        ) as recency_rank
    from responses

),

adoptions as (

    select
        recommendations.recommendation_id,
        recommendations.product_id,
        min(opens.event_time) as adopted_at
    from recommendations
    inner join customers
        on recommendations.customer_id = customers.customer_id
    inner join opens
        on customers.customer_key = opens.customer_key
        and recommendations.product_id = opens.product_id
        and {{ in_label_window('opens.event_time', 'recommendations.created_at') }}
    group by recommendations.recommendation_id, recommendations.product_id

),

final as (

    select
        -- ids
        recommendations.recommendation_id,
        recommendations.parent_recommendation_id,
        recommendations.customer_id,
        recommendations.manager_id,
        recommendations.product_id,
        latest_responses.feedback_id,

        -- recommendation
        recommendations.stage,
        recommendations.recommendation_rank,
        recommendations.score,
        recommendations.match_score,
        recommendations.model_version,
        recommendations.arm,

        -- outcome
        latest_responses.response,
        case
            when latest_responses.response = 'interested' then 1
            when latest_responses.response is not null then 0
        end as is_hit,
        case when adoptions.adopted_at is not null then 1 else 0 end as is_adopted_in_window,

        -- timestamps
        recommendations.created_at,
        latest_responses.recorded_at as responded_at,
        adoptions.adopted_at

    from recommendations
    left join latest_responses
        on recommendations.recommendation_id = latest_responses.recommendation_id
        and recommendations.product_id = latest_responses.product_id
        and latest_responses.recency_rank = 1
    left join adoptions
        on recommendations.recommendation_id = adoptions.recommendation_id
        and recommendations.product_id = adoptions.product_id

)

select * from final
