-- stg_banks: every spelling of a bank name a caseworker may type, mapped to its bank code.
-- grain: one row per spelling
-- kind: table
with banks as (
    select norm_code(bank_code) as bank_code, norm_text(bank_name) as bank_name, norm_code(bic) as bic,
           coalesce(aliases, '') as aliases
    from raw_banks
),
spellings as (
    select bank_code, bank_name, bic, bank_name as spelling from banks
    union all
    select bank_code, bank_name, bic, norm_text(unnest(string_split(aliases, ';'))) as spelling from banks
    union all
    select bank_code, bank_name, bic, bank_code as spelling from banks
)
select distinct bank_code, bank_name, bic, spelling
from spellings
where spelling is not null
