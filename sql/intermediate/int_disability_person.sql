-- int_disability_person: the two disability subsidies, each its own line (contract section 3):
-- living subsidy (component living, any grade) and nursing subsidy (component nursing, by grade).
-- grain: one row per person, subsidy and service month.
-- kind: table
select
    r.unit_key, r.service_month, r.line_type, r.arrears_cause, r.basis, r.basis_month,
    r.id_number, r.household_id, r.region_code, r.urban_rural, r.source_file, r.source_row, r.approved_amount,
    r.line_program,
    r.disability_category,
    r.disability_grade,
    s.amount                                         as due,
    [s.version_id]                                   as rule_versions,
    s.amount is not null                             as has_standard
from int_basis_roster r
left join int_standard_resolved s
  on s.program = 'disability'
 and s.component = case r.line_program when 'disability_living' then 'living' else 'nursing' end
 and s.region_code = r.region_code and s.urban_rural = r.urban_rural
 and s.category = case r.line_program when 'disability_living' then '*' else r.disability_grade end
 and s.service_month = r.service_month
where r.line_program in ('disability_living', 'disability_nursing')
