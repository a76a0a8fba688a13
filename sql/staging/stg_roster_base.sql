-- stg_roster_base: one program's delivered rows, common columns normalised (contract sections 1-2).
-- grain: one row per delivered data row (source_file, source_row). Nothing is dropped here.
-- `delivered` keeps the whole row as it arrived, so an auditor sees the value as delivered and as used.
-- kind: table
with delivered as (
    select r, r.* from raw_roster r
),

normalised as (
    select
        -- keys and lineage
        program,
        source_file,
        source_row,
        file_sha256,
        file_status,
        file_reason,
        duplicate_of_file,
        duplicate_of_row,
        row_malformed,
        row_hidden,
        -- one column per rule (GX keeps one expectation per type and column)
        nullif(row_hidden = 'ROW_HIDDEN', false)   as hidden_row,
        nullif(row_hidden = 'SHEET_HIDDEN', false) as in_hidden_sheet,
        extra,
        grain_extra,
        -- identity
        norm_code(region_code)       as region_code,
        norm_text(name)              as name,
        norm_code(id_number)         as id_number,
        norm_text(sex)               as sex,
        norm_text(urban_rural)       as urban_rural,
        -- payee
        norm_text(bank_name)         as bank_name,
        norm_code(bank_account)      as bank_account,
        norm_text(account_holder)    as account_holder,
        -- judged on the values as delivered: norm_text would turn an embedded line break into a space
        case when has_hidden_characters(name) or has_hidden_characters(account_holder)
             then 'NAME_HIDDEN_CHARACTER' end as hidden_characters,
        -- months and money
        norm_month(enrolled_from)    as enrolled_from,
        norm_month(enrolled_to)      as enrolled_to,
        norm_money(approved_amount)  as approved_amount,
        (enrolled_from is not null and norm_month(enrolled_from) is null)
            or (enrolled_to is not null and norm_code(enrolled_to) is not null and norm_month(enrolled_to) is null)
                                     as month_unparsed,
        (norm_code(approved_amount) is not null and norm_money(approved_amount) is null) as approved_unparsed,
        r                            as delivered
    from delivered
),

derived as (
    select
        n.*,
        regexp_full_match(coalesce(id_number, ''), '\d{17}[0-9X]')  as id_format_ok,
        id_expected_check(id_number)                                as id_expected_check,
        substr(id_number, 18, 1)                                    as id_check_char,
        id_birth_date(id_number)                                    as birth_date,
        id_sex(id_number)                                           as sex_from_id,
        getvariable('payroll_month')                                as payroll_month,
        b.bank_code,
        b.bic                                                       as bank_bic,
        bank_account is not null                                    as has_account,
        approved_amount::DOUBLE                                     as approved_amount_num,
        file_status = 'loaded' and row_malformed is null           as in_play
    from normalised n
    left join stg_banks b on b.spelling = n.bank_name
),

checked as (
    select
        d.*,
        birth_date is not null
            and birth_date >= DATE '1900-01-01'
            and birth_date <= last_day(month_date(payroll_month))   as birth_ok,
        -- age in whole years on the last day of the payroll month
        date_sub('year', birth_date, last_day(month_date(payroll_month))) as age_at_payroll,
        -- the same person twice in one file: the first row survives. A hidden row (ROW_HIDDEN,
        -- SHEET_HIDDEN) is no one's survivor: it is quarantined, and the visible row stands
        case when in_play and id_number is not null and row_hidden is null
              and row_number() over (partition by source_file, id_number, grain_extra, row_hidden is null
                                     order by source_row) > 1
             then first_value(source_row)
                  over (partition by source_file, id_number, grain_extra, row_hidden is null order by source_row)
        end                                                         as same_file_duplicate_of_row,
        -- numbered over the program's whole delivery, so a city partition keeps the same keys
        k.row_key
    from derived d
    join raw_roster_keys k using (source_file, source_row)
)

select * from checked
