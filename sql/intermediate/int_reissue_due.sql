-- int_reissue_due: payments the bank returned as failed (contract section 4) and not yet reissued:
-- one reissue line per person, program and service month (a household head's failed regular line
-- and price subsidy of one month travel as one reissue line; reissue_of names every failed line it
-- replaces). A failed line that a payable reissue names is no longer owed by itself, whatever became
-- of that reissue: a reissue that failed in turn is the failed line that carries the debt (the next
-- reissue names it), so a payment that fails twice is owed once, not twice. Paid to the account the
-- unit has this month once it differs from the one that failed; until then held
-- (awaiting_account_correction, see int_payment_lines), escalated counting from the chain's first
-- failure. A one_off (temporary assistance) is reissued per case: its unit is the approval, and its
-- corrected account comes from the county delivering the case again (int_payment_lines). grain: one row per
-- person, program, service month (and approval, for a one_off).
-- kind: table
with recursive reissue_parents as (
    select line_id, unnest(reissue_of) as parent_id
    from hist_ledger
    where line_type = 'reissue' and status = 'payable'
),

failed as (
    select h.*
    from hist_ledger h
    where h.status = 'payable' and h.payment_state = 'failed'
      and not exists (select 1 from reissue_parents r where r.parent_id = h.line_id)
),

-- every line a failed line replaces, through its chain of failed reissues, back to the original
ancestry(line_id, ancestor_id) as (
    select line_id, line_id from failed
    union
    select a.line_id, p.parent_id from ancestry a join reissue_parents p on p.line_id = a.ancestor_id
),

first_failure as (
    select a.line_id, min(h.payroll_month) as first_failed_payroll
    from ancestry a join hist_ledger h on h.line_id = a.ancestor_id
    group by a.line_id
)

select
    id_number,
    program                                               as line_program,
    program,
    service_month,
    approval_no,
    arg_max(event_type, (payroll_month, line_id))         as event_type,
    arg_max(event_date, (payroll_month, line_id))         as event_date,
    'reissue'                                             as line_type,
    arg_max(unit_key, (payroll_month, line_id))           as unit_key,
    arg_max(region_code, (payroll_month, line_id))        as region_code,
    arg_max(household_id, (payroll_month, line_id))       as household_id,
    arg_max(urban_rural, (payroll_month, line_id))        as urban_rural,
    CAST(sum(amount) AS DECIMAL(18, 2))                   as due,
    true                                                  as has_standard,
    true                                                  as eligible,
    min(payroll_month)                                    as basis_month,
    list(line_id order by line_id)                        as reissue_of,
    arg_max(payee_account, (payroll_month, line_id))      as failed_account,
    min(first_failed_payroll)                             as first_failed_payroll,
    list_sort(list_distinct(flatten(list(rule_versions)))) as rule_versions,
    to_json({failed_payment_refs: list(distinct payment_ref order by payment_ref),
             failed_lines: list(line_type || ' ' || amount::VARCHAR order by line_id)})::VARCHAR as inputs,
    '银行退回失败后重发：' || string_agg(distinct payment_ref, ', ' order by payment_ref) || ' 共 '
        || sum(amount)::VARCHAR || ' 元'                    as formula
from failed join first_failure using (line_id)
-- a one_off line is one case: a person's two failed cases of one month are two reissues (approval_no
-- is NULL on every other line)
group by id_number, program, service_month, approval_no
