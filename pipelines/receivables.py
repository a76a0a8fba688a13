"""Corrections auditors record by hand: a registry entry withdrawn as an error, and what became of
a receivable (应追缴). Both are appended to the warehouse with who, when and why; nothing here
changes a ledger line.

- `doudi withdraw` records in `registry_withdrawal` that an entry of a registry (a death reported in
  error) is withdrawn from a payroll month on. From that payroll, integrity no longer applies it:
  the person is paid again, and the months withheld because of it are owed and paid as arrears.
  The receivables it created are shown as withdrawn (view `receivable_status`).
- `doudi recover` records in `receivable_recovery` a refund received or an amount written off (with
  its reason) against a receivable. Nothing is netted against a later payment.
"""

from __future__ import annotations

import datetime
import hashlib
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pipelines.idnumbers import mask_id
from pipelines.months import parse_month
from pipelines.settings import RunError
from pipelines.sqlrun import open_database, tables_in

WITHDRAWAL_COLUMNS = ("withdrawal_id VARCHAR, registry VARCHAR, id_number VARCHAR, reported_month VARCHAR, "
                      "effective_payroll VARCHAR, withdrawn_by VARCHAR, withdrawn_at VARCHAR, reason VARCHAR")
REGISTRIES = ("deaths", "public_payroll", "vehicles", "businesses")  # contract section 3; integrity reads them
RECOVERY_KINDS = ("refund", "written_off")
RECOVERY_COLUMNS = ("recovery_id VARCHAR, receivable_id VARCHAR, kind VARCHAR, amount DECIMAL(18, 2), "
                    "recorded_by VARCHAR, recorded_at VARCHAR, reason VARCHAR")
RECEIVABLE_STATUS_VIEW = """
CREATE OR REPLACE VIEW receivable_status AS
SELECT r.*,
       coalesce(x.recovered, 0)                                  AS recovered,
       r.amount - coalesce(x.recovered, 0)                       AS outstanding,
       CASE WHEN w.withdrawal_id IS NOT NULL THEN 'withdrawn'
            WHEN coalesce(x.recovered, 0) >= r.amount THEN 'settled'
            ELSE 'open' END                                      AS status
FROM receivable r
LEFT JOIN (SELECT receivable_id, sum(amount) AS recovered FROM receivable_recovery GROUP BY 1) x
       USING (receivable_id)
LEFT JOIN (SELECT id_number, min(withdrawal_id) AS withdrawal_id FROM registry_withdrawal
           WHERE registry = 'deaths' GROUP BY 1) w USING (id_number)
"""


def _now(now: datetime.datetime | None) -> str:
    return (now or datetime.datetime.now(datetime.UTC)).isoformat(timespec="seconds")


def _open(warehouse: Path):
    if not Path(warehouse).exists():
        raise RunError(f"no warehouse at {warehouse}: publish a month first (doudi run)")
    return open_database(warehouse)


def ensure_tables(con) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS registry_withdrawal ({WITHDRAWAL_COLUMNS})")
    con.execute(f"CREATE TABLE IF NOT EXISTS receivable_recovery ({RECOVERY_COLUMNS})")
    if "receivable" in tables_in(con):
        con.execute(RECEIVABLE_STATUS_VIEW)


def record_withdrawal(warehouse: Path, payroll_month: str, registry: str, id_number: str, reported_month: str,
                      withdrawn_by: str, reason: str, now: datetime.datetime | None = None) -> dict:
    payroll_month, reported_month = parse_month(payroll_month), parse_month(reported_month)
    pid = id_number.strip().upper()
    if registry not in REGISTRIES:
        raise RunError(f"registry {registry!r} is not one doudi reads (choose from {', '.join(REGISTRIES)})")
    if not withdrawn_by.strip() or not reason.strip():
        raise RunError("a withdrawal needs who withdraws it (--by) and why (--reason)")
    con = _open(warehouse)
    try:
        found = con.execute("SELECT count(*) FROM registry_entry WHERE registry = ? AND id_number = ? "
                            "AND payroll_month = ?", [registry, pid, reported_month]).fetchone()[0]
        if not found:
            raise RunError(f"no {registry} entry for {mask_id(pid)} was reported in {reported_month}: "
                           "nothing withdrawn")
        at = _now(now)
        key = "|".join([registry, pid, reported_month, payroll_month, withdrawn_by, at])
        record = {"withdrawal_id": hashlib.sha256(key.encode()).hexdigest()[:16], "registry": registry,
                  "id_number": pid, "reported_month": reported_month, "effective_payroll": payroll_month,
                  "withdrawn_by": withdrawn_by.strip(), "withdrawn_at": at, "reason": reason.strip()}
        con.execute("BEGIN")
        ensure_tables(con)
        con.execute("INSERT INTO registry_withdrawal VALUES (?, ?, ?, ?, ?, ?, ?, ?)", list(record.values()))
        con.execute("COMMIT")
    finally:
        con.close()
    return record


def record_recovery(warehouse: Path, receivable_id: str, kind: str, amount: str, recorded_by: str, reason: str,
                    now: datetime.datetime | None = None) -> dict:
    if kind not in RECOVERY_KINDS:
        raise RunError(f"--kind must be one of {', '.join(RECOVERY_KINDS)}, not {kind!r}")
    try:
        value = Decimal(amount.replace(",", "")).quantize(Decimal("0.01"))
    except InvalidOperation as exc:
        raise RunError(f"--amount {amount!r} is not an amount in yuan") from exc
    if value <= 0:
        raise RunError("--amount must be positive")
    if not recorded_by.strip() or not reason.strip():
        raise RunError("a recovery needs who records it (--by) and why (--reason)")
    con = _open(warehouse)
    try:
        ensure_tables(con)
        row = con.execute("SELECT outstanding, status FROM receivable_status WHERE receivable_id = ?",
                          [receivable_id]).fetchone()
        if row is None:
            raise RunError(f"no receivable {receivable_id!r} in {warehouse}")
        if row[1] != "open" or value > row[0]:
            raise RunError(f"receivable {receivable_id} is {row[1]} with {row[0]} yuan outstanding: "
                           f"{value} cannot be recorded against it")
        at = _now(now)
        key = "|".join([receivable_id, kind, str(value), recorded_by, at])
        record = {"recovery_id": hashlib.sha256(key.encode()).hexdigest()[:16], "receivable_id": receivable_id,
                  "kind": kind, "amount": value, "recorded_by": recorded_by.strip(), "recorded_at": at,
                  "reason": reason.strip()}
        con.execute("BEGIN")
        con.execute("INSERT INTO receivable_recovery VALUES (?, ?, ?, ?, ?, ?, ?)", list(record.values()))
        con.execute("COMMIT")
    finally:
        con.close()
    return record
