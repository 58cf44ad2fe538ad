-- One-off moments per customer, whose visibility at a snapshot is a single comparison:
-- the first binding of each digital channel (bindings are never undone in the extract) and
-- the first salary credit (payroll starting at this bank, the "new payroll" trigger).
-- A milestone counts at a snapshot when it happened strictly before it.

with

events as (

    select * from {{ ref('stg_bank__events') }}
    where event_type in ('channel_bind', 'salary_credit')

),

milestones as (

    select
        customer_key,
        {%- for channel in var('bindable_channels') %}
        min(case when event_type = 'channel_bind' and channel = '{{ channel }}' then event_time end)
            as first_bound_{{ channel }}_at,
        {%- endfor %}
        min(case when event_type = 'salary_credit' then event_time end) as first_salary_credit_at
    from events
    group by customer_key

)

select * from milestones
