-- int_dibao_household: the dibao formula, per household and service month (contract section 3).
--   base   = standard × covered members − household income, never below floor × covered members
--   add-on = for each covered member, the single largest class add-on that applies (no stacking)
--   amount = base + add-ons;  a household whose gap (standard × members − income) is zero or
--            negative is not eligible: no line, a finding (whatever the floor).
-- Covered members: the household's rows less members excluded by exclusions.csv (pay_a_only).
-- grain: one row per household and service month.
-- kind: table
with rows as (
    select * from int_basis_roster where line_program = 'dibao'
),

head as (
    select * from rows where relation = '户主'
),

member_addons as (
    -- each covered member's largest add-on among their classes
    select
        m.unit_key, m.service_month, m.id_number,
        max(a.amount)                                            as addon_amount,
        -- ties (重残 and 重病 are both 60) broken by the class name, so reruns give the same line
        first(a.category order by a.amount desc, a.category)     as addon_class,
        first(a.version_id order by a.amount desc, a.category)   as addon_version
    from rows m
    join head h on h.unit_key = m.unit_key and h.service_month = m.service_month and h.basis_month = m.basis_month
    cross join lateral (select unnest(m.class_categories) as category) c
    join int_standard_resolved a
      on a.program = 'dibao' and a.component = 'class_addon' and a.region_code = h.region_code
     and a.urban_rural = h.urban_rural and a.category = c.category and a.service_month = m.service_month
    where not m.excluded_member
    group by all
),

households as (
    select
        h.unit_key,
        h.service_month,
        h.line_type,
        h.arrears_cause,
        h.basis,
        h.basis_month,
        h.id_number,
        h.household_id,
        h.region_code,
        h.urban_rural,
        h.source_file,
        h.source_row,
        h.approved_amount,
        h.household_size - (select count(*) from rows x
                            where x.unit_key = h.unit_key and x.service_month = h.service_month
                              and x.basis_month = h.basis_month and x.excluded_member)  as covered_members,
        h.household_income
    from head h
)

select
    hh.*,
    'dibao'                                                           as line_program,
    st.amount                                                         as standard,
    fl.amount                                                         as floor,
    CAST(st.amount * hh.covered_members - hh.household_income AS DECIMAL(18, 2)) as gap,
    CAST(coalesce(fl.amount, 0) * hh.covered_members AS DECIMAL(18, 2))          as floor_total,
    CAST(coalesce((select sum(addon_amount) from member_addons a
                   where a.unit_key = hh.unit_key and a.service_month = hh.service_month), 0)
         AS DECIMAL(18, 2))                                            as addons,
    (select list(a.addon_class order by a.id_number) from member_addons a
     where a.unit_key = hh.unit_key and a.service_month = hh.service_month) as addon_classes,
    list_filter([st.version_id, fl.version_id] || coalesce((select list_sort(list(distinct a.addon_version)) from member_addons a
                  where a.unit_key = hh.unit_key and a.service_month = hh.service_month), []),
                lambda v: v is not null)                               as rule_versions,
    st.amount is not null                                              as has_standard
from households hh
left join int_standard_resolved st
  on st.program = 'dibao' and st.component = 'standard' and st.region_code = hh.region_code
 and st.urban_rural = hh.urban_rural and st.category = '*' and st.service_month = hh.service_month
left join int_standard_resolved fl
  on fl.program = 'dibao' and fl.component = 'floor' and fl.region_code = hh.region_code
 and fl.urban_rural = hh.urban_rural and fl.category = '*' and fl.service_month = hh.service_month
