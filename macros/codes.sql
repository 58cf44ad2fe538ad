{#
    Model-ready numeric codes for categorical attributes.

    ordinal_code('education', var('education_levels'))  ->  1 for the first value, 2 for the
    second, ...; NULL for anything else. Use start=0 for zero-based codes.
#}
{% macro ordinal_code(column, values, start=1) -%}
    case {{ column }}
        {%- for value in values %}
        when '{{ value }}' then {{ loop.index0 + start }}
        {%- endfor %}
    end
{%- endmacro %}
