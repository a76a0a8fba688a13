-- dim_household: each dibao household, with its head and size as last delivered, and the months it
-- was on the roster. grain: one row per household
-- kind: table
select
    household_id,
    arg_max(region_code, payroll_month)                                     as region_code,
    arg_max(urban_rural, payroll_month)                                     as urban_rural,
    arg_max(id_number, payroll_month) filter (where relation = '户主')       as head_id_number,
    arg_max(household_size, payroll_month)                                  as household_size,
    min(payroll_month)                                                      as first_month,
    max(payroll_month)                                                      as last_month,
    count(distinct payroll_month)                                           as months_on_roster
from roster_row
where program = 'dibao' and disposition = 'accepted' and household_id is not null
group by household_id
