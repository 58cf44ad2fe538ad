-- Each customer's branch and account manager at every snapshot (the monthly cut-offs and the
-- extract date): the assignment period in force on the snapshot's day (macro
-- assignment_in_force). manager_books publishes the current snapshot, BI the monthly books.

with

assignments as (

    select * from {{ ref('stg_bank__customer_assignments') }}

),

snapshots as (

    select * from {{ ref('int_snapshot_dates') }}

),

final as (

    select
        assignments.customer_key,
        assignments.customer_id,
        snapshots.snapshot_ts,
        snapshots.snapshot_date,
        snapshots.snapshot_kind,
        snapshots.snapshot_index,
        assignments.branch_id,
        assignments.manager_id,
        assignments.valid_from as assigned_since,
        assignments.assignment_reason
    from snapshots
    inner join assignments
        on {{ assignment_in_force('assignments.valid_from', 'assignments.valid_to', 'snapshots.snapshot_date') }}

)

select * from final
