{# Where the parquet_view materialization writes: $LINGXI_DATA_DIR/marts/<model>.parquet #}

{% macro marts_dir() -%}
    {{- env_var('LINGXI_DATA_DIR', 'data') ~ '/marts' -}}
{%- endmacro %}

{#
    on-run-start: make sure the export directory exists. DuckDB has no mkdir, but a
    per-thread COPY creates its target directory; it leaves a one-row marker file
    recording which dbt invocation last wrote the exports.
#}
{% macro prepare_marts_dir() -%}
    {%- if execute -%}
    copy (
        select
            '{{ invocation_id }}' as dbt_invocation_id,
            cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp) as dbt_run_started_at
    )
    to '{{ marts_dir() }}'
    (format parquet, per_thread_output true, filename_pattern '_dbt_invocation_{i}', overwrite_or_ignore true)
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}
