-- stg_cpi: year-on-year CPI and food-CPI change by month and area (contract section 3, cpi.csv).
-- grain: one row per month and area
-- kind: table
select
    norm_month(month)                        as month,
    norm_code(area)                          as area,
    CAST(norm_code(cpi_yoy) AS DECIMAL(9, 3))  as cpi_yoy,
    CAST(norm_code(food_yoy) AS DECIMAL(9, 3)) as food_yoy
from raw_cpi
