-- stg_temporary_assistance: the temporary-assistance (临时救助) policy by region prefix and event,
-- versioned by valid_from (contract section 3, temporary_assistance.csv). The standard is a number of
-- months of the county's dibao standard; the caps are what a township and a county may approve; above
-- the threshold an approval must be 一事一议 with its record number; max_per_12_months counts the cases
-- of one household for the same event in the 12 months ending with the payroll month.
-- grain: one row per region prefix, event and version; version_id names it on every one_off line.
-- kind: table
select
    norm_code(region_code)                                  as region_code,
    norm_text(event_type)                                   as event_type,
    TRY_CAST(norm_code(standard_months) AS DECIMAL(9, 2))   as standard_months,
    norm_money(township_cap)                                as township_cap,
    norm_money(county_cap)                                  as county_cap,
    norm_money(case_by_case_threshold)                      as case_by_case_threshold,
    TRY_CAST(norm_code(max_per_12_months) AS INTEGER)       as max_per_12_months,
    norm_text(version)                                      as version,
    norm_month(valid_from)                                  as valid_from,
    -- as delivered, so a refused value is named as the bureau wrote it
    standard_months                                         as delivered_standard_months,
    township_cap                                            as delivered_township_cap,
    county_cap                                              as delivered_county_cap,
    case_by_case_threshold                                  as delivered_case_by_case_threshold,
    max_per_12_months                                       as delivered_max_per_12_months,
    valid_from                                              as delivered_valid_from,
    'temporary_assistance/' || norm_code(region_code) || '/' || norm_text(event_type) || '@'
        || coalesce(norm_month(valid_from), '?') || coalesce('#' || norm_text(version), '') as version_id
from raw_temporary_assistance
