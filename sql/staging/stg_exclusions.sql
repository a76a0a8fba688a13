-- stg_exclusions: program combinations one person may not hold in one month (contract section 3).
-- grain: one row per combination. `disability:生活补贴` names a subsidy of a program. Program names
-- are read case-insensitively (`Tekun` is tekun); a name that is no program is refused by
-- check_reference (expectations/reference.json), never kept as a rule that matches nobody.
-- kind: table
select
    split_part(lower(norm_text(program_a)), ':', 1)              as program_a,
    nullif(split_part(lower(norm_text(program_a)), ':', 2), '')  as subsidy_a,
    split_part(lower(norm_text(program_b)), ':', 1)              as program_b,
    nullif(split_part(lower(norm_text(program_b)), ':', 2), '')  as subsidy_b,
    lower(norm_code(action))                              as action
from raw_exclusions
