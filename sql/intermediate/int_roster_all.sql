-- int_roster_all: the validated rosters of the month in one table (union by column name): the four
-- monthly programs and the temporary-assistance cases.
-- grain: one row per delivered row. Program-specific columns are NULL for other programs.
-- kind: view (the month's delivered rows with their lineage, about 1 KB each: streamed from the validated Parquet into the written roster, never held)
select
    -- keys
    program,
    source_file,
    source_row,
    -- person
    id_number,
    name,
    sex,
    birth_date,
    region_code,
    urban_rural,
    -- payee
    bank_code,
    bank_name,
    bank_bic,
    bank_account,
    account_holder,
    -- entitlement
    enrolled_from,
    enrolled_to,
    approved_amount,
    household_id,
    relation,
    household_size,
    household_income,
    class_categories,
    placement,
    care_level,
    institution_code,
    guardian_name,
    guardian_id_number,
    subsidy_type,
    ledger_program,
    disability_category,
    disability_grade,
    disability_cert_no,
    age_out_month,
    -- temporary assistance: the case
    event_type,
    event_date,
    approval_no,
    approval_level,
    case_by_case_no,
    case_household,
    -- judgement so far
    disposition,
    reasons,
    duplicate_of_file,
    duplicate_of_row,
    duplicate_rule,
    -- lineage
    file_sha256,
    file_status,
    extra,
    delivered
from validated_rows
