-- One row per assignment period of a customer to a branch and an account manager, typed.
-- Periods are half-open in days: the assignment holds from valid_from up to, not including,
-- valid_to (null while current); see the macro assignment_in_force.

with

source as (

    select * from {{ source('bank', 'customer_assignments') }}

),

final as (

    select
        -- ids
        customer_id,
        {{ customer_key('customer_id') }} as customer_key,
        trim(branch_id) as branch_id,
        trim(manager_id) as manager_id,

        -- attributes
        lower(trim(assignment_reason)) as assignment_reason,

        -- dates
        cast(valid_from as date) as valid_from,
        cast(valid_to as date) as valid_to

    from source

)

select * from final
