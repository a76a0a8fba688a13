-- int_receivables: money already paid that a death learnt later shows was not owed (应追缴, contract
-- section 3): every payable line of an earlier payroll, standing on a person the death registry now
-- reports dead, for a service month after the month of death (the dead person's own lines; a dibao
-- household's program lines stand on its head, so a dead head's household lines are included).
-- Recognised once, in the first payroll that knows the death; never netted against a later payment.
-- A payment the bank returned as failed was not paid, so it is no receivable.
-- grain: one row per overpaid ledger line.
-- kind: table
select
    l.line_id                                        as receivable_id,
    getvariable('payroll_month')                     as payroll_month,
    l.payroll_month                                  as paid_payroll,
    l.service_month,
    l.program,
    l.line_type,
    l.id_number,
    l.household_id,
    l.region_code,
    l.amount,
    l.payment_ref,
    d.death_month,
    d.reported_month,
    to_json({death_month: d.death_month, reported_month: d.reported_month, source: d.source,
             paid_payroll: l.payroll_month, payment_ref: l.payment_ref})::VARCHAR as evidence
from hist_ledger l
join known_deaths d on d.id_number = l.id_number
where l.status = 'payable'
  and l.payment_state is distinct from 'failed'
  and l.service_month > d.death_month
  and l.line_id not in (select receivable_id from hist_receivables)
