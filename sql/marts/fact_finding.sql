-- fact_finding: every finding of the payroll month being loaded. grain: one row per finding
-- kind: replaced_per_month (publish deletes the month's rows and inserts them again, pipelines/marts.py)
select payroll_month, finding_type, severity, program, id_number, region_code, action, detail,
       source_file, source_row
from finding
where payroll_month = getvariable('payroll_month')
