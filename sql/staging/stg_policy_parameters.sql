-- stg_policy_parameters: scalar policy rules in force for the payroll month.
-- grain: one row per parameter
select
    norm_text(parameter)                         as parameter,
    CAST(norm_code(value) AS DECIMAL(18, 4))     as value,
    norm_month(effective_from)                   as effective_from,
    norm_month(effective_to)                     as effective_to
from raw_policy_parameters
where norm_month(effective_from) <= getvariable('payroll_month')
  and coalesce(norm_month(effective_to), '9999-12') >= getvariable('payroll_month')
