-- int_temporary_cases: what integrity decides for each accepted temporary-assistance case (临时救助),
-- by the policy of temporary_assistance.csv in force for the payroll month (longest region prefix of
-- the approving county, then the latest valid_from):
--   not paid   temporary_already_paid (its approval number has a payable line in an earlier payroll:
--              a case is paid once, ever), temporary_deceased_before_event (the death registry has
--              the person dead before the event)
--   held       temporary_above_cap (above the approving level's cap without a 一事一议 number),
--              temporary_case_by_case_missing (above the 一事一议 threshold without one),
--              temporary_repeat_within_12_months (more cases of the household for the event in the
--              12 payroll months ending now than the policy allows: the later ones by event date),
--              temporary_recipient_deceased (dead on or after the event: whose account is paid is
--              for a caseworker to decide)
-- A case no policy row covers keeps policy_version NULL: integrity stops the run on it.
-- grain: one row per accepted temporary row that is not a duplicate.
-- kind: table
with cases as (
    select r.source_file, r.source_row, r.id_number, r.region_code, r.event_type, r.event_date, r.approval_no,
           r.approval_level, r.case_by_case_no, r.approved_amount, r.case_household
    from int_roster_all r
    anti join int_cross_county_duplicates d using (source_file, source_row)
    where r.program = 'temporary' and r.disposition = 'accepted'
),

policy as (
    select c.source_file, c.source_row, p.version_id, p.standard_months, p.township_cap, p.county_cap,
           p.case_by_case_threshold, p.max_per_12_months
    from cases c
    join stg_temporary_assistance p
      on starts_with(c.region_code, p.region_code) and p.event_type = c.event_type
     and p.valid_from <= getvariable('payroll_month')
    qualify row_number() over (partition by c.source_file, c.source_row
                               order by length(p.region_code) desc, p.valid_from desc) = 1
),

deaths as (
    select id_number, death_month, norm_date(death_date) as death_day
    from int_death_register
    where death_date_valid
),

judged as (
    select
        c.*,
        p.version_id                                                as policy_version,
        p.standard_months,
        p.township_cap,
        p.county_cap,
        p.case_by_case_threshold,
        p.max_per_12_months,
        case c.approval_level when '乡镇' then p.township_cap when '县级' then p.county_cap end as level_cap,
        d.death_month,
        case
            when exists (select 1 from hist_one_off h where h.approval_no = c.approval_no and h.status = 'payable')
                then 'temporary_already_paid'
            -- a death known to the day is compared by day; one known to the month, by month
            when coalesce(d.death_day < c.event_date, d.death_month < month_text(c.event_date))
                then 'temporary_deceased_before_event'
        end                                                         as not_paid_reason,
        d.id_number is not null                                     as recipient_deceased
    from cases c
    left join policy p using (source_file, source_row)
    left join deaths d on d.id_number = c.id_number
),

earlier as (
    -- cases of each household and event decided in the 11 payroll months before this one (this
    -- month's own approvals, redelivered, are not counted twice)
    select h.case_household, h.event_type, count(distinct h.approval_no) as earlier_cases
    from hist_temporary_cases h
    where h.payroll_month >= add_months(getvariable('payroll_month'), -11)
      and h.approval_no not in (select approval_no from cases)
    group by all
),

ranked as (
    select j.*,
           coalesce(e.earlier_cases, 0)
               + row_number() over (partition by j.case_household, j.event_type
                                    order by j.event_date, j.approval_no, j.source_file, j.source_row)
                                                                    as case_in_window
    from judged j
    left join earlier e using (case_household, event_type)
    where j.not_paid_reason is null
)

select
    j.*,
    r.case_in_window,
    case
        when j.not_paid_reason is not null then null
        when j.approved_amount > j.level_cap and j.case_by_case_no is null then 'temporary_above_cap'
        when j.approved_amount > j.case_by_case_threshold and j.case_by_case_no is null
            then 'temporary_case_by_case_missing'
        when r.case_in_window > j.max_per_12_months then 'temporary_repeat_within_12_months'
        when j.recipient_deceased then 'temporary_recipient_deceased'
    end                                                             as hold_reason
from judged j
left join ranked r using (source_file, source_row)
