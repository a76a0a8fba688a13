-- int_deaths: accepted rows whose person the death registry has reported, in this month's extract
-- or any earlier one (contract section 1: extracts are deltas, and what was reported once stays
-- known until it is withdrawn). A person is not paid for service months after the month of death
-- (contract section 3). A death dated after the month it was reported in cannot be true: it is
-- not applied (`death_date_valid` false) and integrity reports it (finding death_date_invalid).
-- grain: one row per affected roster row.
with reported as (
    select norm_code(id_number) as id_number, norm_text(name) as registry_name,
           norm_month(death_date) as death_month, norm_text(source) as registry_source, reported_month,
           death_date
    from raw_deaths
    where norm_code(id_number) is not null
),

registry as (
    -- the earliest valid death of each person; where none is valid, the latest report, to show it
    select *, death_month is not null and death_month <= reported_month as death_date_valid
    from reported
    qualify row_number() over (partition by id_number
                               order by death_date_valid desc, death_month, reported_month desc) = 1
)

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
join registry g using (id_number)
where not g.death_date_valid or g.death_month < getvariable('payroll_month')
