{#
    Row rule: fails with every row where `expression` is not true (nulls pass, as in
    dbt_utils; combine with not_null where a value is required).
#}
{% test expression_is_true(model, expression, column_name=none) %}

select *
from {{ model }}
where not ({{ expression }})

{% endtest %}
