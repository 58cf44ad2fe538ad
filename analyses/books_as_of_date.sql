-- Books of business on any day, e.g. the start of a campaign: customers per branch and
-- manager on the date given by var `as_of`
-- (dbt compile -s books_as_of_date --vars '{as_of: "2024-11-11"}').

with

assignments as (

    {{ assignments_as_of(date_literal(var('as_of', var('extract_date')))) }}

),

branches as (

    select * from {{ ref('branches') }}

)

select
    assignments.branch_id,
    branches.branch_name_zh,
    assignments.manager_id,
    count(*) as n_customers
from assignments
inner join branches
    on assignments.branch_id = branches.branch_id
group by assignments.branch_id, branches.branch_name_zh, assignments.manager_id
order by n_customers desc
