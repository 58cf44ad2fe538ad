{#
    Spark versions of dbt macros, where dbt-spark's own do not fit this project. Root-project
    macros win dbt's dispatch, so dbt's callers (seeds, date_spine, ...) use these too.
#}

{#
    Seeds: dbt-spark binds CSV values by pasting them between quotes unescaped, so a value with
    an apostrophe ("the customer's age") breaks the insert; and an empty cell becomes 'None'.
    Here each value is an escaped literal and an empty cell is NULL.
#}
{% macro spark__load_csv_rows(model, agate_table) %}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set statements = [] -%}
    {%- for chunk in agate_table.rows | batch(get_batch_size()) -%}
        {%- set sql -%}
            insert into {{ this.render() }} values
            {% for row in chunk -%}
                ({%- for value in row -%}
                    {%- set col_name = agate_table.column_names[loop.index0] -%}
                    {%- set type = column_override.get(col_name, adapter.convert_type(agate_table, loop.index0)) -%}
                    cast({{ spark_literal(value) }} as {{ type }}){{ "," if not loop.last }}
                {%- endfor -%}){{ "," if not loop.last }}
            {% endfor %}
        {%- endset -%}
        {%- do adapter.add_query(sql, abridge_sql_log=True) -%}
        {%- if loop.first -%}
            {%- do statements.append(sql) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(statements[0]) }}
{% endmacro %}

{% macro spark_literal(value) -%}
    {%- if value is none -%}
        null
    {%- else -%}
        '{{ (value | string).replace("\\", "\\\\").replace("'", "\\'") }}'
    {%- endif -%}
{%- endmacro %}

{#
    dateadd: dbt-spark's goes through unix seconds and back with to_timestamp(), which drops
    sub-second precision and gives NULL for TIMESTAMP_NTZ (the profile's timestamp type).
    timestampadd (Spark 3.3+) keeps the input's type and precision, as DuckDB's `+ interval`.
#}
{% macro spark__dateadd(datepart, interval, from_date_or_timestamp) -%}
    timestampadd({{ datepart }}, {{ interval }}, {{ from_date_or_timestamp }})
{%- endmacro %}

{#
    datediff: dbt-spark's wraps each argument in three copies of assert_not_null(date(...)),
    which swell the plans of the models with many "days since" features, and leaves its month
    count a sum without parentheses (`datediff(...) / 12` then divides only its last term).
    Day and month boundaries crossed, as DuckDB's date_diff counts them; other dateparts go to
    dbt-spark's, in parentheses.
#}
{% macro spark__datediff(first_date, second_date, datepart) -%}
    {%- if datepart == 'day' -%}
        datediff(to_date({{ second_date }}), to_date({{ first_date }}))
    {%- elif datepart == 'month' -%}
        ((year({{ second_date }}) - year({{ first_date }})) * 12 + month({{ second_date }}) - month({{ first_date }}))
    {%- elif datepart == 'year' -%}
        (year({{ second_date }}) - year({{ first_date }}))
    {%- else -%}
        {{ return('(' ~ dbt.spark__datediff(first_date, second_date, datepart) ~ ')') }}
    {%- endif -%}
{%- endmacro %}
