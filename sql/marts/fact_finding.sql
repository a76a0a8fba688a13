-- fact_finding: every finding of every payroll month (a view). grain: one row per finding
select payroll_month, finding_type, severity, program, id_number, region_code, action, detail,
       source_file, source_row
from finding
