-- int_paid_history: what earlier payrolls did for each unit, program and service month, from the
-- ledger's program lines (regular, arrears, reissue; price subsidies are settled on their own).
-- grain: one row per unit, line program and service month that appears in an earlier payroll.
select
    unit_key,
    program                                          as line_program,
    service_month,
    coalesce(sum(amount) filter (where status = 'payable'), 0) as paid_amount,
    bool_or(status = 'payable')                      as was_paid,
    bool_or(status = 'held')                         as was_held
from hist_ledger
where line_type in ('regular', 'arrears', 'reissue')
group by all
