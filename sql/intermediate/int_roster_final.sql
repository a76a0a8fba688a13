-- int_roster_final: every delivered row with its final disposition and what integrity decided
-- for payment. grain: one row per delivered row (row conservation).
--   not_paid_reason   the row's program lines are not paid at all (a finding type)
--   hold_reason       lines are computed and owed but held for review (status `held`), unless a
--                     clearance recorded with `doudi clear` covers this payroll (then
--                     cleared_hold_reason and clearance_id say so, and earlier held months are
--                     released by the engine)
--   excluded_member   a dibao member not counted in the household (holds an excluding program)
--   no_price_subsidy  the person gets no price subsidy (a deceased household member)
with living_not_in_dibao as (
    select p.source_file, p.source_row
    from int_person_programs p
    where p.program = 'disability' and p.subsidy_type = '生活补贴'
      and p.id_number not in (select id_number from int_person_programs where program = 'dibao')
),

head_deaths as (
    select distinct household_id from int_deaths where program = 'dibao' and relation = '户主'
),

payee_named as (
    -- who the contract says must hold the account: beneficiary, dibao head, guardian, institution
    select source_file, source_row,
        case
            when program = 'orphan' and placement = '机构养育' then null  -- the institution's account
            when program = 'orphan' then guardian_name
            when institution_code is not null then null   -- institution accounts: name not checked here
            else name
        end as expected_holder
    from int_roster_all
    where disposition = 'accepted' and bank_account is not null
),

decided as (
select
    r.* exclude (disposition, duplicate_of_file, duplicate_of_row, duplicate_rule),
    coalesce(case when d.source_row is not null then 'duplicate' end, r.disposition) as disposition,
    coalesce(d.survivor_file, r.duplicate_of_file)      as duplicate_of_file,
    coalesce(d.survivor_row, r.duplicate_of_row)        as duplicate_of_row,
    coalesce(d.duplicate_rule, r.duplicate_rule)        as duplicate_rule,
    case
        when r.disposition <> 'accepted' or d.source_row is not null then null
        when x.action = 'pay_a_only' and r.program <> 'dibao' then 'exclusive_programs'
        when l.source_row is not null then 'living_subsidy_not_in_dibao'
        when dead.source_row is not null and r.program <> 'dibao' then 'deceased_listed'
    end                                                 as not_paid_reason,
    case
        when r.disposition <> 'accepted' or d.source_row is not null then null
        when r.program = 'dibao' and hd.household_id is not null then 'household_head_deceased'
        when pn.expected_holder is not null and r.account_holder is distinct from pn.expected_holder
            then 'account_holder_mismatch'
    end                                                 as hold_reason,
    coalesce(x.action = 'pay_a_only' and r.program = 'dibao', false) as excluded_member,
    coalesce(dead.source_row is not null, false)        as no_price_subsidy,
    dead.death_month
from int_roster_all r
left join int_cross_county_duplicates d using (source_file, source_row)
left join int_exclusions x on x.source_file = r.source_file and x.source_row = r.source_row
left join living_not_in_dibao l on l.source_file = r.source_file and l.source_row = r.source_row
left join int_deaths dead on dead.source_file = r.source_file and dead.source_row = r.source_row
left join head_deaths hd on hd.household_id = r.household_id and r.program = 'dibao'
left join payee_named pn on pn.source_file = r.source_file and pn.source_row = r.source_row
),

clearance_units as (
    -- a dibao household's clearance may name any of its members (usually the head, on whom its
    -- ledger lines stand)
    select c.*, h.household_id
    from hold_clearances c
    left join (select distinct id_number, household_id from int_roster_all where program = 'dibao') h
      on c.program = 'dibao' and h.id_number = c.id_number
),

cleared as (
    select d.source_file, d.source_row, cu.clearance_id, cu.cleared_by, cu.cleared_at, cu.note
    from decided d
    join clearance_units cu
      on cu.program = d.program and cu.hold_reason = d.hold_reason
     and (cu.id_number = d.id_number or cu.household_id = d.household_id)
    qualify row_number() over (partition by d.source_file, d.source_row
                               order by cu.cleared_at desc, cu.clearance_id) = 1
)

select
    d.* exclude (hold_reason),
    case when c.clearance_id is null then d.hold_reason end  as hold_reason,
    case when c.clearance_id is not null then d.hold_reason end as cleared_hold_reason,
    c.clearance_id,
    c.cleared_by,
    c.cleared_at,
    c.note as clearance_note
from decided d
left join cleared c using (source_file, source_row)
