-- int_roster_validated: every delivered row of one program with its disposition after validation.
-- grain: one row per delivered row (source_file, source_row): row conservation starts here.
-- Inputs: stg_roster (the program's staging model) and gx_failures (row_key, reason_code) from the
-- Great Expectations suite. Cross-roster duplicates are decided later, in integrity.
-- kind: table
with rows as (
    select * from stg_roster
),

failures as (
    select row_key, list_sort(list_distinct(list(reason_code))) as reasons
    from gx_failures
    group by row_key
),

first_pass as (
    select
        r.*,
        case
            when r.file_status = 'rejected' then list_distinct(['FILE_REJECTED', r.file_reason])
            when r.file_status = 'superseded' and r.duplicate_of_row is null then ['FILE_SUPERSEDED']
            when r.row_malformed is not null then ['ROW_MALFORMED']
            else coalesce(f.reasons, [])
        end as own_reasons,
        case
            when r.file_status = 'duplicate_delivery' then 'same_file_delivered_twice'
            when r.file_status = 'superseded' and r.duplicate_of_row is not null then 'superseded_by_correction'
            when r.same_file_duplicate_of_row is not null then 'same_person_same_file'
        end as duplicate_rule
    from rows r
    left join failures f using (row_key)
),

households as (
    -- a dibao household with a household-level or member error is quarantined whole
    select household_key, bool_or(len(own_reasons) > 0) as any_member_bad
    from first_pass
    where household_key is not null and duplicate_rule is null and file_status = 'loaded'
    group by household_key
)

select
    p.* exclude (own_reasons, duplicate_of_file, duplicate_of_row),
    case
        when p.duplicate_rule is not null then 'duplicate'
        when len(p.own_reasons) > 0 or coalesce(h.any_member_bad, false) then 'quarantined'
        else 'accepted'
    end as disposition,
    case
        when p.duplicate_rule is not null then []
        when len(p.own_reasons) = 0 and coalesce(h.any_member_bad, false) then ['HOUSEHOLD_MEMBER_INVALID']
        else p.own_reasons
    end as reasons,
    case p.duplicate_rule
        when 'same_person_same_file' then p.source_file
        else p.duplicate_of_file
    end as duplicate_of_file,
    case p.duplicate_rule
        when 'same_person_same_file' then p.same_file_duplicate_of_row
        else p.duplicate_of_row
    end as duplicate_of_row
from first_pass p
left join households h
    on h.household_key = p.household_key and p.duplicate_rule is null and p.file_status = 'loaded'
