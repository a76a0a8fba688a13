-- fact_enrolment: who was on which roster in each payroll month, with what became of
-- the row (accepted, quarantined, duplicate) and why. grain: one row per delivered roster row
-- kind: view (publish defines it over the month tables, views over the month files: marts.define_fact_views)
select
    d.payroll_month, d.program, d.source_file, d.source_row, d.id_number, r.household_id, d.region_code,
    r.urban_rural, r.subsidy_type, d.disposition, d.reason_codes, d.not_paid_reason, d.hold_reason
from row_disposition d
left join roster_row r using (payroll_month, source_file, source_row)
