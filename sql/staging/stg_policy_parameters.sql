-- stg_policy_parameters: scalar policy rules in force for the payroll month.
-- `value` is the number (NULL where the value is not one, e.g. pay_amount_source = computed);
-- `value_text` the value as written. check_reference refuses a required parameter that is missing,
-- in force twice, or not of its kind; the models that read one fail rather than default.
-- grain: one row per parameter (and version in force)
-- kind: table
select
    norm_text(parameter)                             as parameter,
    TRY_CAST(norm_code(value) AS DECIMAL(18, 4))     as value,
    lower(norm_code(value))                          as value_text,
    norm_month(effective_from)                       as effective_from,
    norm_month(effective_to)                         as effective_to
from raw_policy_parameters
where norm_month(effective_from) <= getvariable('payroll_month')
  and coalesce(norm_month(effective_to), '9999-12') >= getvariable('payroll_month')
