"""`doudi explain`: the story of one person's (or household's) payments in a payroll month, read
from the warehouse: every ledger line with its service month, rule versions, inputs and formula,
where the money went (masked account) and its payment reference."""

from __future__ import annotations

import json

from pipelines.idnumbers import mask_id
from pipelines.settings import RunContext, RunError
from pipelines.sqlrun import attach_warehouse, connect
from pipelines.vocabulary import ARREARS_CAUSE_ZH, FINDING_TYPES, LINE_TYPE_ZH, PROGRAM_NAMES_ZH


def explain(ctx: RunContext, person: str) -> str:
    """The story as text; an ID that the month's warehouse does not know is a RunError (exit 1)."""
    con = connect()
    attach_warehouse(con, ctx.warehouse)
    key = person.strip().upper()
    lines = con.execute("""
        SELECT service_month, program, line_type, status, hold_reason, amount, formula, rule_versions, inputs,
               mask_account(payee_account), payee_bank_name, payment_ref, arrears_cause, fund_central,
               fund_provincial, fund_city, fund_county, source_file, source_row, mask_id(id_number),
               mask_name(beneficiary_name), reissue_of
        FROM wh.payment_ledger
        WHERE payroll_month = ? AND (id_number = ? OR household_id = ? OR unit_key = ?)
        ORDER BY program, service_month, line_type, id_number""", [ctx.month, key, key, key]).fetchall()
    rows = con.execute("""SELECT source_file, source_row, program, disposition, reasons, duplicate_of_file,
               duplicate_of_row, not_paid_reason, hold_reason FROM wh.row_disposition
        WHERE payroll_month = ? AND id_number = ? ORDER BY ALL""", [ctx.month, key]).fetchall()
    findings = con.execute("SELECT finding_type, action, mask_long_numbers(detail) FROM wh.finding "
                           "WHERE payroll_month = ? AND id_number = ? ORDER BY ALL", [ctx.month, key]).fetchall()
    con.close()
    if not lines and not rows:
        raise RunError(f"{ctx.month}: the warehouse {ctx.warehouse} has no line and no roster row for "
                       f"{mask_id(key)}: check the number (an ID number, or a dibao household ID) and the month")
    out = [f"{ctx.month} — {mask_id(key)}"]
    for r in rows:
        text = f"  roster {r[0]} row {r[1]} ({r[2]}): {r[3]}"
        if r[4]:
            text += f" — {r[4]}"
        if r[5]:
            text += f" — duplicate of {r[5]} row {r[6]}"
        if r[7] or r[8]:
            text += f" — {'not paid: ' + r[7] if r[7] else ''}{'held: ' + r[8] if r[8] else ''}"
        out.append(text)
    total = 0
    for ln in lines:
        (service, program, line_type, status, hold, amount, formula, versions, inputs, acct, bank, ref, cause,
         fc, fp, fci, fco, sf, sr, masked_id, name, reissue_of) = ln
        label = f"{PROGRAM_NAMES_ZH.get(program, program)} {LINE_TYPE_ZH.get(line_type, line_type)}"
        held = f" — {FINDING_TYPES.get(hold, hold)} ({hold})" if hold else ""
        out.append(f"  {service} {label}, {name} {masked_id}: {amount} yuan [{status}{held}]")
        out.append(f"      formula: {formula}")
        out.append(f"      rules:   {', '.join(versions or [])}")
        out.append(f"      inputs:  {json.dumps(json.loads(inputs), ensure_ascii=False) if inputs else ''}")
        out.append(f"      why:     {_why(line_type, cause, sf, sr, reissue_of)}")
        out.append(f"      funds:   central {fc}, provincial {fp}, city {fci}, county {fco}")
        out.append(f"      paid to: {bank} {acct}, payment_ref {ref or '(none: held)'}")
        if status == "payable":
            total += amount
    for f in findings:
        out.append(f"  finding {f[0]} ({f[1]}): {f[2]}")
    out.append(f"  total payable this month: {total}")
    return "\n".join(out)


def _why(line_type: str, cause: str | None, source_file: str | None, source_row: int | None,
         reissue_of: str | None) -> str:
    """Why the line is owed, in words; the roster row it stands on, where there is one."""
    if line_type == "reissue":
        return f"重发: the bank returned payment {reissue_of or '(unknown)'} as failed; owed again"
    parts = [f"{ARREARS_CAUSE_ZH.get(cause, cause)} ({cause})" if cause else LINE_TYPE_ZH.get(line_type, line_type)]
    if source_file:
        parts.append(f"from {source_file} row {source_row}")
    else:
        parts.append("from the ledger's history (no roster row this month)")
    return "; ".join(parts)
