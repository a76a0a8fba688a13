-- payout_record: the month's transfers. One record per payee account and beneficiary unit (a
-- household, an institution, a person) within a bank's batch, carrying every payable line of that
-- payee: a household's regular, arrears and price-subsidy lines travel in one transfer, its memo
-- saying so (contract section 5). It reads `payable_lines`, the payable lines of one chunk of payee
-- accounts (pipelines/payout.py build_records), which numbers the records per bank afterwards.
-- grain: one row per record.
-- kind: table
with lines as (
    -- only the columns used below: DuckDB holds this CTE (it is read twice), and a ledger line with
    -- its explanation is wide (at 25M roster rows the whole lines spilled over 40 GB)
    select
        l.line_id, l.program, l.line_type, l.service_month, l.id_number, l.region_code, l.amount,
        l.payee_bank_code, l.payee_bank_name, l.payee_bic, l.payee_account, l.payee_name,
        z.program_zh,
        -- a reissue travels on its own record, in the month's reissue batch
        coalesce(institution_code, unit_key) || case when line_type = 'reissue' then '#reissue' else '' end
            as payee_group,
        case when line_type = 'price_subsidy' then '价格临时补贴'
             when line_type = 'reissue' then program_zh || '退回重发'
             when line_type = 'one_off' then program_zh
             else program_zh || case when line_type = 'regular' then '' else '补发' end
        end as memo_label
    from payable_lines l
    join vocab_program_zh z on z.program = l.program
),

labels as (
    select payee_bank_code, payee_account, payee_name, payee_group, memo_label,
           min(service_month) as first_month, max(service_month) as last_month,
           count(distinct id_number) as persons
    from lines
    group by all
),

memos as (
    select payee_bank_code, payee_account, payee_name, payee_group,
           string_agg(memo_label || ' ' || first_month
                      || case when last_month <> first_month then '至' || last_month else '' end
                      || case when persons > 1 then '（' || persons || '人）' else '' end,
                      '；' order by memo_label, first_month) as memo
    from labels
    group by all
)

select
    l.payee_bank_code                         as bank_code,
    min(l.payee_bank_name)                    as bank_name,
    min(l.payee_bic)                          as bic,
    l.payee_account,
    l.payee_name,
    l.payee_group,
    min(l.region_code)                        as region_code,
    CAST(sum(l.amount) AS DECIMAL(18, 2))     as amount,
    count(*)                                  as line_count,
    list(l.line_id order by l.program, l.service_month, l.line_type, l.id_number, l.line_id) as line_ids,
    string_agg(distinct l.program, ';' order by l.program) as programs,
    min(m.memo)                               as memo,
    bool_and(l.line_type = 'reissue')         as is_reissue
from lines l
join memos m using (payee_bank_code, payee_account, payee_name, payee_group)
group by l.payee_bank_code, l.payee_account, l.payee_name, l.payee_group
