"""The end of a `doudi run`, in plain lines for the operator (issue 21): what was paid and in which
files, what was not and where to look, and the next command. Read from the warehouse the run has
just published and from the month's manifest: it says what the books say, nothing recomputed.
"""

from __future__ import annotations

import json
from decimal import Decimal

from pipelines import artefacts
from pipelines.settings import RunContext
from pipelines.sqlrun import attach_warehouse, connect
from pipelines.vocabulary import SEVERITY_ZH  # the exception list's words (严重/警告/提示)


def month_summary(ctx: RunContext, seconds: float, new_batch: str | None = None) -> list[str]:
    """The summary lines. `new_batch`: the batch a supplementary run wrote (S1, S2, ...)."""
    manifest = json.loads((artefacts.manifest(ctx)).read_text(encoding="utf-8"))
    csv_files = [f for f in manifest["files"] if f["format"] == "csv"]
    if new_batch is None:
        written = manifest["files"]
        paid = (sum(f["count"] for f in csv_files), sum((Decimal(f["sum"]) for f in csv_files), Decimal("0.00")))
        out = [f"{ctx.month}: {paid[0]} transfers, {paid[1]} yuan, {len(written)} payout files ({seconds:.1f} s)"]
    else:
        written = [f for f in manifest["files"] if f["batch_id"] == new_batch]
        new_csv = [f for f in written if f["format"] == "csv"]
        count, total = sum(f["count"] for f in new_csv), sum((Decimal(f["sum"]) for f in new_csv), Decimal("0.00"))
        if count:
            out = [f"{ctx.month} supplementary batch {new_batch}: {count} transfers, {total} yuan, {len(written)} "
                   f"payout files ({seconds:.1f} s); the released batches are unchanged"]
        else:
            out = [f"{ctx.month} supplementary run: nothing new to pay, no payout file written ({seconds:.1f} s); "
                   "the released batches already carry every payable line"]

    con = connect()
    try:
        attach_warehouse(con, ctx.warehouse)
        rows = dict(con.execute("SELECT disposition, count(*) FROM wh.row_disposition WHERE payroll_month = ? "
                                "GROUP BY 1", [ctx.month]).fetchall())
        held_lines, held_sum = con.execute(
            "SELECT count(*), coalesce(sum(amount), 0) FROM wh.payment_ledger WHERE payroll_month = ? "
            "AND status = 'held'", [ctx.month]).fetchone()
        findings = dict(con.execute("SELECT severity, count(*) FROM wh.finding WHERE payroll_month = ? GROUP BY 1",
                                    [ctx.month]).fetchall())
        # 不断: counties paid forward from an earlier roster, or not paid, because their file is missing;
        # counties paid forward because their reference data is broken
        counties = con.execute("SELECT finding_type, region_code, program FROM wh.finding WHERE payroll_month = ? "
                               "AND finding_type IN ('county_file_carried_forward', 'county_file_not_delivered', "
                               "'county_reference_held') "
                               "ORDER BY ALL", [ctx.month]).fetchall()
    finally:
        con.close()
    reports = ctx.reports_dir
    out.append(f"  rows:      {sum(rows.values())} delivered: {rows.get('accepted', 0)} accepted, "
               f"{rows.get('quarantined', 0)} quarantined, {rows.get('duplicate', 0)} duplicate"
               + (f" (the reasons, by county: {reports / 'quarantine.xlsx'})" if rows.get("quarantined") else ""))
    out.append(f"  held:      {held_lines} payment lines, {Decimal(held_sum):.2f} yuan, owed and not sent"
               + (f" (why, and how to clear: {reports / 'exceptions.xlsx'})" if held_lines else ""))
    out.append("  findings:  " + (", ".join(f"{findings[s]} {s} ({SEVERITY_ZH[s]})" for s in SEVERITY_ZH
                                             if findings.get(s)) or "none"))
    carried = [f"{county} {program}" for kind, county, program in counties if kind == "county_file_carried_forward"]
    missing = [f"{county} {program}" for kind, county, program in counties if kind == "county_file_not_delivered"]
    if carried:
        out.append(f"  CARRIED:   {', '.join(carried)}: the file is missing or was rejected, paid provisionally "
                   "from the county's last roster; when it arrives, rerun the month with --supplementary")
    held = [county for kind, county, _program in counties if kind == "county_reference_held"]
    if held:
        out.append(f"  HELD:      {', '.join(held)}: the county's reference data is broken (exceptions.xlsx says "
                   f"what), its people paid provisionally what they were last paid; fix the reference data in "
                   f"{ctx.reference} and rerun the month with --supplementary")
    if missing:
        out.append(f"  NOT PAID:  {', '.join(missing)}: the file is missing and cannot be paid forward "
                   "(exceptions.xlsx says why)")
    out.append(f"  payouts:   {ctx.payouts_dir} (manifest.json names every file)")
    out.append(f"  reports:   {reports}")
    out.append(f"  warehouse: {ctx.warehouse}")
    where = f" --out {ctx.out} --warehouse {ctx.warehouse}"
    if new_batch is not None and not written:
        out.append("  next:      nothing to release")
    else:
        out.append(f"  next:      doudi verify --month {ctx.month}{where}")
        out.append(f"             then, once the bureau has signed the reconciliation: doudi release --month "
                   f"{ctx.month}{where} --by <name>")
    return out
