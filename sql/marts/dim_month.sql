-- dim_month: every month from the first payroll to the last service or payroll month in the ledger.
-- grain: one row per month
-- kind: table
with bounds as (
    select least(min(payroll_month), min(service_month)) as first_month,
           greatest(max(payroll_month), max(service_month)) as last_month
    from payment_ledger
)
select month_text(d) as month, year(d) as year, quarter(d) as quarter, month(d) as month_of_year,
       CAST(year(d) AS VARCHAR) || '-H' || CAST(CASE WHEN month(d) <= 6 THEN 1 ELSE 2 END AS VARCHAR) as half_year
from bounds, lateral (select unnest(generate_series(month_date(first_month), month_date(last_month),
                                                    interval 1 month)) as d)
where first_month is not null
