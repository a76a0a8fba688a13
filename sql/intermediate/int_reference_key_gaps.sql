-- int_reference_key_gaps: the keys of standards.csv (program, component, region_code, urban_rural,
-- category) with a version already payable but none in force for the payroll month (service
-- month = payroll month, first_payroll reached): the region's own standard stops, and the longest
-- matching prefix would silently become the city's or the province's (contract section 3: the
-- longest matching prefix wins; issue: a closed 2019 row beside a 2020 row payable only from April
-- left Dalian on the province's standard for three payrolls). A key ending on purpose needs a row
-- saying what follows. grain: one row per key, with the counties of regions.csv under its prefix.
-- kind: table
with keys as (
    select program, component, region_code, urban_rural, category,
           max(effective_to) as last_to
    from stg_standards
    where program <> 'reference'
    group by all
    -- a version of the key was already payable (a new key waiting for its first payroll is not a gap)
    having count(*) filter (where first_payroll <= getvariable('payroll_month')
                              and effective_from <= getvariable('payroll_month')) > 0
       and count(*) filter (where first_payroll <= getvariable('payroll_month')
                              and effective_from <= getvariable('payroll_month')
                              and effective_to >= getvariable('payroll_month')) = 0
)

select k.program, k.component, k.region_code, k.urban_rural, k.category, k.last_to,
       list(r.region_code order by r.region_code) filter (where r.region_code is not null) as counties
from keys k
left join stg_regions r on starts_with(r.region_code, k.region_code)
group by all
order by all
