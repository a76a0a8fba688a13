-- int_receivable_findings: the finding each receivable is reported with (receivable_recognised):
-- what was paid, for which month, and the death that makes it owed back. Recorded, never deducted
-- from a later payment automatically. compute adds them to int_compute_findings.
-- grain: one row per overpaid ledger line (int_receivables).
-- kind: table
select payroll_month, 'receivable_recognised' as finding_type, 'error' as severity, program, id_number,
       region_code, 'recorded' as action,
       format('{} 已发放 {} {} 元（{}，{}），但此人已于 {} 死亡（{} 报送）：列为应追缴，不自动扣回',
              paid_payroll, service_month, amount::VARCHAR, line_type, payment_ref, death_month,
              reported_month) as detail
from int_receivables
