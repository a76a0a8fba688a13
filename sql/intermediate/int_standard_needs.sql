-- int_standard_needs: every standards lookup this payroll needs, once each.
-- grain: one row per (program, component, region_code, urban_rural, category, service_month).
-- kind: table
with basis as (
    select * from int_basis_roster
),

needs as (
    -- dibao: standard and floor for the head's county and urban/rural; each member's add-on classes
    select 'dibao' as program, 'standard' as component, region_code, urban_rural, '*' as category, service_month
    from basis where line_program = 'dibao' and relation = '户主'
    union all
    select 'dibao', 'floor', region_code, urban_rural, '*', service_month
    from basis where line_program = 'dibao' and relation = '户主'
    union all
    select 'dibao', 'class_addon', h.region_code, h.urban_rural, unnest(m.class_categories), m.service_month
    from basis m
    join basis h on h.unit_key = m.unit_key and h.service_month = m.service_month
                and h.line_program = 'dibao' and h.relation = '户主' and h.basis_month = m.basis_month
    where m.line_program = 'dibao' and m.class_categories is not null and not m.excluded_member
    -- tekun: basic + care by care level
    union all
    select 'tekun', 'basic', region_code, urban_rural, '*', service_month from basis where line_program = 'tekun'
    union all
    select 'tekun', 'care', region_code, urban_rural, care_level, service_month from basis where line_program = 'tekun'
    -- orphans by placement
    union all
    select 'orphan', 'basic', region_code, urban_rural, placement, service_month from basis where line_program = 'orphan'
    -- disability: living (any grade), nursing by grade
    union all
    select 'disability', 'living', region_code, urban_rural, '*', service_month
    from basis where line_program = 'disability_living'
    union all
    select 'disability', 'nursing', region_code, urban_rural, disability_grade, service_month
    from basis where line_program = 'disability_nursing'
    -- price subsidy: the dibao standard of each covered person's county, in force this payroll month
    union all
    select 'dibao', 'standard', region_code, urban_rural, '*', getvariable('payroll_month') from int_units
)

select distinct * from needs
