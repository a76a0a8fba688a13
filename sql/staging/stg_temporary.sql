-- stg_temporary: temporary-assistance (临时救助) cases normalised (contract section 2, temporary).
-- One row per approved case; region_code is the approving county (checked inside the province by
-- the common suite), while the ID number's own region may lie in any province. grain: one row per
-- delivered row.
-- kind: table
with base as (
    select
        b.*,
        norm_code(b.delivered.household_id)       as household_id,
        norm_text(b.delivered.event_type)         as event_type,
        norm_date(b.delivered.event_date)         as event_date,
        norm_code(b.delivered.approval_no)        as approval_no,
        norm_text(b.delivered.approval_level)     as approval_level,
        norm_code(b.delivered.case_by_case_no)    as case_by_case_no
    from stg_roster_base b
)

select
    base.*,
    -- the household the repeat window counts: its number, or the person where it is blank
    coalesce(household_id, 'P:' || id_number)                                  as case_household,
    (norm_code(delivered.event_date) is not null and event_date is null)       as event_date_unparsed,
    event_date <= last_day(month_date(payroll_month))                          as event_date_ok,
    coalesce(approved_amount > 0, false)                                       as approved_amount_positive,
    true                                                                       as account_required
from base
