-- int_reference_held_due: 不断 for a county whose reference data is broken (issue 20). check_reference
-- holds such a county (reference_held) and pays the rest of the province; the engine computes
-- nothing there from the broken tables. Instead each unit on this month's roster there, entitled this
-- month (int_service_months) and with no death on record, is paid provisionally what its last payroll month paid it as regular and price-subsidy
-- lines (held lines included: this month's holds decide again), for at most carry_forward_max_months
-- months back and for the programs of carry_forward_programs, as a roster paid forward is. The line
-- names that month (provisional_from); once the tables are fixed, the month's supplementary run pays
-- what is missing and reports, never recovers, what was overpaid. A unit with nothing to pay forward
-- gets a finding (int_compute_findings: county_reference_held_unpaid).
-- grain: one row per unit, line program, line type and person (price subsidy: per covered person).
-- kind: table
with deaths as (
    -- a unit with a death on record: its amount changes (a member's share, a price subsidy that stops),
    -- so nothing is paid forward; it is computed once the tables are fixed (never pay the dead)
    select distinct unit_key, line_program from int_units where death_month is not null
),

roster_units as (
    -- on this month's roster in a held county, entitled this month (int_service_months: the
    -- roster's window, the age-out), with no death on record
    select u.unit_key, u.line_program, u.id_number, u.household_id, u.region_code, u.urban_rural, u.source_file,
           u.source_row, u.basis_month
    from int_units u
    where reference_held(u.region_code) and u.program <> 'temporary'
      and (u.program <> 'dibao' or u.relation = '户主')
      and exists (select 1 from int_service_months s
                  where s.unit_key = u.unit_key and s.line_program = u.line_program
                    and s.service_month = getvariable('payroll_month'))
      and not exists (select 1 from deaths d where d.unit_key = u.unit_key and d.line_program = u.line_program)
),

last_paid as (
    -- the unit's lines of its last payroll month that paid it on its own data (a line itself paid
    -- forward is not a source: months paid forward in a row stop at carry_forward_max_months),
    -- for that month's own service month
    select h.*
    from hist_ledger h
    where h.line_type in ('regular', 'price_subsidy') and h.service_month = h.payroll_month
      and h.status in ('payable', 'held') and h.provisional_from is null
      and list_contains(string_split(getvariable('carry_forward_programs'), ';'), h.program)
      and h.payroll_month >= add_months(getvariable('payroll_month'),
                                        -CAST(getvariable('carry_forward_max_months') AS INTEGER))
      and h.payroll_month < getvariable('payroll_month')
    qualify rank() over (partition by h.unit_key, h.program order by h.payroll_month desc) = 1
)

select
    u.unit_key,
    u.line_program,
    getvariable('payroll_month')                                   as service_month,
    p.line_type,
    case when p.line_type = 'price_subsidy' then 'price_subsidy' end as arrears_cause,
    'reference_held'                                               as basis,
    u.basis_month,
    p.id_number,
    u.household_id,
    u.region_code,
    u.urban_rural,
    u.source_file,
    u.source_row,
    CAST(NULL AS DECIMAL(18, 2))                                   as approved_amount,
    true                                                           as has_standard,
    true                                                           as eligible,
    p.amount                                                       as due,
    p.rule_versions,
    -- the inputs of the line paid forward (household size, ...: reports read them), and where from
    json_merge_patch(coalesce(p.inputs, '{}'),
                     to_json({'provisional_from': p.payroll_month, 'paid_forward_line': p.line_id,
                              'reason': 'county reference data held'}))::VARCHAR as inputs,
    format('按 {} 已核定的 {} 元临时发放：本县参考数据有误待更正，更正后以补充批次多退少补', p.payroll_month,
           p.amount::VARCHAR)                                      as formula,
    p.payroll_month                                                as provisional_from
from roster_units u
join last_paid p on p.unit_key = u.unit_key and p.program = u.line_program
