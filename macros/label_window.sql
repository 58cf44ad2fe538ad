{#
    The label window of a cut-off: [cutoff, cutoff + label_window_months). An adoption at
    exactly the cut-off instant is inside it (and was not visible to the features, which use
    event_time < cutoff); an adoption at exactly the window end belongs to the next window.
#}
{% macro label_window_end(cutoff_ts, months=none) -%}
    {{ dbt.dateadd('month', months if months is not none else var('label_window_months'), cutoff_ts) }}
{%- endmacro %}

{% macro in_label_window(event_time, cutoff_ts, months=none) -%}
    ({{ event_time }} >= {{ cutoff_ts }} and {{ event_time }} < {{ label_window_end(cutoff_ts, months) }})
{%- endmacro %}
