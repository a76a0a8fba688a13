-- audit: engine_month
-- message: {n} negative amounts
select * from month_ledger where amount < 0
