-- int_roster_final: every delivered row with its final disposition and what integrity decided
-- for payment (int_roster_decisions: the columns are explained there). grain: one row per
-- delivered row (row conservation).
--
-- A view: pipelines/integrity.py writes it to Parquet a few counties at a time. The month's rows
-- with their lineage columns are about 1 KB each; one ORDER BY over 25M of them spilled 36 GB.
-- kind: view (streamed into _work/integrity/roster.parquet; integrity then points it at that file)
select
    r.* exclude (disposition, duplicate_of_file, duplicate_of_row, duplicate_rule),
    case when x.duplicate_across_counties then 'duplicate' else r.disposition end as disposition,
    coalesce(x.survivor_file, r.duplicate_of_file)      as duplicate_of_file,
    coalesce(x.survivor_row, r.duplicate_of_row)        as duplicate_of_row,
    coalesce(x.duplicate_rule, r.duplicate_rule)        as duplicate_rule,
    x.not_paid_reason,
    coalesce(x.excluded_member, false)                  as excluded_member,
    coalesce(x.no_price_subsidy, false)                 as no_price_subsidy,
    x.death_month,
    x.hold_reason,
    x.cleared_hold_reason,
    x.clearance_id,
    x.cleared_by,
    x.cleared_at,
    x.clearance_note,
    -- the temporary-assistance policy version a case was judged by: the engine pays by the same one
    t.policy_version                                    as temporary_policy_version
from int_roster_all r
left join int_roster_decisions x on x.source_file = r.source_file and x.source_row = r.source_row
left join int_temporary_cases t on t.source_file = r.source_file and t.source_row = r.source_row
