-- Product penetration now, by segment: one row per product and customer segment (region,
-- life stage, value tier, age band) with how many of the segment's customers hold the
-- product at this bank. n_customers and n_holders are additive, so BI can roll up to any
-- coarser segment (penetration = sum(n_holders) / sum(n_customers)).

with

customers as (

    select * from {{ ref('customer_360') }}

),

holdings as (

    select * from {{ ref('holdings_current') }}
    where is_held_at_bank = 1

),

products as (

    select * from {{ ref('products') }}

),

segment_sizes as (

    select
        region_code,
        life_stage,
        value_tier,
        age_band,
        count(*) as n_customers
    from customers
    group by region_code, life_stage, value_tier, age_band

),

holders as (

    select
        customers.region_code,
        customers.life_stage,
        customers.value_tier,
        customers.age_band,
        holdings.product_id,
        count(*) as n_holders
    from holdings
    inner join customers
        on holdings.customer_id = customers.customer_id
    group by customers.region_code, customers.life_stage, customers.value_tier, customers.age_band, holdings.product_id

),

final as (

    select
        products.product_id,
        products.category as product_category,
        segment_sizes.region_code,
        segment_sizes.life_stage,
        segment_sizes.value_tier,
        segment_sizes.age_band,
        segment_sizes.n_customers,
        coalesce(holders.n_holders, 0) as n_holders,
        1.0 * coalesce(holders.n_holders, 0) / segment_sizes.n_customers as penetration_rate,
        cast('{{ var("extract_date") }}' as {{ dbt.type_timestamp() }}) as as_of_ts
    from segment_sizes
    cross join products
    left join holders
        on segment_sizes.region_code = holders.region_code
        and segment_sizes.life_stage = holders.life_stage
        and segment_sizes.value_tier = holders.value_tier
        and segment_sizes.age_band = holders.age_band
        and products.product_id = holders.product_id

)

select * from final
