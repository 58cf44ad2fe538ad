-- The monthly effect report by branch, account manager and product (and the bank as a whole):
-- per month served and group, the recommendations served, the customers they reached and the
-- group's customers (coverage), the answers, interest, the customers who opened a recommended
-- product within the label window, and the value attributed to those openings (each product's
-- annual value, counted once per customer and product in the month). Written as Parquet for
-- the console and `make report-monthly`, which compare each month with the previous one.

{{ config(materialized='parquet_view') }}

with

feedback as (

    select * from {{ ref('recommendation_feedback') }}

),

books as (

    select * from {{ ref('manager_books') }}

),

products as (

    select * from {{ ref('products') }}

),

served as (

    -- the branch is the one of the customer's book now (the books' assignment history is monthly)
    select
        feedback.created_month as report_month,
        feedback.customer_id,
        feedback.product_id,
        coalesce(feedback.manager_id, books.manager_id) as manager_id,
        books.branch_id,
        feedback.response,
        feedback.is_adopted_in_window,
        products.annual_value_cny
    from feedback
    left join books
        on feedback.customer_id = books.customer_id
    left join products
        on feedback.product_id = products.product_id

),

grouped as (

    select report_month, 'bank' as dimension, 'all' as dimension_value, * exclude (report_month) from served
    union all
    select report_month, 'branch', coalesce(branch_id, 'none'), * exclude (report_month) from served
    union all
    select report_month, 'manager', coalesce(manager_id, 'none'), * exclude (report_month) from served
    union all
    select report_month, 'product', product_id, * exclude (report_month) from served

),

adopted_pairs as (

    -- one attribution per customer and product in a month, however often it was recommended
    select distinct report_month, dimension, dimension_value, customer_id, product_id, annual_value_cny
    from grouped
    where is_adopted_in_window = 1

),

attributed as (

    select
        report_month, dimension, dimension_value,
        count(*) as n_conversions,
        count(distinct customer_id) as n_converted_customers,
        sum(coalesce(annual_value_cny, 0)) as attributed_value_cny
    from adopted_pairs
    group by report_month, dimension, dimension_value

),

population as (

    select 'bank' as dimension, 'all' as dimension_value, count(*) as n_customers from books
    union all
    select 'branch', branch_id, count(*) from books where branch_id is not null group by branch_id
    union all
    select 'manager', manager_id, count(*) from books where manager_id is not null group by manager_id
    union all
    select 'product', product_id, (select count(*) from books) from products

),

final as (

    select
        grouped.report_month,
        grouped.dimension,
        grouped.dimension_value,
        count(*) as n_recommendations,
        count(distinct grouped.customer_id) as n_recommended_customers,
        population.n_customers,
        1.0 * count(distinct grouped.customer_id) / nullif(population.n_customers, 0) as coverage,
        count(grouped.response) as n_answered,
        sum(case when grouped.response = 'interested' then 1 else 0 end) as n_interested,
        1.0 * sum(case when grouped.response = 'interested' then 1 else 0 end)
            / nullif(count(grouped.response), 0) as interest_rate,
        coalesce(max(attributed.n_conversions), 0) as n_conversions,
        coalesce(max(attributed.n_converted_customers), 0) as n_converted_customers,
        coalesce(max(attributed.attributed_value_cny), 0) as attributed_value_cny
    from grouped
    left join population
        on grouped.dimension = population.dimension
        and grouped.dimension_value = population.dimension_value
    left join attributed
        on grouped.report_month = attributed.report_month
        and grouped.dimension = attributed.dimension
        and grouped.dimension_value = attributed.dimension_value
    group by grouped.report_month, grouped.dimension, grouped.dimension_value, population.n_customers

)

select * from final
order by report_month, dimension, dimension_value
