-- A manager holds customers only while in post and only at their own branch: every assignment
-- period lies within the manager's [hired_on, left_on) and carries the manager's branch.

with

assignments as (

    select * from {{ ref('stg_bank__customer_assignments') }}

),

managers as (

    select * from {{ ref('stg_bank__account_managers') }}

)

select
    assignments.customer_id,
    assignments.manager_id,
    assignments.branch_id,
    managers.branch_id as manager_branch_id,
    assignments.valid_from,
    assignments.valid_to,
    managers.hired_on,
    managers.left_on
from assignments
inner join managers
    on assignments.manager_id = managers.manager_id
where assignments.branch_id <> managers.branch_id
    or assignments.valid_from < managers.hired_on
    or (managers.left_on is not null
        and (assignments.valid_to is null or assignments.valid_to > managers.left_on))
