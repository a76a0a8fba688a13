-- int_orphan_person: the orphans' basic living allowance by placement (contract section 3), paid
-- through the month of the 18th birthday (int_service_months stops at age_out_month).
-- grain: one row per child and service month.
-- kind: table
select
    r.unit_key, r.service_month, r.line_type, r.arrears_cause, r.basis, r.basis_month,
    r.id_number, r.household_id, r.region_code, r.urban_rural, r.source_file, r.source_row, r.approved_amount,
    'orphan'                                         as line_program,
    r.placement,
    r.age_out_month,
    b.amount                                         as due,
    [b.version_id]                                   as rule_versions,
    b.amount is not null                             as has_standard
from int_basis_roster r
left join int_standard_resolved b
  on b.program = 'orphan' and b.component = 'basic' and b.region_code = r.region_code
 and b.urban_rural = r.urban_rural and b.category = r.placement and b.service_month = r.service_month
where r.line_program = 'orphan'
