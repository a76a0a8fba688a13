-- fact_payment: every ledger line of every payroll month (a view over payment_ledger), keyed to the
-- dimensions. A temporary-assistance line (one_off, and a reissue of one) carries its case: the approval
-- number, the event (dim_event) and its date; a one_off line also the approval level and the 一事一议
-- number, from the line's inputs as the engine explained it. NULL on every other line.
-- grain: one row per payroll month, service month, program, line type and person (and approval, for a
-- one_off line)
-- kind: view (publish defines it over the month tables, views over the month files: marts.define_fact_views)
select
    payroll_month, service_month, program, line_type, status, hold_reason, payment_state,
    id_number, household_id, region_code, urban_rural,
    amount, fund_central, fund_provincial, fund_city, fund_county, fund_version,
    payee_name, payee_account, payee_bank_code, payment_ref, batch_id, arrears_cause, rule_versions,
    approval_no,
    event_type,
    event_date,
    case when line_type = 'one_off' then json_extract_string(inputs, '$.approval_level') end   as approval_level,
    case when line_type = 'one_off' then json_extract_string(inputs, '$.case_by_case_no') end  as case_by_case_no
from payment_ledger
