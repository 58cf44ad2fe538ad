{#
    parquet_view: the model's result is written once, as Parquet, to
    $LINGXI_DATA_DIR/marts/<model name>.parquet, and the relation in the warehouse is a view
    over that file.

    Why: Feast's DuckDB offline store and serving read files, and must never hold a lock on
    warehouse.duckdb while `dbt build` runs. Writing the large marts only once (not as a
    table and again as Parquet) also halves their cost. DuckDB writes to a temporary file and
    renames it, so a reader never sees a half-written file. BI tools and dbt tests still query
    the view as usual.
#}
{% materialization parquet_view, adapter='duckdb' %}

    {%- set location = marts_dir() ~ '/' ~ this.identifier ~ '.parquet' -%}
    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type='view') -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {% call statement('export') -%}
        copy (
            {{ sql }}
        ) to '{{ location }}'
        (format parquet, compression zstd, use_tmp_file true)
    {%- endcall %}

    {% if existing_relation is not none and existing_relation.type != 'view' %}
        {{ adapter.drop_relation(existing_relation) }}
    {% endif %}

    {% call statement('main') -%}
        create or replace view {{ target_relation }} as
        select * from read_parquet('{{ location }}')
    {%- endcall %}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {% do persist_docs(target_relation, model) %}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': [target_relation]}) }}

{% endmaterialization %}
