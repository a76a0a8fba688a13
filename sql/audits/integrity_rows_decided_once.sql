-- audit: integrity (after the rules have run, before the roster is written)
-- message: {n} rows decided twice (int_roster_decisions): books would not balance
-- The rows: every decision of a delivered row beyond its first (int_roster_decisions has one per row).
select source_file, source_row from int_roster_decisions
qualify row_number() over (partition by source_file, source_row) > 1
