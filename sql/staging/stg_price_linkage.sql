-- stg_price_linkage: versions of the price-linked temporary subsidy rule (contract section 3).
-- grain: one row per version. A blank threshold never triggers.
-- kind: table
select
    norm_month(effective_from)                         as effective_from,
    coalesce(norm_month(effective_to), '9999-12')      as effective_to,
    TRY_CAST(norm_code(cpi_threshold) AS DECIMAL(9, 3))  as cpi_threshold,
    TRY_CAST(norm_code(food_threshold) AS DECIMAL(9, 3)) as food_threshold,
    CAST(norm_code(index_lag) AS INTEGER)              as index_lag,
    lower(norm_code(basis))                            as basis,
    CAST(norm_code(multiplier) AS DECIMAL(9, 3))       as multiplier,
    coalesce(norm_money(minimum), 0)                   as minimum,
    lower(norm_code(rounding))                         as rounding,
    list_transform(string_split(lower(norm_code(programs)), ';'), lambda p: trim(p)) as programs,
    'price_linkage@' || norm_month(effective_from)     as version_id
from raw_price_linkage
