{#
    Books of business at a point in time. An assignment period holds from valid_from (00:00 of
    that day) up to, not including, valid_to (null while current), so on any day exactly one
    period of a customer holds. These macros are the only place that encodes that rule.
#}

{# The period [valid_from, valid_to) holds on `as_of_date` (a SQL date expression). #}
{% macro assignment_in_force(valid_from, valid_to, as_of_date) -%}
    ({{ valid_from }} <= {{ as_of_date }} and ({{ valid_to }} is null or {{ valid_to }} > {{ as_of_date }}))
{%- endmacro %}

{# A date literal for a 'YYYY-MM-DD' string. #}
{% macro date_literal(day) -%}
    cast('{{ day }}' as date)
{%- endmacro %}

{#
    Each customer's branch and manager on any day (a SQL date expression), e.g. the start of a
    campaign: one row per customer with an assignment in force that day. The snapshots use
    int_customer_books_snapshotted; this serves any other date (analyses/books_as_of_date.sql).
#}
{% macro assignments_as_of(as_of_date) -%}
    select
        assignments.customer_key,
        assignments.customer_id,
        assignments.branch_id,
        assignments.manager_id,
        assignments.valid_from as assigned_since,
        assignments.assignment_reason
    from {{ ref('stg_bank__customer_assignments') }} as assignments
    where {{ assignment_in_force('assignments.valid_from', 'assignments.valid_to', as_of_date) }}
{%- endmacro %}
