-- Recommendations served by the API (stage one and stage two), from serving's Parquet export.
-- Until the first export exists this is an empty relation with the same columns.

{% set columns = {
    'recommendation_id': dbt.type_string(),
    'customer_id': dbt.type_string(),
    'manager_id': dbt.type_string(),
    'stage': dbt.type_int(),
    'parent_recommendation_id': dbt.type_string(),
    'product_id': dbt.type_string(),
    'rank': dbt.type_int(),
    'score': type_double(),
    'match_score': dbt.type_int(),
    'model_version': dbt.type_string(),
    'created_at': dbt.type_timestamp(),
    'arm': dbt.type_string(),
} %}

with

source as (

    {{ read_export_or_empty(
        source('feedback', 'recommendations'),
        feedback_export_dir() ~ '/recommendations/*.parquet',
        columns
    ) }}

),

renamed as (

    select
        -- ids
        recommendation_id,
        parent_recommendation_id,
        upper(trim(customer_id)) as customer_id,
        manager_id,
        upper(trim(product_id)) as product_id,

        -- attributes
        stage,
        {{ adapter.quote('rank') }} as recommendation_rank,
        score,
        match_score,
        model_version,
        arm,

        -- timestamps
        created_at

    from source

)

select * from renamed
