-- Mean of a few features per snapshot: they should move slowly from one cut-off to the next.
-- A jump points at a windowing or point-in-time bug (or a change in the extract).

select
    snapshot_ts,
    count(*) as n_customers,
    avg(n_products_held) as avg_products_held,
    avg(n_everyday_txn_90d) as avg_everyday_txn_90d,
    avg(activity_trend) as avg_activity_trend,
    avg(case when days_since_salary_credit is not null then 1.0 else 0.0 end) as share_with_salary,
    avg(n_channels_bound) as avg_channels_bound,
    avg(n_wealth_events_180d) as avg_wealth_events_180d
from {{ ref('customer_features_monthly') }}
group by snapshot_ts
order by snapshot_ts
