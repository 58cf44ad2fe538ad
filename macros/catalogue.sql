{#
    The product catalogue at compile time, from var `products_by_category` (kept equal to
    seeds/products.csv by the test assert_product_var_matches_seed). Wide marts generate one
    column per product from these.
#}
{% macro product_ids(category=none) -%}
    {%- set by_category = var('products_by_category') -%}
    {%- set ids = [] -%}
    {%- for cat, products in by_category.items() -%}
        {%- if category is none or cat == category -%}
            {%- do ids.extend(products) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(ids) }}
{%- endmacro %}

{% macro product_categories() -%}
    {{ return(var('products_by_category').keys() | list) }}
{%- endmacro %}

{#
    Normalise an enumerated text column only where it is not already one of the valid values:
    string functions over every one of 23M rows are staging's largest cost, and CASE only
    evaluates its ELSE branch on the rows that need it.
#}
{% macro clean_enum(column, values, case='lower') -%}
    case
        when {{ column }} in ('{{ values | join("', '") }}') then {{ column }}
        else {{ case }}(trim({{ column }}))
    end
{%- endmacro %}
