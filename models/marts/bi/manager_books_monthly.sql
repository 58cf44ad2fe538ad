-- Books of business per month for BI: one row per snapshot and account manager with the
-- manager's branch, how many customers the book holds that day, how many joined it in the
-- month up to it, and their assets. Counts are additive over managers, so BI rolls up to
-- branches and districts.

with

books as (

    select * from {{ ref('int_customer_books_snapshotted') }}

),

customers as (

    select * from {{ ref('int_customers_enriched') }}

),

branches as (

    select * from {{ ref('branches') }}

),

per_manager as (

    select
        books.snapshot_ts,
        books.branch_id,
        books.manager_id,
        count(*) as n_customers,
        sum(case
                when books.assigned_since > cast({{ dbt.dateadd('month', -1, 'books.snapshot_ts') }} as date)
                    then 1 else 0
            end) as n_joined_last_month,
        sum(customers.assets_cny) as assets_cny
    from books
    inner join customers
        on books.customer_key = customers.customer_key
    group by books.snapshot_ts, books.branch_id, books.manager_id

),

final as (

    select
        per_manager.snapshot_ts,
        per_manager.branch_id,
        branches.branch_name_zh,
        branches.branch_name_en,
        branches.region_code as branch_region_code,
        per_manager.manager_id,
        per_manager.n_customers,
        per_manager.n_joined_last_month,
        per_manager.assets_cny
    from per_manager
    inner join branches
        on per_manager.branch_id = branches.branch_id

)

select * from final
