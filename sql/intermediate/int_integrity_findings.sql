-- int_integrity_findings: what the integrity checks found this month, with evidence and action.
-- grain: one row per finding. Types and actions: pipelines/vocabulary.py (FINDING_TYPES).
-- kind: table
with accepted as (
    -- the columns the rules below read: several read this CTE, so DuckDB holds it, and the whole
    -- row (with its delivered form) is about 1 KB
    select source_file, source_row, program, id_number, name, region_code, household_id, relation,
           institution_code, placement, guardian_id_number, bank_account, account_holder, not_paid_reason,
           hold_reason, death_month
    from int_roster_final
    where disposition = 'accepted'
),

duplicates as (
    select case duplicate_rule when 'same_approval_no' then 'temporary_same_approval_no'
                else 'duplicate_across_counties' end as finding_type, 'warning' as severity, program, id_number,
           region_code, 'not_paid' as action,
           case duplicate_rule
               when 'same_approval_no' then '同一审批编号已在 ' || survivor_file || ' 第' || survivor_row
                   || '行报送（保留该行，只发放一次）'
               else '同一人在 ' || survivor_file || ' 第' || survivor_row || '行已报送（保留该行，规则 earliest_enrolment）'
           end as detail,
           source_file, source_row
    from int_cross_county_duplicates
),

temporary_detail as (
    -- what a temporary case's finding says: its approval, amount and the policy it was judged by
    select source_file, source_row,
           '审批编号 ' || approval_no || '（' || approval_level || '审批，' || event_type || '，'
               || strftime(event_date, '%Y-%m-%d') || '），救助金额 ' || approved_amount::VARCHAR || ' 元' as case_text,
           level_cap, case_by_case_threshold, max_per_12_months, case_in_window, policy_version, death_month
    from int_temporary_cases
),

exclusive as (
    select 'exclusive_programs', 'warning', x.program, x.id_number, r.region_code,
           case when x.action = 'pay_a_only' then 'not_paid' else 'paid_and_flagged' end,
           '同时享受 ' || x.program_a || coalesce(':' || x.subsidy_a, '') || '（' || x.other_file || ' 第'
               || x.other_row || '行）与 ' || x.program_b || coalesce(':' || x.subsidy_b, '') || '；处理: ' || x.action,
           x.source_file, x.source_row
    from int_exclusions x
    join int_roster_final r using (source_file, source_row)
),

blocked as (
    select not_paid_reason, 'warning', program, id_number, region_code, 'not_paid',
           case not_paid_reason
               when 'living_subsidy_not_in_dibao' then '本月低保名册中没有此人所在的家庭'
               when 'deceased_listed' then '死亡登记: ' || death_month || ' 死亡，之后月份不予发放'
               when 'household_in_two_counties' then '家庭编号 ' || household_id
                   || ' 同时由多个县区报送（'
                   || (select string_agg(distinct o.region_code, '、' order by o.region_code) from accepted o
                       where o.program = 'dibao' and o.household_id = accepted.household_id) || '）：请各县区核对家庭编号，核清前暂不发放'
               when 'temporary_already_paid' then (select case_text from temporary_detail t
                   where t.source_file = accepted.source_file and t.source_row = accepted.source_row)
                   || '：该审批编号已在以前月份发放，不重复发放'
               when 'temporary_deceased_before_event' then (select case_text || '：死亡登记 ' || t.death_month
                   || ' 死亡，早于事由发生日期' from temporary_detail t
                   where t.source_file = accepted.source_file and t.source_row = accepted.source_row)
               else not_paid_reason
           end,
           source_file, source_row
    from accepted
    where not_paid_reason is not null and not_paid_reason <> 'exclusive_programs'
),

