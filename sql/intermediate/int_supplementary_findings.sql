-- int_supplementary_findings: what a supplementary run (a released month rerun on corrected rosters)
-- cannot settle by itself. overpaid_after_release: a released line paid more than the corrected
-- computation (month_ledger) gives; the difference is reported, never recovered automatically.
-- supplementary_review: the corrected amount is higher, but the month already has a supplementary
-- correction line for it (supplementary_ledger): the difference waits for a person to settle it.
-- paid_by_later_payroll: the corrected computation owes a regular or arrears line (or a top-up of
-- one) for a service month that a later payroll already paid the person's program (later_paid):
-- not paid again; a difference, if any, waits for a person to settle it.
-- grain: one row per finding.
-- kind: table
select getvariable('payroll_month') as payroll_month, 'overpaid_after_release' as finding_type,
       'warning' as severity, r.program, r.id_number, r.region_code, 'recorded' as action,
       format('已发放 {} {} {} 元；更正后应发 {} 元：多发部分不自动追回，请核查', r.service_month, r.line_type,
              r.amount::VARCHAR, coalesce(f.amount, 0)::VARCHAR) as detail,
       r.source_file, r.source_row
from released_lines r
left join month_ledger f on f.service_month = r.service_month and f.program = r.program
     and f.line_type = r.line_type and f.id_number = r.id_number and f.status = 'payable'
where coalesce(f.amount, 0) < r.amount
union all by name
select getvariable('payroll_month') as payroll_month, 'supplementary_review' as finding_type, 'warning' as severity,
       f.program, f.id_number, f.region_code, 'recorded' as action,
       format('更正后 {} {} 应发 {} 元，已发 {} 元，但该月已有补发行：差额待人工核定',
              f.service_month, f.line_type, f.amount::VARCHAR, r.amount::VARCHAR) as detail,
       f.source_file, f.source_row
from month_ledger f join released_lines r using (service_month, program, line_type, id_number)
where f.status = 'payable' and f.amount > r.amount
  and not exists (select 1 from supplementary_ledger s where s.service_month = f.service_month
                  and s.program = f.program and s.id_number = f.id_number and s.line_type = 'arrears'
                  and s.arrears_cause = 'supplementary_correction')
  -- not when a later payroll paid the month (paid_by_later_payroll below says so)
  and not (f.line_type in ('regular', 'arrears') and exists (
      select 1 from later_paid l
      where l.service_month = f.service_month and l.program = f.program and l.id_number = f.id_number))
union all by name
select getvariable('payroll_month') as payroll_month, 'paid_by_later_payroll' as finding_type, 'warning' as severity,
       f.program, f.id_number, f.region_code, 'recorded' as action,
       format('更正后 {} {} 应发 {} 元，本月已发 {} 元；{} 月已为 {} 发放 {} 元：补充发放不再支付，如有差额请人工核定',
              f.service_month, f.line_type, f.amount::VARCHAR, coalesce(r.amount, 0)::VARCHAR, l.payroll_month,
              f.service_month, l.amount::VARCHAR) as detail,
       f.source_file, f.source_row,
       -- the payrolls that paid it: none of them may be rerun to another ledger (lifecycle.built_on)
       to_json({paid_by: l.payroll_months})::VARCHAR as evidence
from month_ledger f
join later_paid l using (service_month, program, id_number)
left join released_lines r using (service_month, program, line_type, id_number)
where f.status = 'payable' and f.line_type in ('regular', 'arrears') and coalesce(r.amount, 0) < f.amount
