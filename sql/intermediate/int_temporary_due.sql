-- int_temporary_due: one one_off line per accepted temporary-assistance case (临时救助, contract
-- sections 2, 3 and 5). The amount is the amount approved; the policy's standard (standard_months ×
-- the approving county's dibao standard for the person's urban/rural class, rounded half up to the
-- fen) stands beside it in the line's explanation, with both rule versions. The case's policy version
-- is the one integrity judged it by (temporary_policy_version); a case paid in an earlier payroll or
-- not paid at all never reaches int_units. A case held in an earlier payroll and cleared since (doudi
-- clear) is paid from its held line (released, below): arrears_cause held_released, once. grain: one row
-- per case (approval number).
-- kind: table
with cases as (
    select u.*, p.standard_months, p.township_cap, p.county_cap, p.case_by_case_threshold, p.max_per_12_months
    from int_units u
    left join stg_temporary_assistance p on p.version_id = u.temporary_policy_version
    where u.program = 'temporary'
),

standard as (
    -- the dibao standard the payroll month applies in the approving county
    select c.unit_key, s.amount as dibao_standard, s.version_id as standard_version
    from cases c
    join stg_standards s
      on s.program = 'dibao' and s.component = 'standard' and s.category = '*'
     and starts_with(c.region_code, s.region_code)
     and (s.urban_rural = '*' or s.urban_rural = c.urban_rural)
     and s.first_payroll <= getvariable('payroll_month')
     and s.effective_from <= getvariable('payroll_month')
     and s.effective_to >= getvariable('payroll_month')
    qualify row_number() over (partition by c.unit_key
                               order by length(s.region_code) desc, (s.urban_rural <> '*') desc,
                                        s.effective_from desc) = 1
),

priced as (
    select c.*,
           -- a gap is an error, never a line without its explanation (check_reference refuses it first)
           coalesce(s.dibao_standard, error('standards.csv has no dibao/standard in force for payroll '
                    || getvariable('payroll_month') || ' covering county ' || c.region_code
                    || ': the temporary-assistance standard needs it')) as dibao_standard,
           s.standard_version,
           coalesce(c.standard_months, error('temporary_assistance.csv has no version ' || coalesce(c.temporary_policy_version, '(none)')
                    || ' for a case of county ' || c.region_code || ': the temporary-assistance standard needs it'))
               as months
    from cases c
    left join standard s using (unit_key)
),

delivered as (
select
    unit_key,
    line_program,
    getvariable('payroll_month')                                      as service_month,
    'one_off'                                                         as line_type,
    CAST(NULL AS VARCHAR)                                             as arrears_cause,
    'current'                                                         as basis,
    basis_month,
    id_number,
    household_id,
    region_code,
    urban_rural,
    source_file,
    source_row,
    approved_amount,
    approval_no,
    event_type,
    event_date,
    true                                                              as has_standard,
    true                                                              as eligible,
    CAST(approved_amount AS DECIMAL(18, 2))                           as due,
    [temporary_policy_version, standard_version]                      as rule_versions,
    to_json({'event_type': event_type, 'event_date': event_date, 'approval_no': approval_no,
             'approval_level': approval_level, 'case_by_case_no': case_by_case_no,
             'approved_amount': approved_amount, 'standard_months': months, 'dibao_standard': dibao_standard,
             'standard_amount': CAST(round(months * dibao_standard, 2) AS DECIMAL(18, 2)),
             'level_cap': case approval_level when '乡镇' then township_cap else county_cap end,
             'case_by_case_threshold': case_by_case_threshold})::VARCHAR as inputs,
    format('临时救助 {}（{}，{}审批 {}{}）：核定救助金额 {} 元；标准 {} 个月 × 低保标准 {} = {} 元',
           event_type, strftime(event_date, '%Y-%m-%d'), approval_level, approval_no,
           coalesce('，一事一议 ' || case_by_case_no, ''), approved_amount::VARCHAR, months::VARCHAR,
           dibao_standard::VARCHAR, CAST(round(months * dibao_standard, 2) AS DECIMAL(18, 2))::VARCHAR) as formula
from priced
),

released as (
    -- a case held in an earlier payroll (its one_off line `held`) whose hold a clearance covering this
    -- payroll names (`doudi clear`, program temporary, the person and the hold reason): paid now, once,
    -- as it was held (amount, case, rule versions; the payee is the case's row, int_payment_lines),
    -- without the county delivering it again. Not if its approval has a payable line already, nor if
    -- the county delivered it this month (then integrity waives the hold on that row, and it is paid
    -- from there). A case held in several payrolls is released once, from the latest.
    select h.*, c.clearance_id, c.cleared_by
    from hist_ledger h
    join hold_clearances c on c.program = 'temporary' and c.id_number = h.id_number and c.hold_reason = h.hold_reason
    where h.line_type = 'one_off' and h.status = 'held'
      and not exists (select 1 from hist_ledger p
                      where p.approval_no = h.approval_no and p.line_type = 'one_off' and p.status = 'payable')
      and h.approval_no not in (select unit_key from cases)
    qualify row_number() over (partition by h.approval_no order by h.payroll_month desc, c.cleared_at desc,
                                                                   c.clearance_id) = 1
)

select * from delivered
union all by name
select
    approval_no                                                       as unit_key,
    program                                                           as line_program,
    getvariable('payroll_month')                                      as service_month,
    'one_off'                                                         as line_type,
    'held_released'                                                   as arrears_cause,
    'current'                                                         as basis,
    payroll_month                                                     as basis_month,
    id_number,
    household_id,
    region_code,
    urban_rural,
    source_file,
    source_row,
    amount                                                            as approved_amount,
    approval_no,
    event_type,
    event_date,
    true                                                              as has_standard,
    true                                                              as eligible,
    amount                                                            as due,
    rule_versions,
    json_merge_patch(inputs, to_json({'released_from_payroll': payroll_month, 'hold_reason': hold_reason,
                                       'clearance_id': clearance_id}))::VARCHAR as inputs,
    formula || format('；{} 暂停（{}），经 {} 核准后本月发放', payroll_month, hold_reason, cleared_by) as formula
from released
