"""Score a run against the generator's planted defects (ground_truth.csv): used by the tests and
by bench/ so both print the same figures.

Exact defects: recall per type (the row quarantined with the right reason, the duplicate with the
right rule, the file recognised, the finding written). Near-duplicates: pairs, recall and precision.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import duckdb
import pyarrow as pa

from pipelines.catalog import sql_string
from pipelines.sqlrun import table_from_arrow

ROW_REASON = {  # defect -> reason code on the row
    "bad_check_digit": "ID_CHECK_DIGIT",
    "household_size_mismatch": "HOUSEHOLD_SIZE_MISMATCH",
    "malformed_month": "MONTH_INVALID",
    "sex_mismatch": "SEX_MISMATCH",
    "bad_account": "BANK_ACCOUNT_INVALID",
    "negative_income": "HOUSEHOLD_INCOME_INVALID",
    "orphan_aged_out": "ORPHAN_AGED_OUT",
    "temporary_bad_event": "EVENT_TYPE_INVALID",
    "temporary_no_approval": "APPROVAL_NO_MISSING",
}
FINDING = {  # defect -> finding type
    "exclusive_programs": "exclusive_programs",
    "deceased_listed": "deceased_listed",
    "account_other_holder": "account_holder_mismatch",
    "dup_across_counties": "duplicate_across_counties",
    "on_public_payroll": "registry_public_payroll",
    "owns_vehicle": "registry_vehicle",
    "owns_business": "registry_business",
    "guardian_account_changed": "account_changed_with_holder",
    "temporary_above_cap": "temporary_above_cap",
    "temporary_repeat": "temporary_repeat_within_12_months",
    "temporary_deceased": "temporary_deceased_before_event",
}
# planted cases that must be accepted and paid: a one_off line, payable, for the approval
PAID_ONE_OFF = {"temporary_migrant"}
NEAR_DUPLICATES = {"id_typo", "id_swap"}
WATCH = {  # defect -> watch-list rule (issue 20): the person must be on that month's watch list
    "watch_income_drop": "income_drop",
    "watch_household_size_change": "household_size_change",
    "watch_low_income_unassisted": "low_income_unassisted",
    "watch_near_standard": "near_standard",
    "watch_recent_exit": "recent_exit",
    "watch_orphan_ageing_out": "orphan_ageing_out",
    "watch_age_threshold": "age_threshold",
}
VISIT = {  # defect -> visit-list rule: the person must be on that month's visit list
    "visit_tekun_dispersed": "tekun_dispersed",
    "visit_dibao_elderly_alone": "dibao_elderly_alone",
    "visit_dispersed_orphan": "dispersed_orphan",
    "visit_nursing_subsidy": "nursing_subsidy",
    "visit_dibao_ill_or_disabled": "dibao_ill_or_disabled",
}


def read_truth(inbox: Path) -> list[dict]:
    with open(Path(inbox) / "ground_truth.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def exact_recall(truth: list[dict], warehouse: Path) -> dict[str, tuple[float, int]]:
    """defect type -> (recall, planted count), over the months the warehouse holds."""
    # the planted people's rows, read once: a query a planted case over the month files would read
    # the whole month each time (thousands of cases at province scale)
    con = duckdb.connect()
    con.execute(f"ATTACH '{sql_string(str(warehouse))}' AS w (READ_ONLY)")
    table_from_arrow(con, "truth_ids", pa.table({"id_number": sorted({t["id_number"] for t in truth})}), temp=True)
    for table in ("row_disposition", "finding", "payment_ledger"):
        con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM w.{table} "
                    "WHERE id_number IN (SELECT id_number FROM truth_ids)")
    con.execute("CREATE TEMP TABLE source_file AS SELECT * FROM w.source_file")
    months = {r[0] for r in con.execute("SELECT DISTINCT payroll_month FROM w.row_disposition").fetchall()}

    def q(sql, params):
        return con.execute(sql, params).fetchall()

    found: dict[str, list[bool]] = defaultdict(list)
    try:
        for t in truth:
            month, defect, program, pid = t["month"], t["defect"], t["program"], t["id_number"]
            if defect in NEAR_DUPLICATES or defect in WATCH or defect in VISIT or month not in months:
                continue
            if defect in ROW_REASON:
                reasons = q("SELECT reason_codes FROM row_disposition WHERE payroll_month = ? AND program = ? "
                            "AND id_number = ? AND disposition = 'quarantined'", [month, program, pid])
                found[defect].append(any(ROW_REASON[defect] in r[0] for r in reasons))
            elif defect == "dup_in_file":
                rows = q("SELECT duplicate_rule FROM row_disposition WHERE payroll_month = ? AND program = ? "
                         "AND id_number = ? AND disposition = 'duplicate'", [month, program, pid])
                found[defect].append(("same_person_same_file",) in rows)
            elif defect == "duplicate_delivery":
                status = q("SELECT status, duplicate_of FROM source_file WHERE payroll_month = ? AND source_file = ?",
                           [month, t["file"]])
                found[defect].append(status == [("duplicate_delivery", t["detail"])])
            elif defect == "corrected_file":
                status = q("SELECT status, superseded_by FROM source_file WHERE payroll_month = ? "
                           "AND source_file = ?", [month, t["file"]])
                found[defect].append(status == [("superseded", t["detail"])])
            elif defect in PAID_ONE_OFF:
                rows = q("SELECT count(*) FROM payment_ledger l JOIN row_disposition d ON d.payroll_month = "
                         "l.payroll_month AND d.source_file = l.source_file AND d.source_row = l.source_row "
                         "WHERE l.payroll_month = ? AND l.program = 'temporary' AND l.line_type = 'one_off' "
                         "AND l.status = 'payable' AND l.id_number = ? AND l.approval_no = ? "
                         "AND d.disposition = 'accepted'", [month, pid, t["detail"]])[0][0]
                found[defect].append(rows == 1)
            elif defect in FINDING:
                hits = q("SELECT count(*) FROM finding WHERE payroll_month = ? AND finding_type = ? "
                         "AND id_number = ?", [month, FINDING[defect], pid])[0][0]
                found[defect].append(hits > 0)
            else:
                raise ValueError(f"ground truth names a defect this scorer does not know: {defect}")
    finally:
        con.close()
    return {d: (sum(v) / len(v), len(v)) for d, v in sorted(found.items())}


def near_duplicate_scores(truth: list[dict], warehouse: Path) -> dict:
    """Planted pairs against near_duplicate findings (unordered ID pairs per month)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        months = {r[0] for r in con.execute("SELECT DISTINCT payroll_month FROM row_disposition").fetchall()}
        found = {(m, frozenset((a, b))) for m, a, b in con.execute(
            "SELECT payroll_month, id_number, related_id_number FROM finding "
            "WHERE finding_type = 'near_duplicate'").fetchall()}
    finally:
        con.close()
    planted = {(t["month"], frozenset((t["id_number"], t["related_id"])))
               for t in truth if t["defect"] in NEAR_DUPLICATES and t["month"] in months}
    hit = len(planted & found)
    return {"planted": len(planted), "found": len(found),
            "recall": hit / len(planted) if planted else None,
            "precision": hit / len(found) if found else None}


