{#
    parquet_view on Spark: the same contract as the DuckDB materialization (the model's result
    written once as Parquet under marts_dir(), the relation a view over it), written as Spark
    writes: <model name>.parquet is a folder of part files (pandas, pyarrow and DuckDB read the
    folder as one table). Spark replaces the folder in place, so a reader during the build may
    see it half-written; on a cluster the marts are read after the job, not during it.
#}
{% materialization parquet_view, adapter='spark' %}

    {%- set location = marts_dir() ~ '/' ~ this.identifier ~ '.parquet' -%}
    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type='view') -%}

    {{ run_hooks(pre_hooks) }}

    {% call statement('export') -%}
        insert overwrite directory '{{ location }}'
        using parquet options (compression 'zstd')
        {{ sql }}
    {%- endcall %}

    {% if existing_relation is not none and existing_relation.type != 'view' %}
        {{ adapter.drop_relation(existing_relation) }}
    {% endif %}

    {% call statement('main') -%}
        create or replace view {{ target_relation }} as
        select * from parquet.`{{ location }}`
    {%- endcall %}

    {{ run_hooks(post_hooks) }}
    {% do persist_docs(target_relation, model) %}

    {{ return({'relations': [target_relation]}) }}

{% endmaterialization %}
