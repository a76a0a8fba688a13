-- audit: engine_month (the whole month's lines, after a partitioned month is combined)
-- message: {n} duplicate ledger keys (payroll month, service month, program, line type, person; one_off: approval)
-- The rows: one per key that more than one line of the month carries.
select 1 from month_ledger
group by payroll_month, service_month, program, line_type, id_number, approval_no
having count(*) > 1
