-- int_compute_findings: what the payment engine found while computing the month.
-- grain: one row per finding.
-- kind: table
with due as (
    -- nothing is judged from a held county's broken tables (int_reference_held_due pays it forward)
    select * from int_program_due where not reference_held(region_code)
),

tolerance as (
    select CAST(getvariable('approved_tolerance') AS DECIMAL(18, 2)) as tol
),

escalation as (
    -- months a failed payment may wait for a corrected account before it is reported as overdue
    select coalesce(max(value), error('policy_parameters.csv has no reissue_escalate_after_months row in force '
                                      || 'for payroll ' || getvariable('payroll_month')
                                      || ': the escalation of an unreissued payment needs it')) as after_months
    from stg_policy_parameters
    where parameter = 'reissue_escalate_after_months'
)

select getvariable('payroll_month') as payroll_month, 'dibao_not_eligible' as finding_type,
       'info' as severity, line_program as program, id_number, region_code, 'not_paid' as action,
       '家庭人均收入不低于低保标准: ' || formula as detail, source_file, source_row
from due
where line_program = 'dibao' and not eligible and has_standard and line_type = 'regular'

union all
select getvariable('payroll_month'), 'no_standard', 'error', line_program, id_number, region_code, 'not_paid',
       '找不到适用于 ' || service_month || ' 的保障标准（' || region_code || ' ' || coalesce(urban_rural, '') || '）',
       source_file, source_row
from due
where not has_standard

union all
select getvariable('payroll_month'), 'approved_amount_differs', 'warning', line_program, id_number, region_code,
       'paid_and_flagged',
       format('县核定 {}，计算 {}，按{}发放', approved_amount::VARCHAR, due::VARCHAR,
              case getvariable('pay_amount_source') when 'approved' then '核定金额' else '计算金额' end),
       source_file, source_row
from due, tolerance
where line_type = 'regular' and approved_amount is not null and due is not null
  and abs(approved_amount - due) > tolerance.tol

union all
select getvariable('payroll_month'), 'arrears_negative', 'warning', d.line_program, d.id_number, d.region_code,
       'recorded', format('{} 应发 {}，已发 {}：不追回', d.service_month, d.due::VARCHAR, p.paid_amount::VARCHAR),
       d.source_file, d.source_row
from due d
join int_paid_history p
  on p.unit_key = d.unit_key and p.line_program = d.line_program and p.service_month = d.service_month
where d.line_type = 'arrears' and d.eligible and d.has_standard and d.due < p.paid_amount

union all
select getvariable('payroll_month'), 'arrears_top_up_review', 'warning', line_program, id_number, region_code, 'held',
       format('{} 已以补发方式发放过；按新标准应再补 {} 元，为避免同一月份重复补发，暂停待人工核定',
              service_month, amount::VARCHAR),
       source_file, source_row
from int_payment_lines
where hold_reason = 'arrears_top_up_review'

union all
-- a bank said the account is closed or does not exist: every line to it is held until the roster
-- delivers another account (then the held months are paid)
select getvariable('payroll_month'), 'account_closed', 'error', l.line_program, l.id_number, l.region_code, 'held',
       format('{} {} 元暂停：账户 {} 已于 {} 被银行回报“{}”（{}），请更换收款账户', l.service_month, l.amount::VARCHAR,
              mask_account(l.payee_account), c.reported_month, c.reason, c.payment_ref),
       l.source_file, l.source_row
from int_payment_lines l
join hist_closed_accounts c on c.payee_account = l.payee_account
where l.hold_reason = 'account_closed'

union all
-- eligible, but the standards give nothing for the month (a standard of 0): no line, this finding
select getvariable('payroll_month'), 'nothing_due', 'info', line_program, id_number, region_code, 'not_paid',
       '按标准本月应发 0 元：' || formula, source_file, source_row
from due
where line_type = 'regular' and eligible and has_standard and due <= 0

union all
-- on the roster, but the month is outside the entitlement it states (ended, not yet begun, aged out):
-- no line, and this finding says why (every unit ends with a line or a finding)
select getvariable('payroll_month'), 'not_entitled_this_month', 'info', line_program, id_number, region_code,
       'not_paid',
       format('名册载明享受期 {} 至 {}{}：本月 {} 不在享受期内，不予发放', enrolled_from, coalesce(enrolled_to, '长期'),
              coalesce('，年满停发月 ' || age_out_month, ''), getvariable('payroll_month')),
       source_file, source_row
from int_units
where (program <> 'dibao' or relation = '户主') and program <> 'temporary'
  and not (enrolled_from <= getvariable('payroll_month')
           and coalesce(enrolled_to, '9999-12') >= getvariable('payroll_month')
           and coalesce(age_out_month, '9999-12') >= getvariable('payroll_month'))

union all
-- owed, but no account to pay it to (a unit whose last roster row carried none): held
select getvariable('payroll_month'), 'no_payee_account', 'error', line_program, id_number, region_code, 'held',
       format('{} {} {} 元应发，但没有可用的收款账户：暂停，请补录账户', service_month, line_type, amount::VARCHAR),
       source_file, source_row
from int_payment_lines
where hold_reason = 'no_payee_account'

union all
-- a held county's unit with nothing to pay forward (new this month, a temporary case, last paid too
-- long ago, a program carry_forward_programs does not list, or a death on record): not paid, said so
select getvariable('payroll_month'), 'county_reference_held_unpaid', 'error', u.line_program, u.id_number,
       u.region_code, 'not_paid',
       u.region_code || ' 的参考数据（标准、资金分担比例等）有误，本县暂停按新数据计算；'
       || case when exists (select 1 from int_units m where m.unit_key = u.unit_key
                            and m.line_program = u.line_program and m.death_month is not null)
               then '本户（人）有死亡登记，金额须重新计算，不临时发放'
               else format('本人在最近 {} 个月内没有可沿用的发放记录（或该项目不临时发放）',
                           getvariable('carry_forward_max_months')) end
       || '，本月暂不发放，参考数据更正后以补充批次补发',
       u.source_file, u.source_row
from int_units u
where reference_held(u.region_code) and (u.program <> 'dibao' or u.relation = '户主')
  and (u.program = 'temporary'
       or exists (select 1 from int_service_months s
                  where s.unit_key = u.unit_key and s.line_program = u.line_program
                    and s.service_month = getvariable('payroll_month')))
  and not exists (select 1 from int_reference_held_due d
                  where d.unit_key = u.unit_key and d.line_program = u.line_program)

union all
-- a failed payment still waiting for a corrected account: held, owed; escalated after the months
-- policy_parameters.csv allows (reissue_escalate_after_months)
select getvariable('payroll_month'),
       case when l.overdue then 'reissue_overdue' else 'awaiting_account_correction' end,
       case when l.overdue then 'error' else 'warning' end,
       l.line_program, l.id_number, l.region_code, 'held',
       format('{} 的款项 {} 元于 {} 被银行退回，账户 {} 尚未更正，暂不重发', l.service_month, l.amount::VARCHAR,
              l.first_failed_payroll, mask_account(l.failed_account)),
       null, null
from (select *, datediff('month', month_date(first_failed_payroll), month_date(getvariable('payroll_month')))
                   > (select after_months from escalation) as overdue  -- 超过: more than
      from int_payment_lines) l
where l.line_type = 'reissue' and l.hold_reason = 'awaiting_account_correction'

