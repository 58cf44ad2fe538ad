{#
    customer_key: a 63-bit integer surrogate of the 32-character customer_id, used as the join
    and grouping key of the large per-event and per-snapshot models (joining and grouping on
    32-byte strings costs several times more). Customer ids are MD5 digests, so any good
    64-bit hash of them is as good as unique; `unique` on stg_bank__customers.customer_key
    proves it on every build. The key is internal: marts expose customer_id.
#}
{% macro customer_key(column) -%}
    {{ return(adapter.dispatch('customer_key', 'lingxi')(column)) }}
{%- endmacro %}

{% macro default__customer_key(column) -%}
    {# the first 15 hex digits (60 bits) of the digest #}
    cast(from_base(substr({{ column }}, 1, 15), 16) as bigint)
{%- endmacro %}

{% macro spark__customer_key(column) -%}
    cast(conv(substr({{ column }}, 1, 15), 16, 10) as bigint)
{%- endmacro %}

{% macro duckdb__customer_key(column) -%}
    cast(hash({{ column }}) >> 1 as bigint)
{%- endmacro %}

{# Double-precision float (dbt.type_float() is single precision on DuckDB). #}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'lingxi')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    double
{%- endmacro %}

{% macro postgres__type_double() -%}
    double precision
{%- endmacro %}
