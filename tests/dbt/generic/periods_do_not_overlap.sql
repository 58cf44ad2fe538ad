{#
    Validity periods [valid_from, valid_to) of each partition (e.g. each customer's
    assignments): fails with every period that starts before the previous one ended, including
    any period after an open-ended one (valid_to null). With allow_gaps=false it also fails
    where a period starts after the previous one ended, so that exactly one period holds on
    every day from the first period on.
#}
{% test periods_do_not_overlap(model, partition_by, valid_from='valid_from', valid_to='valid_to', allow_gaps=true) %}

with

ordered as (

    select
        {{ partition_by }} as partition_key,
        {{ valid_from }} as period_start,
        {{ valid_to }} as period_end,
        lag({{ valid_to }}) over (partition by {{ partition_by }} order by {{ valid_from }}) as previous_end,
        row_number() over (partition by {{ partition_by }} order by {{ valid_from }}) as period_number
    from {{ model }}

)

select *
from ordered
where period_number > 1
    and (
        previous_end is null
        or previous_end > period_start
        {%- if not allow_gaps %}
        or previous_end < period_start
        {%- endif %}
    )

{% endtest %}
