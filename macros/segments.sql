{#
    Segment labels used by customer_360 and the BI marts. Kept as macros so that the
    definition lives in one place and applies equally to an age at a past cut-off.
#}

{% macro age_band(age) -%}
    case
        when {{ age }} < 25 then '16-24'
        when {{ age }} < 35 then '25-34'
        when {{ age }} < 45 then '35-44'
        when {{ age }} < 55 then '45-54'
        when {{ age }} < 65 then '55-64'
        when {{ age }} >= 65 then '65+'
    end
{%- endmacro %}

{#
    Life stage from age and marital status:
      young_single  under 30, not married
      young_family  under 45, married
      single_adult  30-44, not married
      midlife       45-59
      senior        60 and over
#}
{% macro life_stage(age, marital_status) -%}
    case
        when {{ age }} < 30 and {{ marital_status }} <> 'married' then 'young_single'
        when {{ age }} < 45 and {{ marital_status }} = 'married' then 'young_family'
        when {{ age }} < 45 then 'single_adult'
        when {{ age }} < 60 then 'midlife'
        when {{ age }} >= 60 then 'senior'
    end
{%- endmacro %}

{# Value tier from the asset level (assets held at this bank). #}
{% macro value_tier(asset_level) -%}
    case {{ asset_level }}
        when 'L1' then 'mass'
        when 'L2' then 'mass_affluent'
        when 'L3' then 'affluent'
        when 'L4' then 'high_net_worth'
        when 'L5' then 'high_net_worth'
    end
{%- endmacro %}
