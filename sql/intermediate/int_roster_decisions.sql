-- int_roster_decisions: what the integrity rules decided for the rows they touched, keyed by
-- (source_file, source_row). grain: one row per delivered row that a rule touched (a duplicate
-- across counties, a row not paid, held, cleared, an excluded member, a death); int_roster_final
-- puts them on every row. Kept narrow and small so that the wide roster is read once, when written.
--   not_paid_reason   the row's program lines are not paid at all (a finding type)
--   hold_reason       lines are computed and owed but held for review (status `held`), unless a
--                     clearance recorded with `doudi clear` covers this payroll (then
--                     cleared_hold_reason and clearance_id say so, and earlier held months are
--                     released by the engine)
--   excluded_member   a dibao member not counted in the household (holds an excluding program)
--   no_price_subsidy  the person gets no price subsidy (a deceased household member)
-- kind: table
with living_not_in_dibao as (
    select p.source_file, p.source_row
    from int_person_programs p
    where p.program = 'disability' and p.subsidy_type = '生活补贴'
      and p.id_number not in (select id_number from int_person_programs where program = 'dibao')
),

dead_guardians as (
    -- an orphan's money goes to the guardian's account: a guardian the death registry reports dead
    -- cannot receive it (held until the county names a new guardian, or a caseworker clears it)
    select id_number from int_death_register
    where death_date_valid and death_month < getvariable('payroll_month')
),

household_in_two_counties as (
    -- one household number delivered by two counties in one month (numbers are the county's own:
    -- a clash, or a household moved without being taken off its old county's roster). Each row is
    -- not paid until the counties settle it: merged, the two would be paid as one household.
    select household_id
    from int_roster_all
    where program = 'dibao' and disposition = 'accepted' and household_id is not null
    group by household_id
    having count(distinct region_code) > 1
),

account_conflicts as (
    -- the same person twice in one file with two different accounts: the first row survives (its
    -- twin is a duplicate), but which account is theirs only the county can say: held until a
    -- corrected file brings one account, or a caseworker who checked it clears the hold
    select s.source_file, s.source_row
    from int_roster_all d
    join int_roster_all s on s.source_file = d.source_file and s.source_row = d.duplicate_of_row
    where d.duplicate_rule = 'same_person_same_file'
      and d.bank_account is not null and s.bank_account is not null and d.bank_account <> s.bank_account
    group by all
),

head_deaths as (
    select distinct household_id from int_deaths where program = 'dibao' and relation = '户主' and death_date_valid
),

clearance_units as (
    -- a dibao household's clearance may name any of its members (usually the head, on whom its
    -- ledger lines stand)
    select distinct c.*, h.household_id
    from hold_clearances c
    left join int_roster_all h
      on c.program = 'dibao' and h.program = 'dibao' and h.id_number = c.id_number
),

latest_by_person as (
    select * exclude (household_id) from clearance_units
    qualify row_number() over (partition by program, hold_reason, id_number
                               order by cleared_at desc, clearance_id) = 1
),

latest_by_household as (
    select * from clearance_units where household_id is not null
    qualify row_number() over (partition by program, hold_reason, household_id
                               order by cleared_at desc, clearance_id) = 1
),

decided as (
select
    r.source_file,
    r.source_row,
    r.program,
    r.id_number,
    r.household_id,
    d.source_row is not null                            as duplicate_across_counties,
    d.survivor_file,
    d.survivor_row,
    d.duplicate_rule,
    case
        when r.disposition <> 'accepted' or d.source_row is not null then null
        -- a temporary case's own rules (int_temporary_cases): the death compared with the event
        when r.program = 'temporary' then t.not_paid_reason
        when hc.household_id is not null then 'household_in_two_counties'
        when x.action = 'pay_a_only' and r.program <> 'dibao' then 'exclusive_programs'
        when l.source_row is not null then 'living_subsidy_not_in_dibao'
        when dead.source_row is not null and r.program <> 'dibao' then 'deceased_listed'
    end                                                 as not_paid_reason,
    -- who the contract says must hold the account: beneficiary, dibao head, guardian; institution
    -- accounts (an institution's orphans and residents) are not checked by name here
    case
        when r.program = 'orphan' and r.placement = '机构养育' then null
        when r.program = 'orphan' then r.guardian_name
        when r.institution_code is not null then null
        else r.name
    end                                                 as expected_holder,
    case
        when r.disposition <> 'accepted' or d.source_row is not null then null
        when r.program = 'dibao' and hd.household_id is not null then 'household_head_deceased'
        when r.program = 'orphan' and gd.id_number is not null then 'guardian_deceased'
        when r.program = 'temporary' and t.hold_reason is not null then t.hold_reason
        when ac.source_row is not null then 'account_conflict_in_file'
        when r.bank_account is not null and expected_holder is not null
             and r.account_holder is distinct from expected_holder
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
     and dead.death_date_valid
left join account_conflicts ac on ac.source_file = r.source_file and ac.source_row = r.source_row
left join head_deaths hd on hd.household_id = r.household_id and r.program = 'dibao'
left join household_in_two_counties hc on hc.household_id = r.household_id and r.program = 'dibao'
left join dead_guardians gd on gd.id_number = r.guardian_id_number and r.program = 'orphan'
left join int_temporary_cases t on t.source_file = r.source_file and t.source_row = r.source_row
     and r.program = 'temporary'
),

cleared as (
    -- the latest clearance that names this row's hold, by the person or by their dibao household
    select d.* exclude (expected_holder),
        hh.clearance_id is not null
            and (cp.clearance_id is null or hh.cleared_at > cp.cleared_at
                 or (hh.cleared_at = cp.cleared_at and hh.clearance_id < cp.clearance_id))
                                                        as by_household,
        case when by_household then hh.clearance_id else cp.clearance_id end as clearance_id,
        case when by_household then hh.cleared_by else cp.cleared_by end     as cleared_by,
        case when by_household then hh.cleared_at else cp.cleared_at end     as cleared_at,
        case when by_household then hh.note else cp.note end                 as clearance_note
    from decided d
    left join latest_by_person cp
      on cp.program = d.program and cp.hold_reason = d.hold_reason and cp.id_number = d.id_number
    left join latest_by_household hh
      on hh.program = d.program and hh.hold_reason = d.hold_reason and hh.household_id = d.household_id
)

select
    source_file,
    source_row,
    duplicate_across_counties,
    survivor_file,
    survivor_row,
    duplicate_rule,
    not_paid_reason,
    excluded_member,
    no_price_subsidy,
    death_month,
    case when clearance_id is null then hold_reason end      as hold_reason,
    case when clearance_id is not null then hold_reason end  as cleared_hold_reason,
    clearance_id,
    cleared_by,
    cleared_at,
    clearance_note
from cleared
where duplicate_across_counties or not_paid_reason is not null or hold_reason is not null
   or excluded_member or no_price_subsidy  -- no_price_subsidy: a death record, so death_month too
