-- stg_tekun: tekun roster rows normalised, with eligibility by age or disability
-- (contract section 2, tekun; ages from policy_parameters.csv). grain: one row per delivered row.
-- kind: table
with params as (
    select
        -- a missing age is an error, never a rule switched off (check_reference refuses it first)
        coalesce(max(value) filter (where parameter = 'tekun_elderly_min_age'),
                 error('policy_parameters.csv has no tekun_elderly_min_age row in force for payroll ' || getvariable('payroll_month') || ': tekun eligibility by age needs it')) as elderly_min_age,
        coalesce(max(value) filter (where parameter = 'tekun_minor_max_age'),
                 error('policy_parameters.csv has no tekun_minor_max_age row in force for payroll ' || getvariable('payroll_month') || ': tekun eligibility by age needs it'))   as minor_max_age
    from stg_policy_parameters
),

base as (
    select
        b.*,
        norm_text(b.delivered.placement)          as placement,
        norm_text(b.delivered.care_level)         as care_level,
        norm_code(b.delivered.institution_code)   as institution_code,
        -- extension: a working-age tekun person may show a disability certificate on the roster
        norm_code(b.delivered.disability_cert_no) as disability_cert_no
    from stg_roster_base b
)

select
    base.*,
    base.age_at_payroll >= params.elderly_min_age
        or base.age_at_payroll < params.minor_max_age
        or base.disability_cert_no is not null
        or base.id_number in (select id_number from disability_roster_ids)  as tekun_eligible,
    true                                                                     as account_required
from base, params
