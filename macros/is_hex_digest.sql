{#
    True when `column` is a well-formed customer id: a 32-character uppercase hex MD5 digest.
    Regex functions differ per engine, hence the dispatch.
#}
{% macro is_hex_digest(column) -%}
    {{ return(adapter.dispatch('is_hex_digest', 'lingxi')(column)) }}
{%- endmacro %}

{% macro default__is_hex_digest(column) -%}
    regexp_like({{ column }}, '^[0-9A-F]{32}$')
{%- endmacro %}

{% macro duckdb__is_hex_digest(column) -%}
    regexp_full_match({{ column }}, '[0-9A-F]{32}')
{%- endmacro %}

{% macro spark__is_hex_digest(column) -%}
    ({{ column }} rlike '^[0-9A-F]{32}$')
{%- endmacro %}
