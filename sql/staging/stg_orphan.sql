-- stg_orphan: orphan roster rows normalised, with the month of the 18th birthday
-- (contract section 2, orphan: paid through that month). grain: one row per delivered row.
-- kind: table
with params as (
    -- a missing age-out is an error, never a rule switched off (check_reference refuses it first)
    select coalesce(max(value) filter (where parameter = 'orphan_age_out'),
                    error('policy_parameters.csv has no orphan_age_out row in force for payroll ' || getvariable('payroll_month') || ': the orphan age-out needs it')) as age_out
    from stg_policy_parameters
),

base as (
    select
        b.*,
        norm_text(b.delivered.placement)           as placement,
        norm_text(b.delivered.guardian_name)       as guardian_name,
        norm_code(b.delivered.guardian_id_number)  as guardian_id_number
    from stg_roster_base b
)

select
    base.*,
    month_text(base.birth_date + to_years(CAST(params.age_out AS INTEGER)))  as age_out_month,
    coalesce(month_text(base.birth_date + to_years(CAST(params.age_out AS INTEGER))) < base.payroll_month,
             false)                                                        as aged_out,
    base.placement is distinct from '机构养育'                              as guardian_required,
    base.guardian_id_number is null or id_check_ok(base.guardian_id_number) as guardian_id_ok,
    true                                                                    as account_required
from base, params
