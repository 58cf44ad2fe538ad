-- Monthly feature snapshots, one row per (customer, snapshot): the ten monthly cut-offs and
-- the current snapshot at the extract date. Strictly point in time: a row uses only events
-- with event_time < snapshot_ts. Numeric and model-ready; counts and amounts are 0 when
-- nothing happened, "days since" and averages NULL. Feast reads the Parquet export.
-- Each snapshot is computed on its own (macro customer_features_as_of), then stacked; on
-- engines that plan one large join better, all snapshots in one pass (features_by_snapshot_union).

{% if not features_by_snapshot_union() %}

{{ customer_features_as_of() }}

{% else %}

with

{% for day in snapshot_dates() %}
features_as_of_{{ day | replace('-', '_') }} as (
{{ customer_features_as_of(day) }}
),
{% endfor %}

final as (

    {%- for day in snapshot_dates() %}
    select * from features_as_of_{{ day | replace('-', '_') }}
    {{ "union all" if not loop.last }}
    {%- endfor %}

)

select * from final

{% endif %}
