-- int_reference_standard_gaps: the standards every county needs for the payroll month that no
-- version of standards.csv gives (contract section 3): tekun basic, tekun care for each care level,
-- the orphans' allowance for each placement, the disability living subsidy, the dibao class add-on
-- for each class category (a household declaring 老年 would otherwise lose its add-on without a
-- word; a county that pays none lists it at 0); urban and rural. A
-- roster row needing a standard that is not there would otherwise be turned away one by one, so a
-- gap stops the run in check_reference. (The dibao standard: int_reference_policy. The nursing
-- subsidy is by grade, and a grade the table does not list is not eligible: no gap.)
-- grain: one row per needed (program, component, category, urban_rural) with the counties lacking it.
-- kind: table
with needs as (
    select * from (values ('tekun', 'basic', '*'), ('disability', 'living', '*')) v(program, component, category)
    union all
    select 'tekun', 'care', value from vocab_care_level
    union all
    select 'orphan', 'basic', value from vocab_placement where program = 'orphan'
    union all
    select 'dibao', 'class_addon', value from vocab_class_category
),

places as (
    select r.region_code, u.urban_rural
    from stg_regions r, (values ('城市'), ('农村')) u(urban_rural)
),

missing as (
    select n.program, n.component, n.category, p.urban_rural, p.region_code
    from needs n cross join places p
    where not exists (
        select 1 from stg_standards s
        where s.program = n.program and s.component = n.component
          and (s.category = '*' or s.category = n.category)
          and starts_with(p.region_code, s.region_code)
          and (s.urban_rural = '*' or s.urban_rural = p.urban_rural)
          and s.first_payroll <= getvariable('payroll_month')
          and s.effective_from <= getvariable('payroll_month')
          and s.effective_to >= getvariable('payroll_month'))
)

select program, component, category, urban_rural, list(region_code order by region_code) as counties
from missing
group by all
order by all
