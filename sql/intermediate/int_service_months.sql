-- int_service_months: for each unit, the service months this payroll settles, and which roster
-- the amount is computed from (contract section 3; issue: arrears from the ledger's own history).
--   S = P                  regular line, from this month's roster
--   S < P, paid before     recomputed from the roster of payroll month S, only where a standards
--                          version first paid after S now applies to S (a raise with back pay)
--   S < P, held before     released: recomputed from the roster of payroll month S (as held)
--   S < P, never decided   (absent or quarantined then: late enrolment, corrected data; or not paid
--                          because of a death since withdrawn) paid now
--   S < P, accepted then and deliberately not paid: nothing
--   a unit on no roster now (gone): back pay of a raise for every month it was paid, and the months
--   withheld for a death since withdrawn (from that month's roster, to its last account)
-- grain: one row per unit, line program and service month.
-- kind: table
with units as (
    -- one row per unit: the entitlement window (for a household, its head's row)
    select
        unit_key,
        line_program,
        min(enrolled_from)                            as enrolled_from,
        max(coalesce(enrolled_to, '9999-12'))         as enrolled_to,
        min(coalesce(age_out_month, '9999-12'))       as age_out_month,
        -- a dibao household outlives its head: it is held for review (household_head_deceased) and
        -- its lines are computed and recorded as held every month until cleared or closed
        coalesce(min(death_month) filter (where program <> 'dibao'), '9999-12') as last_alive_month,
        -- a month paid after the head's death is a receivable (int_receivables): no raise tops it up
        coalesce(min(death_month) filter (where program = 'dibao' and relation = '户主'), '9999-12')
                                                      as head_alive_month
    from int_units
    -- a temporary-assistance case is one-off: no service months (int_temporary_due pays it)
    where program <> 'temporary'
    group by unit_key, line_program
),

bounds as (
    -- the first month doudi ran (run_log): no arrears before it
    select getvariable('history_start') as history_start
),

months as (
    select u.*, month_text(m.d) as service_month
    from units u, bounds b,
         lateral (select unnest(generate_series(month_date(greatest(b.history_start, u.enrolled_from)),
                                                month_date(getvariable('payroll_month')),
                                                interval 1 month)) as d) m
),

entitled as (
    select * from months
    where service_month >= enrolled_from
      and service_month <= enrolled_to
      and service_month <= age_out_month
      and service_month <= last_alive_month
),


decided as (
    -- units accepted on the roster of an earlier payroll month (a decision was taken for that month)
    select distinct unit_key, line_program, basis_month as service_month
    from hist_decided
),

retroactive as (
    -- service months to which a standards version applies that was first paid after them
    select distinct s.service_month
    from (select service_month from entitled union select service_month from int_paid_history) s
    join stg_standards v
      on v.first_payroll > s.service_month
     and v.first_payroll <= getvariable('payroll_month')
     and v.effective_from <= s.service_month
     and v.effective_to >= s.service_month
),

gone as (
    -- units paid for a month a raise now reaches, and on no roster this month (left, died, aged out,
    -- or not paid now): back pay is due for every month they were paid (contract section 3: "for the
    -- months each person was paid"), from the roster of that month, to their last account; a month
    -- after a death now known is not owed (int_receivables recovers what was paid for it)
    select p.unit_key, p.line_program, p.service_month, 'raise_back_pay' as arrears_cause,
           case when exists (select 1 from decided d where d.unit_key = p.unit_key
                             and d.line_program = p.line_program and d.service_month = p.service_month)
                then p.service_month else p.first_paid_payroll end as history_month
    from int_paid_history p
    where p.was_paid
      and p.service_month in (select service_month from retroactive)
      and not exists (select 1 from units u where u.unit_key = p.unit_key and u.line_program = p.line_program)
      and not exists (select 1 from known_deaths k
                      where p.line_program <> 'dibao' and k.id_number = p.unit_key
                        and k.death_month < p.service_month)

    union all

    -- months withheld because of a death now withdrawn, of a unit on no roster now: owed now (as
    -- they would be on a roster), from that month's own roster row, to the unit's last account
    select w.unit_key, w.line_program, w.service_month, 'death_withdrawn', w.service_month
    from hist_withdrawn w
    join hist_units h
      on h.unit_key = w.unit_key and h.line_program = w.line_program and h.basis_month = w.service_month
    where not exists (select 1 from units u where u.unit_key = w.unit_key and u.line_program = w.line_program)
      and not exists (select 1 from int_paid_history p where p.unit_key = w.unit_key
                      and p.line_program = w.line_program and p.service_month = w.service_month
                      and (p.was_paid or p.was_held))
      and w.service_month >= h.enrolled_from
      and w.service_month <= coalesce(h.enrolled_to, '9999-12')
      and w.service_month <= coalesce(h.age_out_month, '9999-12')
    group by all
)

select
    unit_key, line_program, service_month, 'history' as basis, 'arrears' as line_type,
    arrears_cause, history_month
from gone

union all

select
    e.unit_key,
    e.line_program,
    e.service_month,
    case
        when e.service_month = getvariable('payroll_month') then 'current'
        when p.was_paid then 'history'
        -- a held month is paid as it was held: from that month's roster (a clearance pays exactly
        -- what was held, plus any raise since)
        when p.was_held then 'history'
        -- a month withheld for a death since withdrawn: from that month's roster, as it would have been
        when w.unit_key is not null then 'history'
        else 'current'
    end as basis,
    case
        when e.service_month = getvariable('payroll_month') then 'regular'
        else 'arrears'
    end as line_type,
    case
        when e.service_month = getvariable('payroll_month') then 'regular'
        when p.was_paid then 'raise_back_pay'
        when p.was_held then 'held_released'
        when w.unit_key is not null then 'death_withdrawn'
        else 'late_enrolment'
    end as arrears_cause,
    -- the roster a history-based month is computed from: its own month's, or (a month paid or held
    -- as arrears, when the unit was on no roster of its own) the roster of the payroll that did it
    case
        when e.service_month = getvariable('payroll_month') then null
        when p.was_paid or p.was_held then
            case when d.unit_key is not null or w.unit_key is not null then e.service_month
                 else coalesce(p.first_paid_payroll, p.first_held_payroll) end
        when w.unit_key is not null then e.service_month
    end as history_month
from entitled e
left join int_paid_history p using (unit_key, line_program, service_month)
left join decided d using (unit_key, line_program, service_month)
left join hist_withdrawn w using (unit_key, line_program, service_month)
where e.service_month = getvariable('payroll_month')
   or (p.was_paid and e.service_month in (select service_month from retroactive)
       and e.service_month <= e.head_alive_month)
   or (not coalesce(p.was_paid, false) and coalesce(p.was_held, false))
   or (p.unit_key is null and d.unit_key is null)
