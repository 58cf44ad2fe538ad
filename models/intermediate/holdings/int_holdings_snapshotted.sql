-- Point-in-time holdings: one row per (customer, snapshot, product) held at the snapshot,
-- i.e. after every open / close strictly before it (macro spell_is_open_at).

with

spells as (

    select * from {{ ref('int_product_spells_reconstructed') }}

),

snapshots as (

    select * from {{ ref('int_snapshot_dates') }}

),

held as (

    select
        spells.customer_key,
        snapshots.snapshot_ts,
        snapshots.snapshot_index,
        spells.product_id,
        spells.product_category,
        spells.opened_at,
        spells.spell_number
    from spells
    inner join snapshots
        on {{ spell_is_open_at('spells.opened_at', 'spells.closed_at', 'snapshots.snapshot_ts') }}

)

select * from held
