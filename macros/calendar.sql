{#
    The snapshot calendar at compile time: the monthly cut-offs (var first_cutoff, n_cutoffs)
    followed by the current snapshot at the extract date, as 'YYYY-MM-DD' strings.
    int_snapshot_dates is built from this list, so compile-time loops and the table agree.
#}
{% macro snapshot_dates(kind=none) -%}
    {%- set first = modules.datetime.date.fromisoformat(var('first_cutoff')) -%}
    {%- set dates = [] -%}
    {%- if kind in (none, 'cutoff') -%}
        {%- for i in range(var('n_cutoffs')) -%}
            {%- set months = first.month - 1 + i -%}
            {%- do dates.append(first.replace(year=first.year + months // 12, month=months % 12 + 1).isoformat()) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if kind in (none, 'current') -%}
        {%- do dates.append(var('extract_date')) -%}
    {%- endif -%}
    {{ return(dates) }}
{%- endmacro %}

{# A timestamp literal for a 'YYYY-MM-DD' date. #}
{% macro timestamp_literal(day) -%}
    cast('{{ day }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}
