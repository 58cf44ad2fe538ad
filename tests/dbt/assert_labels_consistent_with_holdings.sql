-- Labels agree with the point-in-time holdings of the same snapshot: for a sample of
-- customers (ids starting with '00', about 1 in 256), a label is NULL exactly when the feature
-- snapshot says the product was held at the cut-off, and otherwise 0 or 1.

{% set sample_prefix = '00' %}

with

labels as (

    select * from {{ ref('labels_adoption') }}
    where customer_id like '{{ sample_prefix }}%'

),

features as (

    select * from {{ ref('customer_features_monthly') }}
    where customer_id like '{{ sample_prefix }}%'

),

joined as (

    select
        labels.customer_id,
        labels.snapshot_ts,
        {%- for product_id in product_ids() %}
        {%- set p = product_id | lower %}
        labels.label_{{ p }},
        features.holds_{{ p }}{{ "," if not loop.last }}
        {%- endfor %}
    from labels
    inner join features
        on labels.customer_id = features.customer_id
        and labels.snapshot_ts = features.snapshot_ts

),

compared as (

    {%- for product_id in product_ids() %}
    {%- set p = product_id | lower %}
    select
        customer_id,
        snapshot_ts,
        '{{ product_id }}' as product_id,
        label_{{ p }} as label,
        holds_{{ p }} as held_at_cutoff
    from joined
    {{ "union all" if not loop.last }}
    {%- endfor %}

)

select *
from compared
where (held_at_cutoff = 1 and label is not null)
    or (held_at_cutoff = 0 and (label is null or label not in (0, 1)))
