-- stg_dibao: dibao roster rows normalised, with the household facts the suite checks
-- (contract section 2, dibao). grain: one row per delivered row.
-- kind: table
with base as (
    select
        b.*,
        norm_code(b.delivered.household_id)      as household_id,
        norm_text(b.delivered.relation)          as relation,
        norm_int(b.delivered.household_size)     as household_size,
        norm_money(b.delivered.household_income) as household_income,
        nullif(list_sort(list_distinct(list_filter(
            list_transform(string_split(regexp_replace(coalesce(fold_fullwidth(b.delivered.class_category), ''),
                                                       '[；,，、/ ]', ';', 'g'), ';'), lambda x: trim(x)),
            lambda x: x <> ''))), [])                 as class_categories
    from stg_roster_base b
),

members as (
    -- rows that count as household members: delivered in a usable file, not a repeat of a row above
    select *, in_play and same_file_duplicate_of_row is null as is_member
    from base
),

households as (
    -- a household is its county's: two counties may number households alike (integrity reports a
    -- number delivered by two counties, int_roster_decisions), so each county's rows are checked alone
    select
        household_id,
        region_code,
        count(*) filter (where relation = '户主')                      as hh_head_count,
        count(*)                                                      as hh_member_rows,
        bool_or(relation = '户主' and bank_account is not null)       as hh_head_has_account
    from members
    where is_member and household_id is not null
    group by household_id, region_code
)

select
    m.*,
    h.hh_head_count,
    h.hh_member_rows,
    h.hh_head_count >= 1                                              as hh_has_head,
    h.hh_head_count <= 1                                              as hh_single_head,
    coalesce(h.hh_head_has_account, false)                            as hh_head_has_account,
    m.household_income::DOUBLE                                        as household_income_num,
    len(list_filter(coalesce(m.class_categories, []),
        lambda c: not list_contains(v.allowed, c))) = 0                 as class_category_ok,
    m.relation = '户主'                                               as account_required,
    (m.delivered.household_size is not null and m.household_size is null) as household_size_unparsed
from members m
left join households h using (household_id, region_code)
cross join (select list(value order by value) as allowed from vocab_class_category) v
