-- Adoption base rate per product and cut-off: positives / candidates (customers not holding
-- the product at the cut-off). How imbalanced each product's training data is.

with

labels as (

    select * from {{ ref('labels_adoption') }}

),

per_product as (

    {%- for product_id in product_ids() %}
    select
        snapshot_ts,
        '{{ product_id }}' as product_id,
        count(label_{{ product_id | lower }}) as n_candidates,
        sum(label_{{ product_id | lower }}) as n_positives
    from labels
    group by snapshot_ts
    {{ "union all" if not loop.last }}
    {%- endfor %}

)

select
    *,
    1.0 * n_positives / nullif(n_candidates, 0) as base_rate
from per_product
order by product_id, snapshot_ts
