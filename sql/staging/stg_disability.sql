-- stg_disability: disability subsidy rows normalised; the certificate must be the holder's ID
-- followed by category and grade digits (contract section 2, disability). grain: one row per delivered row.
-- kind: table
with base as (
    select
        b.*,
        norm_text(b.delivered.subsidy_type)          as subsidy_type,
        norm_code(b.delivered.disability_cert_no)    as disability_cert_no,
        norm_text(b.delivered.disability_category)   as category_text,
        norm_text(b.delivered.disability_grade)      as grade_text
    from stg_roster_base b
)

select
    base.*,
    st.ledger_program,
    c.digit                                                    as disability_category,
    g.digit                                                    as disability_grade,
    base.category_text is null or c.digit is not null          as category_ok,
    base.disability_cert_no is null
        or base.disability_cert_no = base.id_number || coalesce(c.digit, '?') || coalesce(g.digit, '?')
                                                               as cert_ok,
    true                                                       as account_required
from base
left join vocab_subsidy_type st on st.value = base.subsidy_type
left join vocab_disability_category c on c.spelling = base.category_text
left join vocab_disability_grade g on g.spelling = base.grade_text
