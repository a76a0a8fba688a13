-- int_account_changes: accepted rows whose payee account AND the name on it both changed since the
-- person's last accepted row in an earlier payroll (same program). A new card in one's own name is
-- routine; a new card in a new name is how payments are diverted, or a guardian changed: review.
-- grain: one row per roster row.
-- kind: table
select r.source_file, r.source_row, r.id_number, r.program,
       h.payroll_month as previous_month, h.bank_account as previous_account, h.account_holder as previous_holder,
       r.bank_account, r.account_holder
from int_roster_all r
join hist_accounts h on h.program = r.program and h.id_number = r.id_number
where r.disposition = 'accepted'
  and r.bank_account is not null
  and r.bank_account <> h.bank_account
  and r.account_holder is distinct from h.account_holder
