{#
    Fails when the share of rows with a non-null `quarantine_reason` exceeds `max_share`
    (var `max_quarantine_share`, default 1%): a few bad rows are quarantined and the build goes
    on; a broken extract stops it.
#}
{% test quarantine_share_below(model, max_share, reason_column='quarantine_reason') %}

with

counts as (

    select
        count(*) as n_rows,
        sum(case when {{ reason_column }} is not null then 1 else 0 end) as n_quarantined
    from {{ model }}

)

select
    n_rows,
    n_quarantined,
    1.0 * n_quarantined / n_rows as quarantined_share,
    {{ max_share }} as max_share
from counts
where n_rows = 0 or n_quarantined > {{ max_share }} * n_rows

{% endtest %}
