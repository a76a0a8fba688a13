-- audit: engine_month
-- message: {n} one_off lines whose approval number an earlier payroll already paid (a case is paid once, ever)
select m.line_id from month_ledger m join hist_ledger h on h.approval_no = m.approval_no
where m.line_type = 'one_off' and m.status = 'payable' and h.line_type = 'one_off' and h.status = 'payable'
