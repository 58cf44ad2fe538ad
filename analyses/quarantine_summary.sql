-- Quarantined raw rows by table and reason, with their share of the table (what the
-- quarantine_share_below tests guard). `dbt compile -s quarantine_summary` and run the SQL.

with

quarantined as (

    select * from {{ ref('stg_bank__quarantined_rows') }}

),

totals as (

    select 'customers' as source_table, count(*) as n_rows from {{ ref('base_bank__customers') }}
    union all
    select 'events' as source_table, count(*) as n_rows from {{ ref('base_bank__events') }}

)

select
    quarantined.source_table,
    quarantined.quarantine_reason,
    count(*) as n_quarantined,
    1.0 * count(*) / max(totals.n_rows) as share_of_table
from quarantined
inner join totals
    on quarantined.source_table = totals.source_table
group by quarantined.source_table, quarantined.quarantine_reason
order by quarantined.source_table, n_quarantined desc