held as (
    select hold_reason, 'error', program, id_number, region_code, 'held',
           case hold_reason
               when 'household_head_deceased' then '户主已死亡，整户暂停发放待核（家庭编号 ' || household_id || '）'
               when 'guardian_deceased' then '监护人 ' || coalesce(mask_id(guardian_id_number), '') || ' 已在死亡登记中：'
                   || '款项暂停，请县民政部门确定新的监护人和账户'
               when 'account_holder_mismatch' then '账户名“' || coalesce(mask_name(account_holder), '') || '”不是应收款人'
               when 'account_conflict_in_file' then '同一文件中此人出现两次，银行账号不同（本行 '
                   || coalesce(mask_account(bank_account), '') || '）：暂停发放，请县民政部门核实后报送只有一个账户的更正文件'
               else (select t.case_text || case hold_reason
                   when 'temporary_above_cap' then '，超过审批层级限额 ' || t.level_cap::VARCHAR
                       || ' 元且无一事一议编号（' || t.policy_version || '）：暂停待核'
                   when 'temporary_case_by_case_missing' then '，超过一事一议标准 ' || t.case_by_case_threshold::VARCHAR
                       || ' 元但无一事一议编号（' || t.policy_version || '）：暂停待核'
                   when 'temporary_repeat_within_12_months' then '：同一家庭同一事由12个月内第 ' || t.case_in_window
                       || ' 次，规定至多 ' || t.max_per_12_months || ' 次（' || t.policy_version || '）：暂停待核'
                   when 'temporary_recipient_deceased' then '：死亡登记 ' || t.death_month
                       || ' 死亡（事由发生之后）：暂停，请县民政部门核定收款人'
                   end
                   from temporary_detail t
                   where t.source_file = accepted.source_file and t.source_row = accepted.source_row)
           end,
           source_file, source_row
    from accepted
    where hold_reason is not null
),

temporary_on_monthly as (
    -- temporary assistance adds to dibao and tekun: allowed, and reported
    select 'temporary_also_on_monthly_program', 'info', a.program, a.id_number, a.region_code, 'paid_and_flagged',
           '临时救助对象本月同时享受' || (select string_agg(distinct z.program_zh, '、' order by z.program_zh)
                                    from accepted m join vocab_program_zh z on z.program = m.program
                                    where m.id_number = a.id_number
                                      and m.program in ('dibao', 'tekun')) || '：照发，备查',
           a.source_file, a.source_row
    from accepted a
    where a.program = 'temporary' and a.not_paid_reason is null
      and exists (select 1 from accepted m where m.id_number = a.id_number and m.program in ('dibao', 'tekun'))
),

dead_members as (
    select 'deceased_listed', 'warning', program, id_number, region_code, 'paid_and_flagged',
           '低保家庭成员已于 ' || death_month || ' 死亡：家庭照发并核查，该成员不发价格临时补贴',
           source_file, source_row
    from accepted
    where program = 'dibao' and death_month is not null and relation <> '户主'
),

dibao_household_of as (
    select distinct id_number, household_id from accepted where program = 'dibao'
),

payees as (
    -- who each account pays for: a household (a member's own subsidies count as the household's),
    -- an institution, a guardian, or the person
    select a.bank_account,
           coalesce(a.household_id, h.household_id, a.institution_code,
                    case when a.program = 'orphan' and a.placement = '机构养育' then 'institution:' || a.account_holder end,
                    a.guardian_id_number, a.id_number) as payee_unit,
           a.source_file, a.source_row, a.program, a.id_number, a.region_code
    from accepted a
    left join dibao_household_of h on h.id_number = a.id_number
    where a.bank_account is not null
),

shared_accounts as (
    -- grouped, then joined back: a window over every account of the month sorts the month
    select 'account_shared', 'warning', p.program, p.id_number, p.region_code, 'paid_and_flagged',
           '账户 ' || mask_account(p.bank_account) || ' 同时收取 ' || s.units || ' 个无关家庭/个人的款项',
           p.source_file, p.source_row
    from payees p
    join (select bank_account, count(distinct payee_unit) as units from payees
          group by bank_account having count(distinct payee_unit) > 1) s using (bank_account)
),

