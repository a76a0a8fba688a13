-- int_death_register: what the death registry says of each person, from every extract known to this
-- payroll (contract section 1: extracts are deltas; what was reported once stays known until it is
-- withdrawn). A death dated after the month it was reported in cannot be true: it is not applied
-- (`death_date_valid` false; integrity reports it as death_date_invalid). Read by int_deaths (the
-- roster rows it touches) and written for the engine as deaths_known.parquet (the valid deaths,
-- also of people on no roster now: what was paid after them becomes a receivable).
-- grain: one row per person the registry names: the earliest valid death, or where none is valid,
-- the latest report.
-- kind: table
with reported as (
    select norm_code(id_number) as id_number, norm_text(name) as registry_name,
           death_month_of(death_date) as death_month, norm_text(source) as registry_source, reported_month,
           death_date
    from raw_deaths
    where norm_code(id_number) is not null
)

select *, death_month is not null and death_month <= reported_month as death_date_valid
from reported
qualify row_number() over (partition by id_number
                           order by death_date_valid desc, death_month, reported_month desc,
                                    -- ties (two sources, one month): the same row on every rerun
                                    death_date, registry_source, registry_name) = 1
