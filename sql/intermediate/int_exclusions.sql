-- int_exclusions: people holding two programs that exclude each other (reference exclusions.csv).
-- grain: one row per affected row of program b, with the action the table prescribes.
-- kind: table
select
    b.source_file,
    b.source_row,
    b.id_number,
    b.program                       as program,
    e.program_a,
    e.subsidy_a,
    e.program_b,
    e.subsidy_b,
    e.action,
    a.source_file                   as other_file,
    a.source_row                    as other_row
from stg_exclusions e
join int_person_programs a
    on a.program = e.program_a and (e.subsidy_a is null or a.subsidy_type = e.subsidy_a)
join int_person_programs b
    on b.id_number = a.id_number
   and b.program = e.program_b and (e.subsidy_b is null or b.subsidy_type = e.subsidy_b)
-- one decision per row: pay_a_only wins over flag
qualify row_number() over (partition by b.source_file, b.source_row
                           order by e.action = 'pay_a_only' desc, e.program_a, a.source_file, a.source_row) = 1
