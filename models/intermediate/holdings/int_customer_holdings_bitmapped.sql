-- Point-in-time holdings in compact form, one row per customer holding anything at any
-- snapshot: per product, a bitmap of the snapshots at which it was held (bit k = the snapshot
-- with snapshot_index k; macro holds_at_snapshot reads a bit). Holdings rarely change between
-- snapshots, so this replaces a (customer x snapshot) pivot (12M rows at full scale) by one
-- row per customer. A product's spells never overlap, so the sum of distinct powers of two
-- is their bitwise OR.

with

holdings as (

    select * from {{ ref('int_holdings_snapshotted') }}

),

per_product as (

    select
        customer_key,
        product_id,
        sum(power(2, snapshot_index)) as held_bitmap
    from holdings
    group by customer_key, product_id

),

pivoted as (

    select
        customer_key,
        {%- for product_id in product_ids() %}
        cast(sum(case when product_id = '{{ product_id }}' then held_bitmap else 0 end) as {{ dbt.type_bigint() }})
            as held_bitmap_{{ product_id | lower }}{{ "," if not loop.last }}
        {%- endfor %}
    from per_product
    group by customer_key

)

select * from pivoted
