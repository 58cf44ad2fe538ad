-- Adoptions in each cut-off's label window: one row per (customer, cut-off, product) with a
-- product_open in [cutoff, cutoff + label_window_months) (macro in_label_window). Whether
-- the customer already held the product at the cut-off is decided in labels_adoption.

with

opens as (

    select * from {{ ref('stg_bank__events') }}
    where event_type = 'product_open'

),

cutoffs as (

    select * from {{ ref('int_snapshot_dates') }}
    where snapshot_kind = 'cutoff'

),

adoptions as (

    select
        opens.customer_key,
        cutoffs.snapshot_ts,
        opens.product_id,
        min(opens.event_time) as first_adopted_at,
        count(*) as n_opens_in_window
    from opens
    inner join cutoffs
        on {{ in_label_window('opens.event_time', 'cutoffs.snapshot_ts') }}
    group by opens.customer_key, cutoffs.snapshot_ts, opens.product_id

)

select * from adoptions
