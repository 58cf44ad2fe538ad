{#
    The feature row of every customer as of one snapshot (a 'YYYY-MM-DD' midnight), the body
    of customer_features_monthly. Every input is filtered to the snapshot before the joins, so
    each snapshot is computed from its own window of events (point in time by construction)
    and with (customer)-sized rather than (customer x snapshot)-sized joins.

    With day=none: every snapshot in one pass, the windowed inputs joined on (customer,
    snapshot) instead; the same rows, for engines that plan one large join better than a union
    of many (macro features_by_snapshot_union).
#}
{% macro customer_features_as_of(day=none) %}
    {%- set snapshot = timestamp_literal(day) if day is not none else none -%}
    {%- set longest = var('trailing_windows_days') | max -%}

    select
        -- keys
        spine.customer_id,
        spine.snapshot_ts,

        -- profile
        cast(spine.age_at_snapshot as {{ dbt.type_bigint() }}) as age,
        spine.gender_male,
        spine.is_wuxi_code as is_wuxi,
        spine.urbanisation_code,
        spine.education_level,
        spine.marital_status_code,
        spine.asset_level_code as asset_level,
        spine.log_assets,
        spine.risk_tolerance,
        spine.card_tier,
        spine.tenure_years,

        -- holdings at the snapshot
        {%- for product_id in product_ids() %}
        {{ holds_at_snapshot('holdings.held_bitmap_' ~ product_id | lower, 'spine.snapshot_index') }}
            as holds_{{ product_id | lower }},
        {%- endfor %}
        {%- for category in product_categories() %}
        {%- for product_id in product_ids(category) %}
        {{ holds_at_snapshot('holdings.held_bitmap_' ~ product_id | lower, 'spine.snapshot_index') }}{{ " +" if not loop.last }}
        {%- endfor %}
            as n_held_{{ category }},
        {%- endfor %}
        {%- for product_id in product_ids() %}
        {{ holds_at_snapshot('holdings.held_bitmap_' ~ product_id | lower, 'spine.snapshot_index') }}{{ " +" if not loop.last }}
        {%- endfor %}
            as n_products_held,

        -- recency, frequency, monetary per category (the everyday account excluded)
        {%- for category in product_categories() %}
        {%- for days in var('trailing_windows_days') %}
        coalesce(product_events.n_{{ category }}_events_{{ days }}d, 0) as n_{{ category }}_events_{{ days }}d,
        {%- endfor %}
        coalesce(product_events.amount_{{ category }}_{{ longest }}d, 0) as amount_{{ category }}_{{ longest }}d,
        {{ days_before('product_events.last_' ~ category ~ '_event_at', 'spine.snapshot_ts') }} as days_since_{{ category }}_event,
        {%- endfor %}
        coalesce(product_events.n_opens_{{ longest }}d, 0) as n_opens_{{ longest }}d,
        coalesce(product_events.n_redeems_{{ longest }}d, 0) as n_redeems_{{ longest }}d,
        coalesce(product_events.n_closes_{{ longest }}d, 0) as n_closes_{{ longest }}d,

        -- channel bindings
        {%- for channel in var('bindable_channels') %}
        cast(case when {{ happened_before('milestones.first_bound_' ~ channel ~ '_at', 'spine.snapshot_ts') }} then 1 else 0 end
            as {{ dbt.type_bigint() }}) as has_{{ channel }},
        {%- endfor %}
        cast(
            {%- for channel in var('bindable_channels') %}
            case when {{ happened_before('milestones.first_bound_' ~ channel ~ '_at', 'spine.snapshot_ts') }} then 1 else 0 end{{ " +" if not loop.last }}
            {%- endfor %}
        as {{ dbt.type_bigint() }}) as n_channels_bound,

        -- everyday activity and its trend (log ratio of the last 90 days to the 90 before)
        coalesce(activity.n_everyday_txn_30d, 0) as n_everyday_txn_30d,
        coalesce(activity.n_everyday_txn_90d, 0) as n_everyday_txn_90d,
        coalesce(activity.n_everyday_txn_prev_90d, 0) as n_everyday_txn_prev_90d,
        coalesce(activity.amount_everyday_90d, 0) as amount_everyday_90d,
        ln((1.0 + coalesce(activity.n_everyday_txn_90d, 0)) / (1.0 + coalesce(activity.n_everyday_txn_prev_90d, 0)))
            as activity_trend,
        {{ days_before('activity.last_everyday_txn_at', 'spine.snapshot_ts') }} as days_since_everyday_txn,

        -- triggers
        {{ days_before('salary.last_salary_credit_at', 'spine.snapshot_ts') }} as days_since_salary_credit,
        coalesce(salary.n_salary_credits_90d, 0) as n_salary_credits_90d,
        salary.avg_salary_amount_{{ longest }}d,
        case when {{ happened_before('milestones.first_salary_credit_at', 'spine.snapshot_ts') }}
            then {{ days_before('milestones.first_salary_credit_at', 'spine.snapshot_ts') }}
        end as days_since_first_salary_credit,
        {{ days_before('triggers.last_deposit_maturity_at', 'spine.snapshot_ts') }} as days_since_deposit_maturity,
        triggers.last_deposit_maturity_amount,
        {{ days_before('triggers.last_card_replacement_at', 'spine.snapshot_ts') }} as days_since_card_replacement

    from (
        select * from {{ ref('int_customers_snapshotted') }}{{ snapshot_filter(snapshot) }}
    ) as spine
    left join {{ ref('int_customer_holdings_bitmapped') }} as holdings
        on spine.customer_key = holdings.customer_key
    left join {{ ref('int_customer_milestones') }} as milestones
        on spine.customer_key = milestones.customer_key
    left join (
        select * from {{ ref('int_customer_activity_windowed') }}{{ snapshot_filter(snapshot) }}
    ) as activity
        on spine.customer_key = activity.customer_key{{ same_snapshot(snapshot, 'activity') }}
    left join (
        select * from {{ ref('int_customer_product_events_windowed') }}{{ snapshot_filter(snapshot) }}
    ) as product_events
        on spine.customer_key = product_events.customer_key{{ same_snapshot(snapshot, 'product_events') }}
    left join (
        select * from {{ ref('int_customer_salary_windowed') }}{{ snapshot_filter(snapshot) }}
    ) as salary
        on spine.customer_key = salary.customer_key{{ same_snapshot(snapshot, 'salary') }}
    left join (
        select * from {{ ref('int_customer_triggers_windowed') }}{{ snapshot_filter(snapshot) }}
    ) as triggers
        on spine.customer_key = triggers.customer_key{{ same_snapshot(snapshot, 'triggers') }}
{% endmacro %}

{# The filter of an input to one snapshot, or none for all snapshots at once. #}
{% macro snapshot_filter(snapshot) -%}
    {%- if snapshot is not none %} where snapshot_ts = {{ snapshot }}{% endif -%}
{%- endmacro %}

{# With all snapshots at once, a windowed input joins the spine's own snapshot. #}
{% macro same_snapshot(snapshot, alias) -%}
    {%- if snapshot is none %}
        and spine.snapshot_ts = {{ alias }}.snapshot_ts
    {%- endif -%}
{%- endmacro %}

{#
    customer_features_monthly as a union of one select per snapshot (true: single-node engines,
    whose joins stay customer-sized and fit in memory at full scale) or as one pass over all
    snapshots (false: distributed engines, where planning eleven copies of a wide select costs
    more than the larger join).
#}
{% macro features_by_snapshot_union() -%}
    {{ return(adapter.dispatch('features_by_snapshot_union', 'lingxi')()) }}
{%- endmacro %}

{% macro default__features_by_snapshot_union() -%}
    {{ return(true) }}
{%- endmacro %}

{% macro spark__features_by_snapshot_union() -%}
    {{ return(false) }}
{%- endmacro %}
