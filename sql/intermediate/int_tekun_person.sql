-- int_tekun_person: tekun support per person and service month = basic + care by care level
-- (contract section 3). 集中供养 is paid to the institution's account (the roster's account columns).
-- grain: one row per person and service month.
-- kind: table
select
    r.unit_key, r.service_month, r.line_type, r.arrears_cause, r.basis, r.basis_month,
    r.id_number, r.household_id, r.region_code, r.urban_rural, r.source_file, r.source_row, r.approved_amount,
    'tekun'                                          as line_program,
    r.placement,
    r.care_level,
    b.amount                                         as basic,
    c.amount                                         as care,
    CAST(b.amount + c.amount AS DECIMAL(18, 2))      as due,
    [b.version_id, c.version_id]                     as rule_versions,
    b.amount is not null and c.amount is not null    as has_standard
from int_basis_roster r
left join int_standard_resolved b
  on b.program = 'tekun' and b.component = 'basic' and b.region_code = r.region_code
 and b.urban_rural = r.urban_rural and b.category = '*' and b.service_month = r.service_month
left join int_standard_resolved c
  on c.program = 'tekun' and c.component = 'care' and c.region_code = r.region_code
 and c.urban_rural = r.urban_rural and c.category = r.care_level and c.service_month = r.service_month
where r.line_program = 'tekun'
