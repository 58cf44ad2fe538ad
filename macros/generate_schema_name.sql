{#
    Use the folder's custom schema as-is (staging, intermediate, marts, reference) instead of
    dbt's default "<target schema>_<custom schema>", so BI tools read `marts.customer_360`.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
