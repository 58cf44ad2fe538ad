-- One row per account manager on the roster, typed.

with

source as (

    select * from {{ source('bank', 'account_managers') }}

),

final as (

    select
        -- ids
        trim(manager_id) as manager_id,
        trim(branch_id) as branch_id,

        -- dates
        cast(hired_on as date) as hired_on,
        cast(left_on as date) as left_on

    from source

)

select * from final