name_conflicts as (
    select 'id_name_conflict', 'warning', a.program, a.id_number, a.region_code, 'paid_and_flagged',
           '同一身份证号在本月名册中出现不同姓名（' || n.names || ' 个）',
           a.source_file, a.source_row
    from accepted a
    join (select id_number, count(distinct name) as names from accepted
          group by id_number having count(distinct name) > 1) n using (id_number)
),

rejected_files as (
    -- a file refused whole (unreadable, a link, another month's, ...): its rows, if any could be
    -- read, are quarantined FILE_REJECTED; the finding names the file and why, once
    select 'file_rejected', 'error', program, null::VARCHAR, nullif(county, ''), 'file_rejected',
           mask_long_numbers(source_file || '：' || reason_detail), source_file, null::BIGINT
    from ingest_files
    where status = 'rejected'
),

carried_forward as (
    -- 不断: a county's roster paid forward from an earlier month while this month's file is missing or
    -- was rejected whole; once per county, program and file
    select 'county_file_carried_forward', 'warning', program, null::VARCHAR, county, 'paid_and_flagged',
           county || ' 本月' || program || '名册未报送或被整体退回，按 ' || carried_from || ' 采用的名册 '
               || source_file || ' 临时发放（标为临时）；补报后以补充发放补足少发，多发只报告不自动追回',
           source_file, null::BIGINT
    from ingest_files
    where coalesce(carried_from, '') <> ''
),

not_delivered as (
    select 'county_file_not_delivered', 'error', program, null::VARCHAR, county, 'not_paid',
           county || ' 本月' || program || '名册' || reason_detail, source_file, null::BIGINT
    from ingest_files
    where status = 'not_delivered'
),

files_read_together as (
    -- two roster files of one county and program that are not versions of one roster (ingest's
    -- correction_series: one per street office, say) are both read; the county is asked, once,
    -- whether one was meant to replace the other, since then it must carry a version mark
    select 'county_files_read_together', 'warning', program, null::VARCHAR, county, 'recorded',
           county || ' 本月报送 ' || count(*) || ' 个' || program || '名册文件，互不为更正版本，已合并读取：'
               || string_agg(source_file, '、' order by source_file)
               || '；如其中一个用于替代另一个，请以版本号命名（如 _v2）后重新报送',
           min(source_file), null::BIGINT
    from ingest_files
    where status = 'loaded' and county <> ''
    group by program, county
    having count(*) > 1
),

all_findings as (
    select * from duplicates
    union all select * from exclusive
    union all select * from blocked
    union all select * from held
    union all select * from temporary_on_monthly
    union all select * from dead_members
    union all select * from shared_accounts
    union all select * from name_conflicts
    union all select * from rejected_files
    union all select * from carried_forward
    union all select * from not_delivered
    union all select * from files_read_together
),

near_duplicates as (
    -- one finding on each side of a pair, so both counties see it in their own list
    select 'near_duplicate' as finding_type, 'warning' as severity, r.program, r.id_number, r.region_code,
           'paid_and_flagged' as action,
           '疑似同一人使用两个身份证号：另见 ' || mask_id(p.other_id) || '（' || p.other_programs || '，'
               || p.other_file || ' 第' || p.other_row || '行）；匹配权重 ' || p.match_weight || '；一致: '
               || array_to_string(p.agreed, ', ') as detail,
           r.source_file, r.source_row,
           p.other_id as related_id_number,
           to_json({match_weight: p.match_weight, agreed: p.agreed, related_source_file: p.other_file,
                    related_source_row: p.other_row})::VARCHAR as evidence
    from (
        select id_number_l as id_number, source_file_l as source_file, source_row_l as source_row,
               id_number_r as other_id, source_file_r as other_file, source_row_r as other_row,
               programs_r as other_programs, match_weight, agreed
        from int_near_duplicate_pairs
        union all
        select id_number_r, source_file_r, source_row_r, id_number_l, source_file_l, source_row_l,
               programs_l, match_weight, agreed
        from int_near_duplicate_pairs
    ) p
    join int_roster_final r using (source_file, source_row)
),

registry_hits as (
    select 'registry_' || case m.registry when 'public_payroll' then 'public_payroll'
                                          when 'vehicles' then 'vehicle' else 'business' end as finding_type,
           'warning' as severity, m.program, m.id_number, r.region_code, 'paid_and_flagged' as action,
           case m.registry when 'public_payroll' then '财政供养人员名单' when 'vehicles' then '机动车登记'
                           else '工商登记' end
               || '中有此人（' || coalesce(
                    (select mask_long_numbers(string_agg(v, '，' order by k))
                     from (select unnest(json_keys(m.evidence)) as k) keys,
                          lateral (select json_extract_string(m.evidence, '$."' || k || '"') as v)),
                    '') || '）：请核对收入与财产，不自动停发' as detail,
           m.source_file, m.source_row, null::VARCHAR as related_id_number,
           m.evidence
    from int_registry_matches m
    join int_roster_final r using (source_file, source_row)
),

account_changes as (
    select 'account_changed_with_holder' as finding_type, 'warning' as severity, a.program, a.id_number,
           r.region_code, 'paid_and_flagged' as action,
           '收款账户与户名同时变更：' || a.previous_month || ' 为 ' || mask_account(a.previous_account) || '（户名 '
               || coalesce(mask_name(a.previous_holder), '空') || '），本月为 ' || mask_account(a.bank_account)
               || '（户名 ' || coalesce(mask_name(a.account_holder), '空') || '）' as detail,
           a.source_file, a.source_row, null::VARCHAR as related_id_number,
           to_json({previous_month: a.previous_month})::VARCHAR as evidence
    from int_account_changes a
    join int_roster_final r using (source_file, source_row)
),

invalid_death_dates as (
    -- a death dated after the month it was reported in: not applied, for the registry office to correct
    select 'death_date_invalid' as finding_type, 'error' as severity, d.program, d.id_number, r.region_code,
           'recorded' as action,
           '死亡登记（' || d.reported_month || ' 报送）的死亡日期 ' || coalesce(d.reported_death_date, '空')
               || ' 无效或晚于报送月份：未据此停发，请登记机关更正' as detail,
           d.source_file, d.source_row, null::VARCHAR as related_id_number,
           to_json({reported_month: d.reported_month, death_date: d.reported_death_date})::VARCHAR as evidence
    from int_deaths d
    join int_roster_final r using (source_file, source_row)
    where not d.death_date_valid and r.disposition = 'accepted'
),

hold_clearances_applied as (
    select 'hold_cleared' as finding_type, 'info' as severity, program, id_number, region_code,
           'recorded' as action,
           '暂停原因 ' || cleared_hold_reason || ' 已由 ' || cleared_by || ' 于 ' || cleared_at || ' 核销'
               || coalesce('（' || clearance_note || '）', '') || '：本月照发，暂停期间的款项补发' as detail,
           source_file, source_row, null::VARCHAR as related_id_number,
           to_json({clearance_id: clearance_id, cleared_by: cleared_by, cleared_at: cleared_at})::VARCHAR
               as evidence
    from int_roster_final
    where clearance_id is not null
)

-- the first branch (duplicates) names the columns of the union
select getvariable('payroll_month') as payroll_month, *,
       null::VARCHAR as related_id_number, null::VARCHAR as evidence
from all_findings
union all by name
select getvariable('payroll_month') as payroll_month, * from near_duplicates
union all by name
select getvariable('payroll_month') as payroll_month, * from registry_hits
union all by name
select getvariable('payroll_month') as payroll_month, * from account_changes
union all by name
select getvariable('payroll_month') as payroll_month, * from hold_clearances_applied
union all by name
select getvariable('payroll_month') as payroll_month, * from invalid_death_dates
