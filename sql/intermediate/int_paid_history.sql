-- int_paid_history: what earlier payrolls did for each unit, program and service month, from the
-- ledger's program lines (regular, arrears; price subsidies are settled on their own). A line the
-- bank returned as failed still counts: it is owed through a reissue line (int_reissue_due), never
-- again through arrears; reissue lines replace such payments and so are not counted a second time.
-- grain: one row per unit, line program and service month that appears in an earlier payroll.
-- kind: table
select
    unit_key,
    program                                          as line_program,
    service_month,
    coalesce(sum(amount) filter (where status = 'payable'), 0) as paid_amount,
    bool_or(status = 'payable')                      as was_paid,
    bool_or(status = 'held')                         as was_held,
    -- the payroll whose roster first paid (or held) the month: a month paid as late-enrolment
    -- arrears has no roster of its own, and is recomputed from that payroll's roster
    min(payroll_month) filter (where status = 'payable') as first_paid_payroll,
    min(payroll_month) filter (where status = 'held')    as first_held_payroll
from hist_ledger
where line_type in ('regular', 'arrears')
group by all
