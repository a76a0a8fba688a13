-- int_deaths: accepted rows whose person is in the month's death-registry extract.
-- A person is not paid for service months after the month of death (contract section 3).
-- grain: one row per affected roster row.
with registry as (
    select norm_code(id_number) as id_number, norm_text(name) as registry_name,
           norm_month(death_date) as death_month, norm_text(source) as registry_source
    from raw_deaths
    where norm_code(id_number) is not null and norm_month(death_date) is not null
    qualify row_number() over (partition by norm_code(id_number) order by norm_month(death_date)) = 1
)

select
    p.source_file,
    p.source_row,
    p.id_number,
    p.program,
    p.household_id,
    p.relation,
    g.death_month,
    g.registry_name,
    g.registry_source
from int_person_programs p
join registry g using (id_number)
where g.death_month < getvariable('payroll_month')
