{#
    Point-in-time logic shared by every per-snapshot model. A snapshot (cut-off) is an instant,
    the first of a month at 00:00:00; what is known at it is exactly the events with
    event_time < snapshot. These macros are the only place that encodes that rule.
#}

{# An event happened strictly before the snapshot (it is visible to the snapshot's features). #}
{% macro happened_before(event_time, snapshot_ts) -%}
    {{ event_time }} < {{ snapshot_ts }}
{%- endmacro %}

{#
    Trailing windows through int_snapshot_lookback_days: `days_before` is the number of days
    from the event's date to the snapshot's (1 = the day before). Because snapshots are
    midnights, event_time in [snapshot - N days, snapshot) <=> days_before between 1 and N.
#}
{% macro in_trailing_days(days_before, days) -%}
    ({{ days_before }} between 1 and {{ days }})
{%- endmacro %}

{# The window [snapshot - from_days, snapshot - to_days), e.g. the 90 days before the last 90. #}
{% macro in_trailing_days_between(days_before, from_days, to_days) -%}
    ({{ days_before }} between {{ to_days + 1 }} and {{ from_days }})
{%- endmacro %}

{#
    A holding spell [opened_at, closed_at) is open at the snapshot: opened strictly before it
    and not closed strictly before it (a close at exactly 00:00:00 of the cut-off day has not
    happened yet when the features are cut).
#}
{% macro spell_is_open_at(opened_at, closed_at, snapshot_ts) -%}
    ({{ opened_at }} < {{ snapshot_ts }} and ({{ closed_at }} is null or {{ closed_at }} >= {{ snapshot_ts }}))
{%- endmacro %}

{#
    Whole days from an event to the snapshot (day boundaries crossed), the "days since" features,
    as a bigint on every engine (Spark's datediff is an int).
#}
{% macro days_before(event_time, snapshot_ts) -%}
    cast({{ dbt.datediff(event_time, snapshot_ts, 'day') }} as {{ dbt.type_bigint() }})
{%- endmacro %}

{#
    1 if the holdings bitmap (int_customer_holdings_bitmapped) has the bit of the snapshot
    with index `snapshot_index` set, else 0 (also for a NULL bitmap: nothing held).
#}
{% macro holds_at_snapshot(bitmap, snapshot_index) -%}
    {{ return(adapter.dispatch('holds_at_snapshot', 'lingxi')(bitmap, snapshot_index)) }}
{%- endmacro %}

{% macro default__holds_at_snapshot(bitmap, snapshot_index) -%}
    cast(mod(cast(floor(coalesce({{ bitmap }}, 0) / power(2, {{ snapshot_index }})) as {{ dbt.type_bigint() }}), 2) as {{ dbt.type_bigint() }})
{%- endmacro %}

{% macro duckdb__holds_at_snapshot(bitmap, snapshot_index) -%}
    ((coalesce({{ bitmap }}, 0) >> {{ snapshot_index }}) & 1)
{%- endmacro %}

{% macro spark__holds_at_snapshot(bitmap, snapshot_index) -%}
    (shiftright(coalesce({{ bitmap }}, 0), {{ snapshot_index }}) & 1)
{%- endmacro %}

{#
    Holdings as of any instant: one row per (customer, product) held at `as_of_ts` (a SQL
    timestamp expression), from the reconstructed spells. The snapshots use
    int_holdings_snapshotted; this serves any other date (e.g. the extract date, or an
    analysis "as of the campaign start").
#}
{% macro holdings_as_of(as_of_ts) -%}
    select
        spells.customer_key,
        spells.product_id,
        spells.product_category,
        spells.opened_at,
        spells.spell_number
    from {{ ref('int_product_spells_reconstructed') }} as spells
    where {{ spell_is_open_at('spells.opened_at', 'spells.closed_at', as_of_ts) }}
{%- endmacro %}
