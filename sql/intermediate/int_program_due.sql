-- int_program_due: what each unit is due for each service month under each program, with the
-- inputs and the formula written out so every ledger line explains itself.
-- grain: one row per unit, line program and service month.
-- kind: table
with dibao as (
    select
        unit_key, line_program, service_month, line_type, arrears_cause, basis, basis_month,
        id_number, household_id, region_code, urban_rural, source_file, source_row, approved_amount,
        has_standard,
        gap > 0 as eligible,
        CAST(case when gap > 0 then greatest(gap, floor_total) + addons end AS DECIMAL(18, 2)) as due,
        rule_versions,
        to_json({'household_size': covered_members, 'household_income': household_income,
                 'standard': standard, 'floor': floor, 'gap': gap, 'addon_classes': addon_classes,
                 'addons': addons})::VARCHAR as inputs,
        format('max({}×{}−{}, {}×{}) + 附加{} = {}', standard::VARCHAR, covered_members, household_income::VARCHAR,
               coalesce(floor, 0)::VARCHAR, covered_members, addons::VARCHAR,
               coalesce((greatest(gap, floor_total) + addons)::VARCHAR, '不符合条件')) as formula
    from int_dibao_household
),

tekun as (
    select
        unit_key, line_program, service_month, line_type, arrears_cause, basis, basis_month,
        id_number, household_id, region_code, urban_rural, source_file, source_row, approved_amount,
        has_standard, true as eligible, due, rule_versions,
        to_json({'placement': placement, 'care_level': care_level, 'basic': basic, 'care': care})::VARCHAR,
        format('基本生活 {} + 照料护理({}) {} = {}', basic::VARCHAR, care_level, care::VARCHAR, due::VARCHAR)
    from int_tekun_person
),

orphan as (
    select
        unit_key, line_program, service_month, line_type, arrears_cause, basis, basis_month,
        id_number, household_id, region_code, urban_rural, source_file, source_row, approved_amount,
        has_standard, true, due, rule_versions,
        to_json({'placement': placement, 'age_out_month': age_out_month})::VARCHAR,
        format('{} 标准 {}', placement, due::VARCHAR)
    from int_orphan_person
),

disability as (
    select
        unit_key, line_program, service_month, line_type, arrears_cause, basis, basis_month,
        id_number, household_id, region_code, urban_rural, source_file, source_row, approved_amount,
        has_standard, true, due, rule_versions,
        to_json({'disability_category': disability_category, 'disability_grade': disability_grade})::VARCHAR,
        format('{}（{}级）标准 {}', case line_program when 'disability_living' then '生活补贴' else '护理补贴' end,
               disability_grade, due::VARCHAR)
    from int_disability_person
)

select * from dibao
union all select * from tekun
union all select * from orphan
union all select * from disability
