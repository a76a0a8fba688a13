-- fact_finding: every finding of every payroll month (a view). grain: one row per finding
-- kind: view (publish defines it over the month tables, views over the month files: marts.define_fact_views)
select payroll_month, finding_type, severity, program, id_number, region_code, action, detail,
       source_file, source_row
from finding
