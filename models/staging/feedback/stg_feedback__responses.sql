-- Account managers' reports of how a customer reacted to a recommended product (source table
-- `feedback`). Re-sent reports (same idempotency key) are kept once, the first recorded.

{% set columns = {
    'feedback_id': dbt.type_string(),
    'recommendation_id': dbt.type_string(),
    'customer_id': dbt.type_string(),
    'product_id': dbt.type_string(),
    'manager_id': dbt.type_string(),
    'response': dbt.type_string(),
    'recorded_at': dbt.type_timestamp(),
    'idempotency_key': dbt.type_string(),
} %}

with

source as (

    {{ read_export_or_empty(
        source('feedback', 'feedback'),
        feedback_export_dir() ~ '/feedback/*.parquet',
        columns
    ) }}

),

renamed as (

    select
        -- ids
        feedback_id,
        recommendation_id,
        upper(trim(customer_id)) as customer_id,
        upper(trim(product_id)) as product_id,
        manager_id,
        coalesce(idempotency_key, feedback_id) as idempotency_key,

        -- attributes
        lower(trim(response)) as response,

        -- timestamps
        recorded_at

    from source

),

numbered as (

    select
        *,
        row_number() over (
            partition by idempotency_key order by recorded_at, feedback_id
        ) as report_number
    from renamed

),

deduplicated as (

    select
        feedback_id,
        recommendation_id,
        customer_id,
        product_id,
        manager_id,
        idempotency_key,
        response,
        recorded_at
    from numbered
    where report_number = 1

)

select * from deduplicated
