{#
    Select from an exported source (a folder of Parquet parts) if it has any files yet, else
    from an empty relation with the declared column types.

    The feedback store is exported by serving only once managers have recorded feedback, and
    DuckDB cannot glob a folder that does not exist, so the staging models must not fail
    before then. `columns` maps column name -> SQL type and fixes the output schema either way.

    Usage (in a staging model):
        {{ read_export_or_empty(source('feedback', 'recommendations'),
                                feedback_export_dir() ~ '/recommendations/*.parquet',
                                {'recommendation_id': dbt.type_string(), ...}) }}
#}
{% macro read_export_or_empty(source_relation, file_glob, columns) -%}
    {{ return(adapter.dispatch('read_export_or_empty', 'lingxi')(source_relation, file_glob, columns)) }}
{%- endmacro %}

{# Engines where the export is loaded as a table: read it as declared. #}
{% macro default__read_export_or_empty(source_relation, file_glob, columns) -%}
    select
        {%- for name, type in columns.items() %}
        cast({{ adapter.quote(name) }} as {{ type }}) as {{ name }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ source_relation }}
{%- endmacro %}

{#- A column the files do not have yet (an export written before it was added) reads as null. -#}
{% macro duckdb__read_export_or_empty(source_relation, file_glob, columns) -%}
    {%- set has_files = false -%}
    {%- set present = [] -%}
    {%- if execute -%}
        {%- set found = run_query("select count(*) from glob('" ~ file_glob ~ "')") -%}
        {%- set has_files = found.columns[0].values()[0] > 0 -%}
        {%- if has_files -%}
            {%- set described = run_query("describe select * from read_parquet('" ~ file_glob ~ "', union_by_name = true)") -%}
            {%- for name in described.columns[0].values() -%}{%- do present.append(name) -%}{%- endfor -%}
        {%- endif -%}
    {%- endif -%}
    {%- if has_files %}
    select
        {%- for name, type in columns.items() %}
        {%- if name in present %}
        cast({{ adapter.quote(name) }} as {{ type }}) as {{ name }}{{ "," if not loop.last }}
        {%- else %}
        cast(null as {{ type }}) as {{ name }}{{ "," if not loop.last }}
        {%- endif %}
        {%- endfor %}
    from {{ source_relation }}
    {%- else %}
    select
        {%- for name, type in columns.items() %}
        cast(null as {{ type }}) as {{ name }}{{ "," if not loop.last }}
        {%- endfor %}
    where 1 = 0
    {%- endif -%}
{%- endmacro %}

{% macro feedback_export_dir() -%}
    {{- env_var('LINGXI_DATA_DIR', 'data') ~ '/feedback_export' -}}
{%- endmacro %}
