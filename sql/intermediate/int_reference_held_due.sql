-- int_reference_held_due: 不断 for a county whose reference data is broken (issue 20). check_reference
-- holds such a county (reference_held) and pays the rest of the province; the engine computes
-- nothing there from the broken tables. Instead each unit on this month's roster there, entitled this
-- month, is paid provisionally what its last payroll month paid it as regular and price-subsidy
-- lines (held lines included: this month's holds decide again), for at most carry_forward_max_months
-- months back and for the programs of carry_forward_programs, as a roster paid forward is. The line
-- names that month (provisional_from); once the tables are fixed, the month's supplementary run pays
-- what is missing and reports, never recovers, what was overpaid. A unit with nothing to pay forward
-- gets a finding (int_compute_findings: county_reference_held_unpaid).
-- grain: one row per unit, line program, line type and person (price subsidy: per covered person).
with roster_units as (
    -- on this month's roster in a held county, and entitled this month
    select unit_key, line_program, id_number, household_id, region_code, urban_rural, source_file, source_row,
           basis_month
    from int_units
    where reference_held(region_code) and program <> 'temporary'
      and (program <> 'dibao' or relation = '户主')
      and enrolled_from <= getvariable('payroll_month')
      and coalesce(enrolled_to, '9999-12') >= getvariable('payroll_month')
      and coalesce(age_out_month, '9999-12') >= getvariable('payroll_month')
),

last_paid as (
    -- the unit's lines of its last payroll month, for that month's own service month
    select h.*
    from hist_ledger h
    where h.line_type in ('regular', 'price_subsidy') and h.service_month = h.payroll_month
      and h.status in ('payable', 'held')
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
