-- dim_region: the province's counties with their city and province (reference regions.csv).
-- grain: one row per county-level region code
-- kind: table
select region_code, county_name, city_code, city_name, province_code, province_name
from stg_regions
