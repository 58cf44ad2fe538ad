-- For every snapshot, the calendar days of its longest trailing window, with how many days
-- before the snapshot each lies. Snapshots are midnights, so "event_time in
-- [snapshot - N days, snapshot)" is exactly "days_before between 1 and N" for the event's
-- date: the trailing-window features join events to this table on the date (an equi-join)
-- instead of comparing timestamps against every snapshot.

{% set longest = var('trailing_windows_days') | max %}

with

snapshots as (

    select * from {{ ref('int_snapshot_dates') }}

),

days as (

    {{ dbt.date_spine(
        'day',
        dbt.dateadd('day', -1 * longest, "cast('" ~ var('first_cutoff') ~ "' as date)"),
        "cast('" ~ var('extract_date') ~ "' as date)"
    ) }}

),

lookback as (

    select
        snapshots.snapshot_ts,
        cast(days.date_day as date) as event_date,
        {{ dbt.datediff('days.date_day', 'snapshots.snapshot_date', 'day') }} as days_before
    from snapshots
    inner join days
        on days.date_day < snapshots.snapshot_date
        and days.date_day >= {{ dbt.dateadd('day', -1 * longest, 'snapshots.snapshot_date') }}

)

select * from lookback
