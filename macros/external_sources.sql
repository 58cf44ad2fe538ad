{#
    Sources kept as files (meta.external_location, as dbt-duckdb reads it: "read_parquet('<glob>')"
    with {name} / {identifier} for the table) on engines that read a source from a catalog.

    DuckDB reads the files directly (dbt-duckdb resolves external_location): nothing to do.
    Spark (on-run-start): each source table is registered in the metastore before any model
    reads it, so every source in this pattern works without a per-engine copy of a model:
      - a view over the glob, with the schema the files have; or,
      - when every column of the table declares a data_type (an export whose folder may not
        exist yet), an external table with that schema over the folder: a missing folder reads
        as empty, and a column missing from older files reads as NULL.
#}
{% macro register_external_sources() -%}
    {{ return(adapter.dispatch('register_external_sources', 'lingxi')()) }}
{%- endmacro %}

{% macro default__register_external_sources() -%}
    select 1
{%- endmacro %}

{% macro spark__register_external_sources() -%}
    {%- if execute -%}
    {%- for node in graph.sources.values() if node.package_name == project_name -%}
        {%- set meta = {} -%}
        {%- do meta.update(node.source_meta or {}) -%}
        {%- do meta.update(node.meta or {}) -%}
        {%- if meta.get('external_location') -%}
            {%- set glob = external_source_glob(meta['external_location'], node) -%}
            {%- set relation = api.Relation.create(schema=node.schema, identifier=node.identifier) -%}
            {%- set declared = node.columns.values() | selectattr('data_type') | list -%}
            {%- set as_table = declared and declared | length == node.columns | length -%}
            {%- do run_query('create schema if not exists ' ~ adapter.quote(node.schema)) -%}
            {#- dropping an external table leaves its files alone -#}
            {%- set existing = adapter.get_relation(database=none, schema=node.schema, identifier=node.identifier) -%}
            {%- if existing is not none and (as_table or existing.type != 'view') -%}
                {%- do adapter.drop_relation(existing) -%}
            {%- endif -%}
            {%- if as_table -%}
                {%- set ddl -%}
                    create table {{ relation }} (
                        {%- for column in declared %}
                        {{ adapter.quote(column.name) }} {{ column.data_type }}{{ "," if not loop.last }}
                        {%- endfor %}
                    )
                    using parquet
                    location '{{ glob.rsplit('/', 1)[0] }}'
                {%- endset -%}
            {%- else -%}
                {%- set ddl = 'create or replace view ' ~ relation ~ ' as select * from parquet.`' ~ glob ~ '`' -%}
            {%- endif -%}
            {%- do run_query(ddl) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{# The file glob of a source table from dbt-duckdb's external_location. #}
{% macro external_source_glob(external_location, node) -%}
    {%- set found = modules.re.search("'([^']+)'", external_location) -%}
    {%- if not found -%}
        {{ exceptions.raise_compiler_error("external_location of source " ~ node.source_name ~ "." ~ node.name
            ~ " names no quoted path: " ~ external_location) }}
    {%- endif -%}
    {{ return(found.group(1).replace('{name}', node.name).replace('{identifier}', node.identifier)) }}
{%- endmacro %}
