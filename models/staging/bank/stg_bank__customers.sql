with

customers as (

    select * from {{ ref('base_bank__customers') }}
    where quarantine_reason is null

),

final as (

    select
        -- ids
        customer_id,
        customer_key,

        -- attributes
        age,
        gender,
        region_code,
        education,
        marital_status,
        asset_level,
        assets_cny,
        risk_preference,
        card_type,

        -- dates
        customer_since

    from customers

)

select * from final
