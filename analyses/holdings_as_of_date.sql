-- Holdings at any instant, e.g. the start of a campaign: products held per category on the
-- date given by var `as_of` (dbt compile -s holdings_as_of_date --vars '{as_of: "2024-11-11"}').

with

holdings as (

    {{ holdings_as_of(timestamp_literal(var('as_of', var('extract_date')))) }}

)

select
    product_category,
    product_id,
    count(*) as n_holders
from holdings
group by product_category, product_id
order by product_category, n_holders desc