def watch_recall(truth: list[dict], analyst_db: Path, key_file: Path) -> dict[str, tuple[float, int]]:
    """Planted watch-list and visit-list cases against the analyst database's a_fact_watch and
    a_fact_visit (pseudonymised: the planted ID is keyed with the same secret), over the months it
    holds: the person must be on that month's list under the planted rule."""
    from pipelines.analyst import pseudonym

    secret = bytes.fromhex(Path(key_file).read_text(encoding="ascii").strip())
    con = duckdb.connect(str(analyst_db), read_only=True)
    try:
        listed = {table: set(con.execute(f"SELECT payroll_month, rule, person_key FROM {table}").fetchall())
                  for table in ("a_fact_watch", "a_fact_visit")}
        months = {r[0] for r in con.execute("SELECT DISTINCT payroll_month FROM a_fact_payment").fetchall()}
    finally:
        con.close()
    found: dict[str, list[bool]] = defaultdict(list)
    for t in truth:
        for table, rules in (("a_fact_watch", WATCH), ("a_fact_visit", VISIT)):
            if t["defect"] in rules and t["month"] in months:
                key = pseudonym(secret, "person", t["id_number"])
                found[t["defect"]].append((t["month"], rules[t["defect"]], key) in listed[table])
    return {d: (sum(v) / len(v), len(v)) for d, v in sorted(found.items())}
