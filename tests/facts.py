"""The facts every finished month must satisfy (issue: the monthly run, done-when), checked the way
finance reads them: from the payout files on disk, the manifest and the warehouse."""

from __future__ import annotations

import csv
import hashlib
import json
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.settings import ROSTER_PROGRAMS
from tests.helpers import query


def assert_month_facts(out: Path, warehouse: Path, month: str) -> None:
    manifest = json.loads((out / month / "payouts" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["payroll_month"] == month
    csv_files = [f for f in manifest["files"] if f["format"] == "csv"]
    assert csv_files, "the CSV rendering always exists"
    refs: set[str] = set()
    total = Decimal("0")
    for f in manifest["files"]:
        data = (out / month / "payouts" / f["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"], f["name"]
    for f in csv_files:
        with open(out / month / "payouts" / f["name"], encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == f["count"]
        file_sum = sum(Decimal(r["amount"]) for r in rows)
        assert f"{file_sum:.2f}" == f["sum"]
        total += file_sum
        refs.update(r["payment_ref"] for r in rows)
    ledger_sum, ledger_refs = query(
        warehouse, "SELECT sum(amount), count(DISTINCT payment_ref) FROM payment_ledger "
                   "WHERE payroll_month = ? AND status = 'payable'", [month])[0]
    assert total == ledger_sum, "CSV sums equal the month's payable lines"
    assert len(refs) == ledger_refs, "record count equals the distinct payment_refs"
    assert sum(f["count"] for f in csv_files) == len(refs), "payment_refs are unique across files"
    # one row_disposition row per delivered roster row
    delivered = 0
    for prog in ROSTER_PROGRAMS:  # the four monthly rosters and temporary assistance
        files = pq.read_table(out / month / "_work" / "ingest" / f"{prog}.files.parquet").to_pylist()
        delivered += sum(f["rows"] for f in files)
    judged, distinct_rows = query(
        warehouse, "SELECT count(*), count(DISTINCT (source_file, source_row)) FROM row_disposition "
                   "WHERE payroll_month = ?", [month])[0]
    assert judged == delivered == distinct_rows
    bad = query(warehouse, "SELECT count(*) FROM row_disposition WHERE payroll_month = ? AND "
                           "disposition NOT IN ('accepted', 'quarantined', 'duplicate')", [month])[0][0]
    assert bad == 0


def assert_never_paid_twice(warehouse: Path) -> None:
    twice = query(warehouse, """
        SELECT id_number, program, service_month, line_type, approval_no, count(*) FROM payment_ledger
        WHERE status = 'payable' GROUP BY ALL HAVING count(*) > 1""")  # a one_off line is one case: its approval
    assert twice == []
    price_twice = query(warehouse, """
        SELECT id_number, service_month FROM payment_ledger WHERE status = 'payable' AND line_type = 'price_subsidy'
        GROUP BY ALL HAVING count(*) > 1""")
    assert price_twice == []


def assert_arrears_and_price(warehouse: Path) -> None:
    arrears_months = {r[0] for r in query(
        warehouse, "SELECT DISTINCT service_month FROM payment_ledger WHERE payroll_month = '2020-04' "
                   "AND line_type = 'arrears' AND arrears_cause = 'raise_back_pay'")}
    assert arrears_months == {"2020-01", "2020-02", "2020-03"}
    # March's price subsidy is doubled: each line = standard × CPI(2020-02) 5.2% × 2, to the fen
    rows = query(warehouse, "SELECT amount, inputs FROM payment_ledger WHERE payroll_month = '2020-03' "
                            "AND service_month = '2020-03' AND line_type = 'price_subsidy'")
    assert rows
    for amount, inputs in rows:
        i = json.loads(inputs)
        assert Decimal(str(i["multiplier"])) == 2 and Decimal(str(i["rate"])) == Decimal("5.2")
        expected = (Decimal(str(i["dibao_standard"])) * Decimal("5.2") * 2 / 100).quantize(Decimal("0.01"),
                                                                                             "ROUND_HALF_UP")
        assert amount == expected
