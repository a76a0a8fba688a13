-- stg_regions: current county-level codes of the province doudi serves (reference regions.csv).
-- grain: one row per county
-- kind: table
select
    norm_code(region_code)   as region_code,
    norm_text(county_name)   as county_name,
    norm_code(city_code)     as city_code,
    norm_text(city_name)     as city_name,
    norm_code(province_code) as province_code,
    norm_text(province_name) as province_name
from raw_regions
where norm_code(province_code) = getvariable('province_code')
