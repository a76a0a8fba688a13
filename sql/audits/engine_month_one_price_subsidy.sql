-- audit: engine_month
-- message: {n} people with more than one price subsidy line for a month
select id_number from month_ledger where line_type = 'price_subsidy'
group by id_number, service_month
having count(*) > 1
