-- dim_person: each person doudi has accepted on a roster, with history (slowly changing, type 2):
-- a new version whenever the name, county, urban/rural status, payee account or account holder
-- changes from one payroll month to the next. valid_to is the month before the next version (NULL
-- for the current one). A person on several rosters in a month is described by one row (dibao,
-- then tekun, orphan, disability). grain: one row per person and version
-- kind: table
with monthly as (
    select payroll_month, id_number, name, sex, birth_date, region_code, urban_rural, bank_account,
           account_holder, program
    from roster_row
    where disposition = 'accepted' and id_number is not null
    qualify row_number() over (partition by payroll_month, id_number
                               order by list_position(['dibao', 'tekun', 'orphan', 'disability'], program),
                                        source_file, source_row) = 1
),

changes as (
    select *,
           md5(concat_ws('|', name, region_code, urban_rural, coalesce(bank_account, ''),
                         coalesce(account_holder, ''))) as state
    from monthly
),

marked as (
    select *,
           case when state is distinct from lag(state) over (partition by id_number order by payroll_month)
                then 1 else 0 end as starts_version
    from changes
),

numbered as (
    select *, sum(starts_version) over (partition by id_number order by payroll_month) as version
    from marked
),

versions as (
    select id_number, version,
           min(payroll_month) as valid_from,
           max(payroll_month) as last_seen,
           -- as the version's last month had them (sex and birth date are not part of the state)
           arg_max(name, payroll_month) as name, arg_max(sex, payroll_month) as sex,
           arg_max(birth_date, payroll_month) as birth_date, arg_max(region_code, payroll_month) as region_code,
           arg_max(urban_rural, payroll_month) as urban_rural, arg_max(bank_account, payroll_month) as bank_account,
           arg_max(account_holder, payroll_month) as account_holder
    from numbered
    group by id_number, version
)

select
    id_number || '#' || version                                   as person_version_id,
    id_number,
    version,
    valid_from,
    month_text(month_date(lead(valid_from) over (partition by id_number order by version)) - interval 1 month)
                                                                   as valid_to,
    lead(valid_from) over (partition by id_number order by version) is null as is_current,
    last_seen,
    name, sex, birth_date, region_code, urban_rural, bank_account, account_holder
from versions
