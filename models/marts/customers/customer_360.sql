-- The unified customer view, one row per customer, as of the extract date: profile, segment
-- labels, current holdings (bank positions plus products reported held elsewhere), activity
-- aggregates and triggers. The aggregates are the current snapshot's features, so a manager
-- sees exactly the numbers the model scored (the same macro computes both). Serving reads the
-- Parquet export.

{% set longest = var('trailing_windows_days') | max %}

with

customers as (

    select * from {{ ref('int_customers_enriched') }}

),

holdings as (

    select * from {{ ref('int_holdings_current_combined') }}

),

products as (

    select * from {{ ref('products') }}

),

current_features as (

    {{ customer_features_as_of(var('extract_date')) }}

),

holdings_pivoted as (

    select
        holdings.customer_key,
        {%- for product_id in product_ids() %}
        max(case when holdings.product_id = '{{ product_id }}' then 1 else 0 end) as holds_{{ product_id | lower }},
        {%- endfor %}
        {%- for category in product_categories() %}
        count(case when holdings.product_category = '{{ category }}' then 1 end) as n_held_{{ category }},
        {%- endfor %}
        count(*) as n_products_held,
        sum(holdings.is_reported_held * (1 - holdings.is_held_at_bank)) as n_products_held_elsewhere,
        sum(case when holdings.is_held_at_bank = 1 then products.annual_value_cny else 0 end)
            as estimated_annual_value_cny
    from holdings
    inner join products
        on holdings.product_id = products.product_id
    group by holdings.customer_key

),

final as (

    select
        -- ids
        customers.customer_id,

        -- profile
        customers.age,
        customers.gender,
        customers.region_code,
        customers.region_name_zh,
        customers.city_zh,
        customers.province_zh,
        customers.is_wuxi,
        customers.urbanisation,
        customers.education,
        customers.marital_status,
        customers.asset_level,
        customers.assets_cny,
        customers.risk_preference,
        customers.risk_tolerance,
        customers.card_type,
        customers.customer_since,
        current_features.tenure_years,

        -- segments
        {{ age_band('customers.age') }} as age_band,
        {{ life_stage('customers.age', 'customers.marital_status') }} as life_stage,
        {{ value_tier('customers.asset_level') }} as value_tier,

        -- holdings now (bank positions and products reported held elsewhere)
        {%- for product_id in product_ids() %}
        coalesce(holdings_pivoted.holds_{{ product_id | lower }}, 0) as holds_{{ product_id | lower }},
        {%- endfor %}
        {%- for category in product_categories() %}
        coalesce(holdings_pivoted.n_held_{{ category }}, 0) as n_held_{{ category }},
        {%- endfor %}
        coalesce(holdings_pivoted.n_products_held, 0) as n_products_held,
        coalesce(holdings_pivoted.n_products_held_elsewhere, 0) as n_products_held_elsewhere,
        coalesce(holdings_pivoted.estimated_annual_value_cny, 0) as estimated_annual_value_cny,

        -- activity (current snapshot features)
        {%- for category in product_categories() %}
        current_features.n_{{ category }}_events_90d,
        current_features.amount_{{ category }}_{{ longest }}d,
        current_features.days_since_{{ category }}_event,
        {%- endfor %}
        current_features.n_everyday_txn_30d,
        current_features.n_everyday_txn_90d,
        current_features.activity_trend,
        current_features.days_since_everyday_txn,

        -- channels
        {%- for channel in var('bindable_channels') %}
        current_features.has_{{ channel }},
        {%- endfor %}
        current_features.n_channels_bound,

        -- triggers
        current_features.days_since_salary_credit,
        current_features.n_salary_credits_90d,
        current_features.avg_salary_amount_{{ longest }}d,
        current_features.days_since_first_salary_credit,
        current_features.days_since_deposit_maturity,
        current_features.last_deposit_maturity_amount,
        current_features.days_since_card_replacement,
        case
            when least(
                coalesce(current_features.days_since_first_salary_credit, 99999),
                coalesce(current_features.days_since_deposit_maturity, 99999),
                coalesce(current_features.days_since_card_replacement, 99999)
            ) > {{ var('trigger_window_days') }} then null
            when current_features.days_since_first_salary_credit <= coalesce(current_features.days_since_deposit_maturity, 99999)
                and current_features.days_since_first_salary_credit <= coalesce(current_features.days_since_card_replacement, 99999)
                then 'new_payroll'
            when current_features.days_since_deposit_maturity <= coalesce(current_features.days_since_card_replacement, 99999)
                then 'deposit_maturity'
            else 'card_replacement'
        end as recent_trigger,

        -- as of
        cast('{{ var("extract_date") }}' as {{ dbt.type_timestamp() }}) as as_of_ts

    from customers
    left join holdings_pivoted
        on customers.customer_key = holdings_pivoted.customer_key
    left join current_features
        on customers.customer_id = current_features.customer_id

)

select * from final
