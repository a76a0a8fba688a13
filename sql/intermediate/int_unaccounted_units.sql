-- int_unaccounted_units: no silent outcome (issue: every unit accounted for). Every unit accepted on
-- the month's final roster ends with a line (payable or held) or a finding that says why not,
-- integrity's or the engine's; a unit here has neither: a rule dropped it without a word, and
-- compute stops the month naming how many and the first few.
-- grain: one row per unaccounted unit and line program.
-- kind: view (read twice, for the count and the first few, then the run stops)
with accepted as (
    select source_file, source_row, program, id_number,
           case when program = 'dibao' then household_id when program = 'temporary' then approval_no
                else id_number end as unit_key,
           case when program = 'disability' then ledger_program else program end as line_program
    from month_roster where disposition = 'accepted'
),
findings as (
    select source_file, source_row, id_number, program from int_compute_findings
    union all
    select source_file, source_row, id_number, program from integrity_findings
),
explained as (
    select unit_key, line_program from accepted a
    where exists (select 1 from month_ledger l where l.unit_key = a.unit_key and l.program = a.line_program)
       or exists (select 1 from findings f where f.source_file = a.source_file and f.source_row = a.source_row)
       or exists (select 1 from findings f where f.id_number = a.id_number
                  and f.program in (a.program, a.line_program))
)
select distinct a.line_program, a.unit_key from accepted a
where not exists (select 1 from explained e
                  where e.unit_key = a.unit_key and e.line_program = a.line_program)
