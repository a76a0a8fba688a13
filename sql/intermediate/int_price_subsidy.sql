-- int_price_subsidy: the price-linked temporary subsidy of this payroll month (contract section 3,
-- price_linkage.csv and cpi.csv). The rule version in force for payroll month M (latest
-- effective_from) reads the index of month M − index_lag (the provincial series where it exists,
-- else the national `00`). It triggers when cpi_yoy ≥ cpi_threshold or food_yoy ≥ food_threshold;
-- each covered person then gets the dibao standard of their county and urban/rural in force this
-- payroll month × rate / 100 × multiplier, rounded to the fen or the yuan (half up), at least the
-- minimum; once per person however many programs cover them (the first program of the rule's
-- list that covers them carries the line); every covered member of an eligible dibao household
-- counts, paid to the household.
-- A price subsidy held in an earlier payroll (owed, withheld for review) is paid once the person's
-- unit is on this month's roster again: the amount the ledger recorded, for its own service month.
-- grain: one row per covered person (and per released earlier month).
-- kind: table
with rule as (
    select * from stg_price_linkage
    where effective_from <= getvariable('payroll_month') and effective_to >= getvariable('payroll_month')
    qualify row_number() over (order by effective_from desc) = 1
),

idx as (
    select r.*, c.month as index_month, c.area as index_area, c.cpi_yoy, c.food_yoy
    from rule r
    join stg_cpi c on c.month = add_months(getvariable('payroll_month'), -r.index_lag)
    where c.area in (getvariable('province_code'), '00')
    qualify row_number() over (order by c.area = getvariable('province_code') desc) = 1
),

triggered as (
    select
        *,
        cpi_threshold is not null and cpi_yoy >= cpi_threshold    as cpi_triggers,
        food_threshold is not null and food_yoy >= food_threshold as food_triggers
    from idx
),

rate as (
    select
        *,
        case basis
            when 'cpi' then cpi_yoy
            when 'food' then food_yoy
            when 'triggered' then greatest(case when cpi_triggers then cpi_yoy end,
                                           case when food_triggers then food_yoy end)
        end as rate
    from triggered
    where cpi_triggers or food_triggers
),

eligible_households as (
    -- a dibao household whose gap is zero or negative gets no dibao line and is not a dibao
    -- household (contract section 3): its members are not covered as dibao members
    select unit_key from int_dibao_household
    where service_month = getvariable('payroll_month') and basis = 'current' and gap > 0
),

covered as (
    select
        u.*,
        list_position(r.programs, u.program) as program_rank
    from int_units u, rate r
    where list_contains(r.programs, u.program)
      and (u.program <> 'dibao' or u.unit_key in (select unit_key from eligible_households))
      and not u.excluded_member
      and not u.no_price_subsidy
      and u.enrolled_from <= getvariable('payroll_month')
      and coalesce(u.enrolled_to, '9999-12') >= getvariable('payroll_month')
      and coalesce(u.age_out_month, '9999-12') >= getvariable('payroll_month')
),

one_per_person as (
    select * from covered
    qualify row_number() over (partition by id_number order by program_rank, source_file, source_row) = 1
),

amounts as (
    select
        p.*,
        r.version_id  as rule_version,
        r.index_month, r.index_area, r.cpi_yoy, r.food_yoy, r.cpi_threshold, r.food_threshold,
        r.basis, r.rate, r.multiplier, r.minimum, r.rounding,
        s.amount      as dibao_standard,
        s.version_id  as standard_version,
        s.amount * r.rate * r.multiplier * 0.01 as exact_amount
    from one_per_person p
    cross join rate r
    left join int_standard_resolved s
      on s.program = 'dibao' and s.component = 'standard' and s.region_code = p.region_code
     and s.urban_rural = p.urban_rural and s.category = '*' and s.service_month = getvariable('payroll_month')
),

current_lines as (
select
    unit_key,
    line_program,
    getvariable('payroll_month')                                   as service_month,
    'price_subsidy'                                                as line_type,
    'price_subsidy'                                                as arrears_cause,
    'current'                                                      as basis,
    basis_month,
    id_number,
    household_id,
    region_code,
    urban_rural,
    source_file,
    source_row,
    CAST(NULL AS DECIMAL(18, 2))                                   as approved_amount,
    dibao_standard is not null                                     as has_standard,
    rate > 0                                                       as eligible,
    CAST(greatest(case rounding when 'yuan' then round(exact_amount, 0) else round(exact_amount, 2) end,
                  minimum) AS DECIMAL(18, 2))                       as due,
    [standard_version, rule_version]                               as rule_versions,
    to_json({'index_month': index_month, 'index_area': index_area, 'cpi_yoy': cpi_yoy, 'food_yoy': food_yoy,
             'cpi_threshold': cpi_threshold, 'food_threshold': food_threshold, 'basis': basis, 'rate': rate,
             'multiplier': multiplier, 'dibao_standard': dibao_standard, 'rounding': rounding,
             'minimum': minimum})::VARCHAR                         as inputs,
    format('低保标准 {} × {}% × {} = {}（{} 指数，{} 舍入，最低 {}）', dibao_standard::VARCHAR, rate::VARCHAR,
           multiplier::VARCHAR,
           CAST(greatest(case rounding when 'yuan' then round(exact_amount, 0) else round(exact_amount, 2) end,
                         minimum) AS DECIMAL(18, 2))::VARCHAR, index_month, rounding, minimum::VARCHAR) as formula
from amounts
),

released as (
    -- held before, never paid since, and the person is on this month's roster; the first holding
    -- payroll's line (a line held for several months is recorded once per payroll month)
    select h.unit_key, h.program as line_program, h.service_month, h.id_number,
           first(h.amount order by h.payroll_month, h.line_id) as amount,
           first(h.rule_versions order by h.payroll_month, h.line_id) as rule_versions,
           first(h.inputs order by h.payroll_month, h.line_id) as inputs,
           first(h.formula order by h.payroll_month, h.line_id) as formula
    from hist_ledger h
    where h.line_type = 'price_subsidy' and h.status = 'held'
      and not exists (select 1 from hist_ledger p where p.line_type = 'price_subsidy' and p.status = 'payable'
                      and p.id_number = h.id_number and p.service_month = h.service_month)
    group by all
)

select * from current_lines
union all
select
    r.unit_key, r.line_program, r.service_month, 'price_subsidy', 'held_released', 'history', u.basis_month,
    r.id_number, u.household_id, u.region_code, u.urban_rural, u.source_file, u.source_row,
    CAST(NULL AS DECIMAL(18, 2)), true, true, r.amount, r.rule_versions, r.inputs, r.formula
from released r
join int_units u on u.unit_key = r.unit_key and u.line_program = r.line_program and u.id_number = r.id_number
     -- a person reported dead is owed what was held up to the month of death, nothing after it
     and (u.death_month is null or r.service_month <= u.death_month)
qualify row_number() over (partition by r.id_number, r.service_month order by u.source_file, u.source_row) = 1
