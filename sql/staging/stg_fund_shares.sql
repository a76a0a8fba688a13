-- stg_fund_shares: who pays which fraction of each program's money (contract section 3).
-- grain: one row per program, region prefix and version
-- kind: table
select
    norm_text(program)                              as program,
    norm_code(region_code)                          as region_code,
    CAST(norm_code(central) AS DECIMAL(9, 6))       as central,
    CAST(norm_code(provincial) AS DECIMAL(9, 6))    as provincial,
    CAST(norm_code(city) AS DECIMAL(9, 6))          as city,
    CAST(norm_code(county) AS DECIMAL(9, 6))        as county,
    norm_month(effective_from)                      as effective_from,
    'fund_shares/' || norm_text(program) || '/' || norm_code(region_code) || '@' || norm_month(effective_from)
                                                    as version_id
from raw_fund_shares
