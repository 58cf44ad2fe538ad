-- Recommendation performance for the dashboards: per month served, stage (1 = first ranking,
-- 2 = re-ranking after feedback), account manager and product, how many recommendations
-- were served, answered, hits (interested) and adopted. Counts are additive, so BI can roll
-- up to stage-one vs stage-two hit rates, per manager or per product; the rates here are
-- for this grain.

with

feedback as (

    select * from {{ ref('recommendation_feedback') }}

),

aggregated as (

    select
        created_month,
        stage,
        manager_id,
        product_id,
        product_category,
        count(*) as n_recommended,
        count(distinct customer_id) as n_customers,
        count(response) as n_answered,
        sum(case when response = 'interested' then 1 else 0 end) as n_interested,
        sum(case when response = 'not_interested' then 1 else 0 end) as n_not_interested,
        sum(case when response = 'already_owns' then 1 else 0 end) as n_already_owns,
        sum(is_adopted_in_window) as n_adopted,
        avg(match_score) as avg_match_score
    from feedback
    group by created_month, stage, manager_id, product_id, product_category

),

final as (

    select
        *,
        1.0 * n_interested / nullif(n_answered, 0) as hit_rate,
        1.0 * n_adopted / nullif(n_recommended, 0) as adoption_rate
    from aggregated

)

select * from final
