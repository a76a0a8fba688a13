-- fact_enrolment: who was on which roster in the payroll month being loaded, with what became of
-- the row (accepted, quarantined, duplicate) and why. grain: one row per delivered roster row
-- kind: replaced_per_month (publish deletes the month's rows and inserts them again, pipelines/marts.py)
select
    d.payroll_month, d.program, d.source_file, d.source_row, d.id_number, r.household_id, d.region_code,
    r.urban_rural, r.subsidy_type, d.disposition, d.reason_codes, d.not_paid_reason, d.hold_reason
from row_disposition d
left join roster_row r using (payroll_month, source_file, source_row)
where d.payroll_month = getvariable('payroll_month')
