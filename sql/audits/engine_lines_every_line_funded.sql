-- audit: engine_lines
-- message: {n} lines without a fund split (no fund_shares.csv row funds their program and county for their
--   service month): nothing is dropped, the run stops
-- The rows: the payment lines int_fund_split has no row for.
select line_key from int_payment_lines anti join int_fund_split using (line_key)
