-- int_cross_county_duplicates: the same person accepted twice for the same program (and subsidy)
-- in one month, from different files (usually two counties). One survivor pays.
-- Survivor rule `earliest_enrolment`: the earliest enrolled_from, then the lowest region code, then
-- file and row, so the choice is the same on every rerun. A temporary-assistance case is one approval
-- number: delivered twice (two files, two counties), it is paid once, from the first row (rule
-- `same_approval_no`), whoever the second row names.
-- grain: one row per accepted row that is NOT the survivor.
-- kind: table
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
    window w as (partition by line_program, case when program = 'temporary' then approval_no else id_number end
                 order by enrolled_from, region_code, source_file, source_row)
)

select source_file, source_row, program, id_number, region_code, survivor_file, survivor_row, survivor_region,
       case when program = 'temporary' then 'same_approval_no' else 'earliest_enrolment' end as duplicate_rule
from ranked
where rank_in_group > 1
