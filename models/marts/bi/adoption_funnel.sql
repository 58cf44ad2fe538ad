-- The adoption funnel per month and product. From the bank's own history (every cut-off):
-- customers who could adopt the product (not holding it at the cut-off) and those who did in
-- the label window. From recommendations (once serving has exported any): customers shown the
-- product that month, their managers' responses, and adoptions within the window after it.

with

snapshots as (

    select * from {{ ref('int_snapshot_dates') }}
    where snapshot_kind = 'cutoff'

),

customers as (

    select * from {{ ref('int_customers_snapshotted') }}
    where snapshot_kind = 'cutoff'

),

holdings as (

    select * from {{ ref('int_holdings_snapshotted') }}

),

adoptions as (

    select * from {{ ref('int_product_adoptions_windowed') }}

),

bitmaps as (

    select * from {{ ref('int_customer_holdings_bitmapped') }}

),

recommendations as (

    select * from {{ ref('recommendation_feedback') }}

),

products as (

    select * from {{ ref('products') }}

),

customers_per_cutoff as (

    select snapshot_ts, count(*) as n_customers
    from customers
    group by snapshot_ts

),

holders_per_cutoff as (

    select holdings.snapshot_ts, holdings.product_id, count(*) as n_holders
    from holdings
    inner join snapshots
        on holdings.snapshot_ts = snapshots.snapshot_ts
    group by holdings.snapshot_ts, holdings.product_id

),

new_adopters as (

    -- adoptions in the window by customers who did not hold the product at the cut-off
    select
        adoptions.snapshot_ts,
        adoptions.product_id,
        count(*) as n_adopted
    from adoptions
    inner join snapshots
        on adoptions.snapshot_ts = snapshots.snapshot_ts
    left join bitmaps
        on adoptions.customer_key = bitmaps.customer_key
    where
        {%- for product_id in product_ids() %}
        (adoptions.product_id = '{{ product_id }}'
            and {{ holds_at_snapshot('bitmaps.held_bitmap_' ~ product_id | lower, 'snapshots.snapshot_index') }} = 0)
        {{ "or" if not loop.last }}
        {%- endfor %}
    group by adoptions.snapshot_ts, adoptions.product_id

),

history as (

    select
        cast(customers_per_cutoff.snapshot_ts as date) as period_month,
        products.product_id,
        customers_per_cutoff.n_customers - coalesce(holders_per_cutoff.n_holders, 0) as n_eligible,
        coalesce(new_adopters.n_adopted, 0) as n_adopted_in_window
    from customers_per_cutoff
    cross join products
    left join holders_per_cutoff
        on customers_per_cutoff.snapshot_ts = holders_per_cutoff.snapshot_ts
        and products.product_id = holders_per_cutoff.product_id
    left join new_adopters
        on customers_per_cutoff.snapshot_ts = new_adopters.snapshot_ts
        and products.product_id = new_adopters.product_id

),

recommended as (

    select
        created_month as period_month,
        product_id,
        count(distinct customer_id) as n_recommended_customers,
        count(distinct case when response is not null then customer_id end) as n_answered_customers,
        count(distinct case when response = 'interested' then customer_id end) as n_interested_customers,
        count(distinct case when is_adopted_in_window = 1 then customer_id end) as n_adopted_after_recommendation
    from recommendations
    group by created_month, product_id

),

final as (

    select
        coalesce(history.period_month, recommended.period_month) as period_month,
        coalesce(history.product_id, recommended.product_id) as product_id,
        products.category as product_category,
        history.n_eligible,
        history.n_adopted_in_window,
        1.0 * history.n_adopted_in_window / nullif(history.n_eligible, 0) as adoption_rate,
        coalesce(recommended.n_recommended_customers, 0) as n_recommended_customers,
        coalesce(recommended.n_answered_customers, 0) as n_answered_customers,
        coalesce(recommended.n_interested_customers, 0) as n_interested_customers,
        coalesce(recommended.n_adopted_after_recommendation, 0) as n_adopted_after_recommendation,
        1.0 * recommended.n_interested_customers / nullif(recommended.n_answered_customers, 0) as interest_rate,
        1.0 * recommended.n_adopted_after_recommendation / nullif(recommended.n_recommended_customers, 0)
            as recommended_conversion_rate
    from history
    full outer join recommended
        on history.period_month = recommended.period_month
        and history.product_id = recommended.product_id
    inner join products
        on coalesce(history.product_id, recommended.product_id) = products.product_id

)

select * from final
