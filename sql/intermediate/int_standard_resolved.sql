-- int_standard_resolved: the standards version that applies to each need (contract section 3).
-- Among versions with first_payroll <= payroll month and effective_from <= S <= effective_to:
-- the longest region prefix, then a specific urban/rural and category over `*`, then the latest
-- effective_from. grain: one row per need that has a version (a need without one has no row).
-- kind: table
select
    n.program,
    n.component,
    n.region_code,
    n.urban_rural,
    n.category,
    n.service_month,
    s.amount,
    s.version_id
from int_standard_needs n
join stg_standards s
  on s.program = n.program
 and s.component = n.component
 and starts_with(n.region_code, s.region_code)
 and (s.urban_rural = '*' or s.urban_rural = n.urban_rural)
 and (s.category = '*' or s.category = n.category)
 and s.first_payroll <= getvariable('payroll_month')
 and s.effective_from <= n.service_month
 and s.effective_to >= n.service_month
qualify row_number() over (
    partition by n.program, n.component, n.region_code, n.urban_rural, n.category, n.service_month
    order by length(s.region_code) desc, (s.urban_rural <> '*') desc, (s.category <> '*') desc,
             s.effective_from desc
) = 1
