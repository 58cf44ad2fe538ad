-- Adoption labels, one row per (customer, cut-off), one column per product:
--   1    the customer newly adopted the product in [cutoff, cutoff + label_window_months)
--   0    did not
--   NULL already held it at the cut-off (not a candidate)
-- Same keys as customer_features_monthly (snapshot_ts = the cut-off). Feast / training read
-- the Parquet export.


with

spine as (

    select * from {{ ref('int_customers_snapshotted') }}
    where snapshot_kind = 'cutoff'

),

snapshots as (

    select * from {{ ref('int_snapshot_dates') }}

),

holdings as (

    select * from {{ ref('int_customer_holdings_bitmapped') }}

),

adoptions as (

    select * from {{ ref('int_product_adoptions_windowed') }}

),

adoptions_pivoted as (

    select
        customer_key,
        snapshot_ts,
        {%- for product_id in product_ids() %}
        max(case when product_id = '{{ product_id }}' then 1 else 0 end) as adopted_{{ product_id | lower }}{{ "," if not loop.last }}
        {%- endfor %}
    from adoptions
    group by customer_key, snapshot_ts

),

labelled as (

    select
        spine.customer_id,
        spine.snapshot_ts,
        snapshots.label_window_end_ts,
        {%- for product_id in product_ids() %}
        {%- set p = product_id | lower %}
        cast(case
            when {{ holds_at_snapshot('holdings.held_bitmap_' ~ p, 'spine.snapshot_index') }} = 1 then null
            when coalesce(adoptions_pivoted.adopted_{{ p }}, 0) = 1 then 1
            else 0
        end as {{ dbt.type_bigint() }}) as label_{{ p }}{{ "," if not loop.last }}
        {%- endfor %}
    from spine
    inner join snapshots
        on spine.snapshot_ts = snapshots.snapshot_ts
    left join holdings
        on spine.customer_key = holdings.customer_key
    left join adoptions_pivoted
        on spine.customer_key = adoptions_pivoted.customer_key
        and spine.snapshot_ts = adoptions_pivoted.snapshot_ts

),

final as (

    select
        customer_id,
        snapshot_ts,
        label_window_end_ts,
        {%- for product_id in product_ids() %}
        label_{{ product_id | lower }},
        {%- endfor %}
        cast(
            {%- for product_id in product_ids() %}
            coalesce(label_{{ product_id | lower }}, 0){{ " +" if not loop.last }}
            {%- endfor %}
        as {{ dbt.type_bigint() }}) as n_adopted,
        cast(
            {%- for product_id in product_ids() %}
            case when label_{{ product_id | lower }} is null then 0 else 1 end{{ " +" if not loop.last }}
            {%- endfor %}
        as {{ dbt.type_bigint() }}) as n_candidate_products
    from labelled

)

select * from final
