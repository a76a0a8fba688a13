-- int_deaths_known: every death known to this payroll whose date can be true, also of people on no
-- roster now (int_death_register). integrity writes it to _work/integrity/deaths_known.parquet; the
-- engine reads it as known_deaths and turns what was paid for months after a death into
-- receivables (应追缴).
-- grain: one row per person with a valid death on record.
-- kind: view (written once, to Parquet)
select id_number, death_month, reported_month, registry_source as source
from int_death_register
where death_date_valid
