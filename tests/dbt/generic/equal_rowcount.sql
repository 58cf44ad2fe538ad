{#
    Fan-out / drop guard for wide marts: the model has exactly as many rows as its spine
    (optionally filtered). Cheap even at 12M rows, where a `unique` test over a compound key
    would cost more than building the mart.
#}
{% test equal_rowcount(model, compare_model, compare_where=none) %}

with

actual as (

    select count(*) as n_rows from {{ model }}

),

expected as (

    select count(*) as n_rows from {{ compare_model }}
    {% if compare_where %}where {{ compare_where }}{% endif %}

)

select
    actual.n_rows as actual_rows,
    expected.n_rows as expected_rows
from actual
cross join expected
where actual.n_rows <> expected.n_rows

{% endtest %}
