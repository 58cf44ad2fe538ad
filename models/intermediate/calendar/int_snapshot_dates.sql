-- The instants features are cut at: the monthly training / evaluation cut-offs (first of the
-- month, 00:00:00) and the "current" snapshot at the extract date, which serving uses.
-- Generated from the same macro (snapshot_dates) that compile-time loops use.

with

snapshots as (

    {%- for day in snapshot_dates() %}
    select
        {{ timestamp_literal(day) }} as snapshot_ts,
        '{{ "current" if day == var("extract_date") else "cutoff" }}' as snapshot_kind,
        {{ loop.index0 }} as snapshot_index
    {{ "union all" if not loop.last }}
    {%- endfor %}

),

final as (

    select
        snapshot_ts,
        cast(snapshot_ts as date) as snapshot_date,
        snapshot_kind,
        -- position in time order (0 = first cut-off); bit number in holdings bitmaps
        snapshot_index,
        case
            when snapshot_kind = 'cutoff' then {{ label_window_end('snapshot_ts') }}
        end as label_window_end_ts,
        -- the latest cut-off is held out for evaluation; training uses the cut-offs whose
        -- label window ends on or before it
        snapshot_ts = {{ timestamp_literal(snapshot_dates('cutoff') | last) }} as is_holdout_cutoff,
        snapshot_kind = 'cutoff'
            and {{ label_window_end('snapshot_ts') }} <= {{ timestamp_literal(snapshot_dates('cutoff') | last) }}
            as is_training_cutoff
    from snapshots

)

select * from final
