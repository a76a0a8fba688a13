-- int_units: who may be paid this month and how each is keyed across months.
-- A unit is a dibao household (unit_key = household_id) or a person in one ledger program
-- (unit_key = id_number). grain: one row per accepted roster row of the current payroll month,
-- with its unit and ledger program. Rows whose program is not paid at all (not_paid_reason) drop out,
-- except a person the death registry reports dead: still a unit, entitled up to the month of death
-- (int_service_months), so months before it not yet paid are owed and nothing after it is paid.
-- The delivered row (a wide struct) and the lineage columns stay behind: the engine never reads
-- them, and carrying them through every model cost a third of the stage at 2.6M rows.
-- kind: table
select
    r.* exclude (delivered, extra, reasons, file_sha256),
    -- a temporary-assistance case is its approval: one person's two cases are two units
    case when r.program = 'dibao' then r.household_id
         when r.program = 'temporary' then r.approval_no else r.id_number end as unit_key,
    case when r.program = 'disability' then r.ledger_program else r.program end as line_program,
    getvariable('payroll_month')                                             as basis_month
from cur_roster r
where r.disposition = 'accepted'
  and (r.not_paid_reason is null or r.not_paid_reason = 'deceased_listed')
