-- int_person_programs: which programs (and subsidies) each person holds this month, among rows
-- still accepted after cross-county duplicates. grain: one row per person and program line.
-- kind: table
select distinct
    r.id_number,
    r.program,
    r.subsidy_type,
    r.household_id,
    r.relation,
    r.source_file,
    r.source_row
from int_roster_all r
anti join int_cross_county_duplicates d using (source_file, source_row)
where r.disposition = 'accepted'
