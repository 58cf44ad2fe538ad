-- The monthly effect report, one row per calendar month from the start of the history:
-- adoptions at the bank (new holdings of non-savings products), the recommendations served
-- and answered that month, stage-one and stage-two hit rates, the two-step lift, and the
-- conversion of recommended customers.

with

months as (

    {{ dbt.date_spine(
        'month',
        "cast('" ~ var('history_start') ~ "' as date)",
        "cast('" ~ var('extract_date') ~ "' as date)"
    ) }}

),

spells as (

    select * from {{ ref('int_product_spells_reconstructed') }}

),

recommendations as (

    select * from {{ ref('recommendation_feedback') }}

),

customers as (

    select * from {{ ref('stg_bank__customers') }}

),

adoptions as (

    -- a new holding: a spell starting in the month, after the history began
    select
        cast({{ dbt.date_trunc('month', 'opened_at') }} as date) as report_month,
        count(*) as n_adoptions,
        count(distinct customer_key) as n_adopting_customers
    from spells
    where product_category <> 'savings'
        and opened_at >= cast('{{ var("history_start") }}' as {{ dbt.type_timestamp() }})
    group by cast({{ dbt.date_trunc('month', 'opened_at') }} as date)

),

served as (

    select
        created_month as report_month,
        count(case when stage = 1 then 1 end) as n_recommended_stage_1,
        count(case when stage = 2 then 1 end) as n_recommended_stage_2,
        count(distinct customer_id) as n_recommended_customers,
        count(response) as n_answered,
        count(case when stage = 1 and response is not null then 1 end) as n_answered_stage_1,
        count(case when stage = 2 and response is not null then 1 end) as n_answered_stage_2,
        sum(case when stage = 1 then is_hit else 0 end) as n_hits_stage_1,
        sum(case when stage = 2 then is_hit else 0 end) as n_hits_stage_2,
        count(distinct case when is_adopted_in_window = 1 then customer_id end) as n_converted_customers
    from recommendations
    group by created_month

),

calendar as (

    select cast(date_month as date) as report_month from months
    union
    select report_month from served

),

final as (

    select
        calendar.report_month,
        (select count(*) from customers) as n_customers,
        coalesce(adoptions.n_adoptions, 0) as n_adoptions,
        coalesce(adoptions.n_adopting_customers, 0) as n_adopting_customers,
        1000.0 * coalesce(adoptions.n_adopting_customers, 0) / (select count(*) from customers)
            as adopting_customers_per_1000,
        coalesce(served.n_recommended_stage_1, 0) as n_recommended_stage_1,
        coalesce(served.n_recommended_stage_2, 0) as n_recommended_stage_2,
        coalesce(served.n_recommended_customers, 0) as n_recommended_customers,
        coalesce(served.n_answered, 0) as n_answered,
        1.0 * served.n_hits_stage_1 / nullif(served.n_answered_stage_1, 0) as hit_rate_stage_1,
        1.0 * served.n_hits_stage_2 / nullif(served.n_answered_stage_2, 0) as hit_rate_stage_2,
        (1.0 * served.n_hits_stage_2 / nullif(served.n_answered_stage_2, 0))
            / nullif(1.0 * served.n_hits_stage_1 / nullif(served.n_answered_stage_1, 0), 0) - 1
            as two_step_lift,
        1.0 * served.n_converted_customers / nullif(served.n_recommended_customers, 0)
            as recommended_conversion_rate
    from calendar
    left join adoptions
        on calendar.report_month = adoptions.report_month
    left join served
        on calendar.report_month = served.report_month

)

select * from final
