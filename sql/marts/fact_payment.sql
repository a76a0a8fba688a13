-- fact_payment: every ledger line of the payroll month being loaded (payment_ledger), keyed to the
-- dimensions. grain: one row per payroll month, service month, program, line type and person
select
    payroll_month, service_month, program, line_type, status, hold_reason, payment_state,
    id_number, household_id, region_code, urban_rural,
    amount, fund_central, fund_provincial, fund_city, fund_county, fund_version,
    payee_name, payee_account, payee_bank_code, payment_ref, batch_id, arrears_cause, rule_versions
from payment_ledger
where payroll_month = getvariable('payroll_month')
