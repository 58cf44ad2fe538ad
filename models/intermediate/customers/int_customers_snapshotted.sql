-- The (customer, snapshot) spine: every customer at every snapshot at which the relationship
-- already existed, with the profile and the attributes that change with time (age, tenure).
-- The profile itself is the extract's current state (static over the period, see the data
-- contract); only age is moved back to the snapshot.

with

customers as (

    select * from {{ ref('int_customers_enriched') }}

),

snapshots as (

    select * from {{ ref('int_snapshot_dates') }}

),

spine as (

    select
        customers.*,
        snapshots.snapshot_ts,
        snapshots.snapshot_kind,
        snapshots.snapshot_index,
        -- the raw age is at the extract date: subtract the whole years between the two
        -- (dbt.datediff's expression is a sum on some engines: parenthesised before dividing)
        customers.age - cast(floor((
            {{ dbt.datediff('snapshots.snapshot_ts', "cast('" ~ var('extract_date') ~ "' as " ~ dbt.type_timestamp() ~ ")", 'month') }}
            ) / 12.0) as integer) as age_at_snapshot,
        -- a double on every engine (Spark would keep an integer / 365.25 as a decimal)
        cast({{ dbt.datediff('customers.customer_since', 'snapshots.snapshot_ts', 'day') }} as {{ type_double() }}) / 365.25
            as tenure_years
    from customers
    inner join snapshots
        on customers.customer_since < snapshots.snapshot_date

)

select * from spine
