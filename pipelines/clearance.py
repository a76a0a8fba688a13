"""Clearing held payments (issue 4): a caseworker reviews a hold and decides the payment may go.

A line held for review (status `held`: the household head is in the death registry, the account is
not in the payee's name) stays owed. `doudi clear` records, in the warehouse table
`hold_clearance`, who cleared which hold of which person and program, when, and for which payroll
months. The integrity stage of those payrolls then waives that hold (finding `hold_cleared`), and
the payment engine releases every earlier held month with the line (`arrears`, cause
`held_released`), paid once.

Only holds decided by the integrity checks can be cleared this way; `arrears_top_up_review` is an
engine decision about an amount and needs a corrected standards table instead.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
from pathlib import Path

from pipelines.idnumbers import mask_id
from pipelines.months import parse_month
from pipelines.settings import RunError

# account_conflict_in_file: clearing it pays the account of the person's first row in the file
# temporary assistance: clearing a held case pays it once, in the first payroll the clearance covers
CLEARABLE_HOLDS = ("household_head_deceased", "account_holder_mismatch", "guardian_deceased",
                   "account_conflict_in_file", "temporary_above_cap", "temporary_case_by_case_missing",
                   "temporary_repeat_within_12_months", "temporary_recipient_deceased")
# the programs a clearance may name: the rosters' and the ledger's (`doudi explain` shows the latter)
ROSTER_PROGRAM_OF = {"disability_living": "disability", "disability_nursing": "disability"}
CLEARABLE_PROGRAMS = ("dibao", "tekun", "orphan", "disability", "disability_living", "disability_nursing", "temporary")
CLEARANCE_COLUMNS = ("clearance_id VARCHAR, program VARCHAR, id_number VARCHAR, hold_reason VARCHAR, "
                     "effective_payroll VARCHAR, through_payroll VARCHAR, cleared_by VARCHAR, cleared_at VARCHAR, "
                     "note VARCHAR")


def read_clearance_file(path: Path) -> list[dict]:
    """A CSV with columns program, id_number, hold_reason and optionally note, through_payroll."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    need = {"program", "id_number", "hold_reason"}
    if rows and not need <= set(rows[0]):
        raise RunError(f"{path}: clearance file needs columns {sorted(need)}, has {sorted(rows[0])}")
    return rows


def record_clearances(warehouse: Path, payroll_month: str, items: list[dict], cleared_by: str,
                      now: datetime.datetime | None = None) -> list[dict]:
    """Check each clearance against the holds the warehouse recorded and append it; all or nothing."""

    from pipelines.sqlrun import open_database

    payroll_month = parse_month(payroll_month)
    if not cleared_by.strip():
        raise RunError("a clearance needs the name of who clears it (--by)")
    if not Path(warehouse).exists():
        raise RunError(f"no warehouse at {warehouse}: nothing has been held yet")
    cleared_at = (now or datetime.datetime.now(datetime.UTC)).isoformat(timespec="seconds")
    records, problems = [], []
    con = open_database(warehouse)
    try:
        for n, item in enumerate(items, start=1):
            # the ledger's names of the two disability subsidies name the roster's program (a hold is
            # decided per roster row)
            program = ROSTER_PROGRAM_OF.get((item.get("program") or "").strip(), (item.get("program") or "").strip())
            pid = (item.get("id_number") or "").strip().upper()
            reason = (item.get("hold_reason") or "").strip()
            through = parse_month((item.get("through_payroll") or "").strip() or payroll_month)
            if reason not in CLEARABLE_HOLDS:
                problems.append(f"item {n}: hold reason {reason!r} cannot be cleared here "
                                f"(clearable: {', '.join(CLEARABLE_HOLDS)})")
                continue
            if through < payroll_month:
                problems.append(f"item {n}: through_payroll {through} is before the payroll {payroll_month}")
                continue
            held = con.execute(
                "SELECT count(*) FROM roster_row WHERE program = ? AND hold_reason = ? AND payroll_month <= ? "
                "AND (id_number = ? OR household_id IN (SELECT household_id FROM roster_row WHERE program = 'dibao' "
                "AND id_number = ?))", [program, reason, payroll_month, pid, pid]).fetchall()[0][0]
            if not held:
                problems.append(f"item {n}: no {program} payment of {mask_id(pid)} was held for "
                                f"{reason} up to {payroll_month}")
                continue
            key = "|".join([program, pid, reason, payroll_month, through, cleared_by, cleared_at])
            records.append({"clearance_id": hashlib.sha256(key.encode()).hexdigest()[:16], "program": program,
                            "id_number": pid, "hold_reason": reason, "effective_payroll": payroll_month,
                            "through_payroll": through, "cleared_by": cleared_by.strip(), "cleared_at": cleared_at,
                            "note": (item.get("note") or "").strip() or None})
        if problems:
            raise RunError("nothing recorded: " + "; ".join(problems))
        con.execute("BEGIN")
        con.execute(f"CREATE TABLE IF NOT EXISTS hold_clearance ({CLEARANCE_COLUMNS})")
        con.executemany("INSERT INTO hold_clearance VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [tuple(r.values()) for r in records])
        con.execute("COMMIT")
    finally:
        con.close()
    return records
