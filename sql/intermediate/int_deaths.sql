-- int_deaths: accepted rows whose person the death registry has reported (int_death_register: this
-- month's extract or any earlier one, less withdrawn entries). A person is not paid for service
-- months after the month of death (contract section 3); a death whose date is not valid is carried
-- (death_date_valid false) only so that integrity reports it.
-- grain: one row per affected roster row.
-- kind: table
select
    p.source_file,
    p.source_row,
    p.id_number,
    p.program,
    p.household_id,
    p.relation,
    case when g.death_date_valid then g.death_month end as death_month,
    g.death_date_valid,
    g.death_date                                         as reported_death_date,
    g.reported_month,
    g.registry_name,
    g.registry_source
from int_person_programs p
join int_death_register g using (id_number)
where not g.death_date_valid or g.death_month < getvariable('payroll_month')
