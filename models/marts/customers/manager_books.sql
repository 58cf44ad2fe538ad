-- Books of business now: every valid customer's branch and account manager at the extract
-- date, one row per customer. Serving loads the Parquet export with the snapshot to decide
-- which customers a manager may see ("my customers" in the CRM and the console). Sorted by
-- manager so a manager's book is a few contiguous row groups.

with

customers as (

    select * from {{ ref('int_customers_enriched') }}

),

current_books as (

    select * from {{ ref('int_customer_books_snapshotted') }}
    where snapshot_kind = 'current'

),

branches as (

    select * from {{ ref('branches') }}

),

final as (

    select
        -- ids
        customers.customer_id,
        current_books.branch_id,
        current_books.manager_id,

        -- branch
        branches.branch_name_zh,
        branches.branch_name_en,
        branches.region_code as branch_region_code,

        -- assignment
        current_books.assigned_since,
        current_books.assignment_reason,

        -- as of
        cast('{{ var("extract_date") }}' as {{ dbt.type_timestamp() }}) as as_of_ts

    from customers
    left join current_books
        on customers.customer_key = current_books.customer_key
    left join branches
        on current_books.branch_id = branches.branch_id

)

select * from final
order by manager_id, customer_id
