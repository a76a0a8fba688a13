-- audit: engine_month
-- message: {n} lines already paid in an earlier payroll (would pay twice)
-- A line the bank returned as failed is owed again, through a reissue line: not a second payment.
select m.* from month_ledger m
join hist_ledger h on h.id_number = m.id_number and h.program = m.program
    and h.service_month = m.service_month and h.line_type = m.line_type
where m.status = 'payable' and h.status = 'payable' and h.payment_state is distinct from 'failed'
