-- stg_standards: versioned monthly amounts (contract section 3, standards.csv).
-- grain: one row per version; version_id names it for every ledger line that uses it.
-- kind: table
select
    norm_text(program)                                   as program,
    norm_text(component)                                 as component,
    norm_code(region_code)                               as region_code,
    coalesce(norm_text(urban_rural), '*')                as urban_rural,
    coalesce(norm_text(category), '*')                   as category,
    norm_money(amount)                                   as amount,
    norm_month(effective_from)                           as effective_from,
    coalesce(norm_month(effective_to), '9999-12')        as effective_to,
    coalesce(norm_month(first_payroll), norm_month(effective_from)) as first_payroll,
    norm_text(program) || '/' || norm_text(component) || '/' || norm_code(region_code) || '/'
        || coalesce(norm_text(urban_rural), '*') || '/' || coalesce(norm_text(category), '*')
        || '@' || norm_month(effective_from)
        || coalesce('#' || norm_month(first_payroll), '')   as version_id,
    amount                                               as delivered_amount
from raw_standards
