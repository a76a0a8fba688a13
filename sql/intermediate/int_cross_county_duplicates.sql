-- int_cross_county_duplicates: the same person accepted twice for the same program (and subsidy)
-- in one month, from different files (usually two counties). One survivor pays.
-- Survivor rule `earliest_enrolment`: the earliest enrolled_from, then the lowest region code, then
-- file and row, so the choice is the same on every rerun.
-- grain: one row per accepted row that is NOT the survivor.
with accepted as (
    select *, coalesce(ledger_program, program) as line_program
    from int_roster_all
    where disposition = 'accepted'
),

ranked as (
    select
        *,
        row_number() over w as rank_in_group,
        first_value(source_file) over w as survivor_file,
        first_value(source_row) over w as survivor_row,
        first_value(region_code) over w as survivor_region
    from accepted
    window w as (partition by line_program, id_number
                 order by enrolled_from, region_code, source_file, source_row)
)

select source_file, source_row, program, id_number, region_code, survivor_file, survivor_row, survivor_region,
       'earliest_enrolment' as duplicate_rule
from ranked
where rank_in_group > 1
