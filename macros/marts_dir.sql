{#
    Where the parquet_view materialization writes: $LINGXI_DATA_DIR/marts/<model>.parquet, and
    $LINGXI_DATA_DIR/spark/marts/ for a Spark build (beside its warehouse, so that the two
    engines' exports never overwrite each other).
#}

{% macro marts_dir() -%}
    {{- return(adapter.dispatch('marts_dir', 'lingxi')()) -}}
{%- endmacro %}

{% macro default__marts_dir() -%}
    {{- return(env_var('LINGXI_DATA_DIR', 'data') ~ '/marts') -}}
{%- endmacro %}

{% macro spark__marts_dir() -%}
    {{- return(env_var('LINGXI_DATA_DIR', 'data') ~ '/spark/marts') -}}
{%- endmacro %}

{#
    on-run-start: make sure the export directory exists, and leave a one-row marker recording
    which dbt invocation last wrote the exports.
#}
{% macro prepare_marts_dir() -%}
    {{- return(adapter.dispatch('prepare_marts_dir', 'lingxi')()) -}}
{%- endmacro %}

{% macro default__prepare_marts_dir() -%}
    select 1
{%- endmacro %}

{# DuckDB has no mkdir, but a per-thread COPY creates its target directory. #}
{% macro duckdb__prepare_marts_dir() -%}
    {%- if execute -%}
    copy (
        {{ dbt_invocation_marker() }}
    )
    to '{{ marts_dir() }}'
    (format parquet, per_thread_output true, filename_pattern '_dbt_invocation_{i}', overwrite_or_ignore true)
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{# Spark writes a folder per output; it creates the parents. #}
{% macro spark__prepare_marts_dir() -%}
    {%- if execute -%}
    insert overwrite directory '{{ marts_dir() }}/_dbt_invocation' using parquet
    {{ dbt_invocation_marker() }}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{% macro dbt_invocation_marker() -%}
    select
        '{{ invocation_id }}' as dbt_invocation_id,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp) as dbt_run_started_at
{%- endmacro %}
