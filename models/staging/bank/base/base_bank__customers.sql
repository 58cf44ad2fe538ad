-- Every raw customer row, typed and cleaned, with the reason it is quarantined (null if valid).
-- stg_bank__customers keeps the valid rows; stg_bank__quarantined_rows the others.

with

source as (

    select * from {{ source('bank', 'customers') }}

),

typed as (

    select
        -- ids
        customer_id,
        {{ customer_key('customer_id') }} as customer_key,

        -- attributes
        cast(age as integer) as age,
        upper(trim(gender)) as gender,
        trim(cast(region_code as {{ dbt.type_string() }})) as region_code,
        lower(trim(education)) as education,
        lower(trim(marital_status)) as marital_status,
        upper(trim(asset_level)) as asset_level,
        cast(assets_cny as {{ type_double() }}) as assets_cny,
        lower(trim(risk_preference)) as risk_preference,
        lower(trim(card_type)) as card_type,

        -- dates
        cast(customer_since as date) as customer_since

    from source

),

checked as (

    select
        *,
        case
            when customer_id is null then 'missing_customer_id'
            when not {{ is_hex_digest('customer_id') }} then 'malformed_customer_id'
            when age is null
                or age < {{ var('valid_age_range')[0] }}
                or age > {{ var('valid_age_range')[1] }} then 'age_out_of_range'
            when row_number() over (
                partition by customer_id order by customer_since, age
            ) > 1 then 'duplicate_customer_id'
        end as quarantine_reason

    from typed

)

select * from checked
