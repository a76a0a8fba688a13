-- int_payment_lines: the month's payment lines before fund attribution.
--   regular / price_subsidy: what is due for this payroll month
--   arrears: due now for an earlier service month minus what the ledger already paid for it
--   reissue: a payment the bank returned as failed, owed again (int_reissue_due)
--   in a county whose reference data is held: last month's lines paid forward (int_reference_held_due)
-- Payee and hold come from this month's roster: money owed for an earlier month goes to the
-- account the unit has now (a unit on no roster now: its last account). grain: one row per unit, line program, service month and line type
-- (price subsidy: per covered person).
-- kind: table
with due as (
    -- a county whose reference data is held: nothing computed from the broken tables; its people are
    -- paid forward instead (int_reference_held_due). A reissue owes what was paid before: it stays.
    select * from (
        select * from int_program_due
        union all by name
        select * from int_price_subsidy
        union all by name
        select * from int_temporary_due
    ) where not reference_held(region_code)
    union all by name
    select * from int_reissue_due
    union all by name
    select * from int_reference_held_due
),

payee as (
    -- a household is paid to its head's account; everyone else to their row's account: as on this
    -- month's roster, or for a unit on no roster now (back pay to someone who left), its last one
    select * exclude (payee_month, source_file, source_row)
    from (
        select unit_key, line_program, name as beneficiary_name, account_holder as payee_name,
               bank_account as payee_account, bank_code as payee_bank_code, bank_name as payee_bank_name,
               bank_bic as payee_bic, institution_code, basis_month as payee_month, source_file, source_row
        from int_units
        where program <> 'dibao' or relation = '户主'
        union all
        select unit_key, line_program, name, account_holder, bank_account, bank_code, bank_name, bank_bic,
               institution_code, basis_month, source_file, source_row
        from hist_units
        where program <> 'dibao' or relation = '户主'
        union all
        -- a temporary case paid before and delivered again (not paid again: temporary_already_paid)
        -- brings its account: where that payment failed, the reissue goes to the account delivered now
        select approval_no, 'temporary', name, account_holder, bank_account, bank_code, bank_name, bank_bic,
               institution_code, getvariable('payroll_month'), source_file, source_row
        from cur_roster
        where program = 'temporary' and disposition = 'accepted' and not_paid_reason = 'temporary_already_paid'
    )
    qualify row_number() over (partition by unit_key, line_program
                               order by payee_month desc, source_file, source_row) = 1
),

holds as (
    select unit_key, line_program, max(hold_reason) as hold_reason
    from int_units
    group by all
),

earlier_arrears as (
    -- service months that already carry a payable arrears line: a second one would pay the same
    -- (person, program, month, line type) twice, so a top-up for such a month is held for review
    select distinct id_number, program as line_program, service_month
    from hist_ledger
    where line_type = 'arrears' and status = 'payable'
),

priced as (
    select
        d.*,
        coalesce(p.paid_amount, 0) as previously_paid,
        case
            when d.line_type = 'regular' and getvariable('pay_amount_source') = 'approved'
                 and d.approved_amount is not null then d.approved_amount
            when d.line_type in ('regular', 'price_subsidy', 'one_off') then d.due
            else d.due - coalesce(p.paid_amount, 0)
        end as amount
    from due d
    left join int_paid_history p
      on p.unit_key = d.unit_key and p.line_program = d.line_program and p.service_month = d.service_month
     and d.line_type = 'arrears'
    where d.has_standard and d.eligible
),

lines as (
    select
        -- a one-off line is one case: its approval number joins the key (NULL, and so skipped, elsewhere)
        md5(concat_ws('|', getvariable('payroll_month'), pr.service_month, pr.line_program, pr.line_type,
                      pr.id_number, pr.approval_no)) as line_key,
        pr.*,
        py.beneficiary_name,
        py.payee_name,
        py.payee_account,
        py.payee_bank_code,
        py.payee_bank_name,
        py.payee_bic,
        py.institution_code,
        coalesce(h.hold_reason,
                 -- a reissue waits until the unit's account is no longer the one the bank refused
                 case when pr.line_type = 'reissue' and py.payee_account is not distinct from pr.failed_account
                      then 'awaiting_account_correction' end,
                 -- a bank said this account is closed or does not exist: held until the roster brings another
                 case when ca.payee_account is not null then 'account_closed' end,
                 case when ea.id_number is not null then 'arrears_top_up_review' end,
                 -- owed, but no account to pay it to: held, never dropped
                 case when py.payee_account is null then 'no_payee_account' end) as hold_reason
    from priced pr
    left join payee py on py.unit_key = pr.unit_key and py.line_program = pr.line_program
    left join holds h on h.unit_key = pr.unit_key and h.line_program = pr.line_program
    left join hist_closed_accounts ca on ca.payee_account = py.payee_account
    left join earlier_arrears ea
      on pr.line_type = 'arrears' and ea.id_number = pr.id_number and ea.line_program = pr.line_program
     and ea.service_month = pr.service_month
    where pr.amount > 0
)

-- a line is payable unless something holds it
select *, case when hold_reason is null then 'payable' else 'held' end as status
from lines
