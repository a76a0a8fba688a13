-- payment_ledger (this payroll month's lines): the contract's ledger (section 5), one row per
-- payroll month, service month, program, line type and person, with the rule versions, inputs and
-- formula that produced each line and its fund attribution. payment_ref is filled by the payout
-- stage; the publish stage replaces the month's lines in the warehouse table of the same name.
-- grain: one row per payment line.
-- name: month_ledger (the engine's lines of the month; the warehouse's payment_ledger holds every month)
-- kind: table
select
    -- keys
    l.line_key                                   as line_id,
    getvariable('payroll_month')                 as payroll_month,
    l.service_month,
    l.line_program                               as program,
    l.line_type,
    l.status,
    l.hold_reason,
    l.id_number,
    l.household_id,
    l.unit_key,
    l.region_code,
    l.urban_rural,
    -- money
    CAST(l.amount AS DECIMAL(18, 2))             as amount,
    CAST(l.due AS DECIMAL(18, 2))                as amount_due,
    CAST(l.previously_paid AS DECIMAL(18, 2))    as previously_paid,
    f.fund_central,
    f.fund_provincial,
    f.fund_city,
    f.fund_county,
    f.fund_version,
    -- payee
    l.beneficiary_name,
    l.payee_name,
    l.payee_account,
    l.payee_bank_code,
    l.payee_bank_name,
    l.payee_bic,
    l.institution_code,
    CAST(NULL AS VARCHAR)                        as payment_ref,
    CAST(NULL AS VARCHAR)                        as batch_id,
    -- sent when published; paid / failed once a bank return names it (pipelines/bank_returns.py)
    case when l.status = 'payable' then 'sent' end as payment_state,
    l.reissue_of,
    -- explanation
    l.arrears_cause,
    l.basis_month,
    l.rule_versions,
    l.inputs,
    case when l.line_type = 'arrears'
         then format('{}；应发 {} − 已发 {} = 补发 {}', l.formula, l.due::VARCHAR, l.previously_paid::VARCHAR,
                     l.amount::VARCHAR)
         else l.formula end                      as formula,
    l.approved_amount,
    -- temporary assistance (one_off lines): the case, NULL on every other line
    l.approval_no,
    l.event_type,
    l.event_date,
    l.source_file,
    l.source_row,
    -- 不断: a line of a county roster paid forward from an earlier month (ingest's carry-forward,
    -- source file carried/<YYYY-MM>/...) is provisional until the county's file for this month arrives
    -- and a line of a county whose reference data is held, paid forward from its last month
    -- (int_reference_held_due) until the tables are fixed
    coalesce(l.provisional_from,
             case when starts_with(l.source_file, 'carried/') then split_part(l.source_file, '/', 2) end)
                                                 as provisional_from
from int_payment_lines l
-- a left join: a line without a fund split is kept, and compute's LINE_AUDITS fail the run on it
left join int_fund_split f on f.line_key = l.line_key
