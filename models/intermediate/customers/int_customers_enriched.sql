-- Valid customers with their region's attributes and model-ready numeric codes of the
-- categorical profile (ordinal where the categories have an order).

with

customers as (

    select * from {{ ref('stg_bank__customers') }}

),

regions as (

    select * from {{ ref('regions') }}

),

enriched as (

    select
        -- ids
        customers.customer_id,
        customers.customer_key,

        -- profile as delivered
        customers.age,
        customers.gender,
        customers.region_code,
        regions.region_name_zh,
        regions.city_zh,
        regions.province_zh,
        regions.is_wuxi,
        regions.urbanisation,
        customers.education,
        customers.marital_status,
        customers.asset_level,
        customers.assets_cny,
        customers.risk_preference,
        customers.card_type,
        customers.customer_since,

        -- numeric codes
        cast(case when customers.gender = 'M' then 1 when customers.gender = 'F' then 0 end as {{ dbt.type_bigint() }})
            as gender_male,
        cast(case when regions.is_wuxi then 1 when not regions.is_wuxi then 0 end as {{ dbt.type_bigint() }})
            as is_wuxi_code,
        cast({{ ordinal_code('regions.urbanisation', var('urbanisation_levels'), start=0) }} as {{ dbt.type_bigint() }})
            as urbanisation_code,
        cast({{ ordinal_code('customers.education', var('education_levels')) }} as {{ dbt.type_bigint() }})
            as education_level,
        cast({{ ordinal_code('customers.marital_status', var('marital_statuses'), start=0) }} as {{ dbt.type_bigint() }})
            as marital_status_code,
        cast({{ ordinal_code('customers.asset_level', var('asset_levels')) }} as {{ dbt.type_bigint() }})
            as asset_level_code,
        ln(1 + greatest(customers.assets_cny, 0)) as log_assets,
        cast({{ ordinal_code('customers.risk_preference', var('risk_preferences')) }} as {{ dbt.type_bigint() }})
            as risk_tolerance,
        cast({{ ordinal_code('customers.card_type', var('card_types'), start=0) }} as {{ dbt.type_bigint() }})
            as card_tier

    from customers
    left join regions
        on customers.region_code = regions.region_code

)

select * from enriched
