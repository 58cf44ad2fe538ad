-- The wide marts get one column per product from var `products_by_category`; this fails if
-- the var and the product catalogue seed disagree on any product or its category.

with

catalogue as (

    select product_id, category from {{ ref('products') }}

),

configured as (

    {%- for category, products in var('products_by_category').items() %}
    {%- set category_loop = loop %}
    {%- for product_id in products %}
    select '{{ product_id }}' as product_id, '{{ category }}' as category
    {{ "union all" if not (loop.last and category_loop.last) }}
    {%- endfor %}
    {%- endfor %}

)

select
    coalesce(catalogue.product_id, configured.product_id) as product_id,
    catalogue.category as seed_category,
    configured.category as var_category
from catalogue
full outer join configured
    on catalogue.product_id = configured.product_id
where catalogue.product_id is null
    or configured.product_id is null
    or catalogue.category <> configured.category
