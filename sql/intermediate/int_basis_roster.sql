-- int_basis_roster: the roster rows each (unit, service month) is computed from.
-- grain: one row per roster row, unit, line program and service month.
-- kind: table
select
    m.service_month,
    m.line_type,
    m.arrears_cause,
    m.basis,
    u.*
from int_service_months m
join int_units u
  on u.unit_key = m.unit_key and u.line_program = m.line_program
where m.basis = 'current'

union all by name

select
    m.service_month,
    m.line_type,
    m.arrears_cause,
    m.basis,
    h.*
from int_service_months m
join hist_units h
  on h.unit_key = m.unit_key and h.line_program = m.line_program and h.basis_month = m.history_month
where m.basis = 'history'
