-- int_reference_policy: for every county of the province and both urban/rural classes, the dibao
-- standard, tekun basic and rural poverty line in force for the payroll month, so the reference
-- suite can check the policy's own rules (contract section 3): tekun basic >= ratio × dibao
-- standard, rural dibao standard above the poverty line. grain: one row per county and urban/rural.
-- kind: table
with places as (
    select r.region_code, u.urban_rural
    from stg_regions r, (values ('城市'), ('农村')) u(urban_rural)
),

resolved as (
    select p.region_code, p.urban_rural, s.program, s.component, s.amount, s.version_id
    from places p
    join stg_standards s
      on starts_with(p.region_code, s.region_code)
     and (s.urban_rural = '*' or s.urban_rural = p.urban_rural)
     and s.category = '*'
     and s.first_payroll <= getvariable('payroll_month')
     and s.effective_from <= getvariable('payroll_month')
     and s.effective_to >= getvariable('payroll_month')
    qualify row_number() over (partition by p.region_code, p.urban_rural, s.program, s.component
                               order by length(s.region_code) desc, (s.urban_rural <> '*') desc,
                                        s.effective_from desc) = 1
),

ratio as (
    select coalesce(max(value) filter (where parameter = 'tekun_basic_min_ratio'),
                    error('policy_parameters.csv has no tekun_basic_min_ratio row in force for payroll ' || getvariable('payroll_month') || ': the 1.3 × check of tekun basic needs it')) as tekun_ratio
    from stg_policy_parameters
)

select
    p.region_code,
    p.urban_rural,
    max(r.amount) filter (where r.program = 'dibao' and r.component = 'standard')           as dibao_standard,
    max(r.amount) filter (where r.program = 'tekun' and r.component = 'basic')              as tekun_basic,
    max(r.amount) filter (where r.program = 'reference' and r.component = 'poverty_line')   as poverty_line,
    (max(r.amount) filter (where r.program = 'dibao' and r.component = 'standard') * min(ratio.tekun_ratio))::DOUBLE
                                                                                             as tekun_minimum_num,
    (max(r.amount) filter (where r.program = 'tekun' and r.component = 'basic'))::DOUBLE    as tekun_basic_num,
    (max(r.amount) filter (where r.program = 'dibao' and r.component = 'standard'))::DOUBLE as dibao_standard_num,
    (max(r.amount) filter (where r.program = 'reference' and r.component = 'poverty_line'))::DOUBLE as poverty_line_num
from places p
left join resolved r using (region_code, urban_rural)
cross join ratio
group by p.region_code, p.urban_rural
