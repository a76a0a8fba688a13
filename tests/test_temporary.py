"""Temporary assistance (临时救助, issue 19): a fifth program, one-off and event-driven.

Policy is data (data/reference/temporary_assistance.csv, contract section 3): its rows are checked at
load like the other tables, and the `temporary` fund key is required wherever the policy is.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal as D

import pytest

from pipelines.reference import check_reference
from pipelines.settings import RunError
from tests.helpers import context, copy_reference, make_id, query, roster_path, run, write_csv


def _refused(tmp_path, ref, month="2020-01") -> str:
    with pytest.raises(RunError) as exc:
        check_reference(context(tmp_path, month, reference=ref))
    return str(exc.value)


def _append(ref, name, line):
    with open(ref / name, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


# --- step 1: the policy table ----------------------------------------------------------------------

def test_the_shipped_policy_is_accepted(tmp_path):
    assert check_reference(context(tmp_path, "2020-01"))["problems"] == 0


@pytest.mark.parametrize("line,words", [
    ("2101,因病,0,2000,5000,5000,2,v2,2020-02", "standard_months 0 is not a number above 0"),
    ("2101,因病,2,6000,5000,5000,2,v2,2020-02", "township_cap 6000.00 is above county_cap 5000.00"),
    ("2101,因病,2,2000,5000,,2,v2,2020-02", "case_by_case_threshold None is not an amount above 0"),
    ("2101,因病,2,2000,5000,5000,0,v2,2020-02", "max_per_12_months 0 is not a whole number of 1 or more"),
    ("2101,失火,2,2000,5000,5000,1,v2,2020-02", "event_type must be one of"),
    ("3101,因病,2,2000,5000,5000,1,v2,2020-02", "inside province 21"),
    ("21,因病,3,2000,5000,5000,2,v2,2020-01", "has 2 versions of 21/因病 with valid_from 2020-01"),
])
def test_a_broken_policy_row_is_refused_naming_it(tmp_path, line, words):
    ref = copy_reference(tmp_path)
    _append(ref, "temporary_assistance.csv", line)
    message = _refused(tmp_path, ref)
    assert "temporary_assistance.csv" in message and words in message, message


def test_the_policy_needs_its_own_fund_key(tmp_path):
    ref = copy_reference(tmp_path)
    path = ref / "fund_shares.csv"
    path.write_text("".join(ln for ln in path.read_text(encoding="utf-8").splitlines(keepends=True)
                            if not ln.startswith("temporary,")), encoding="utf-8")
    assert "fund_shares.csv has no temporary row in force for payroll 2020-01 covering county 210102" \
        in _refused(tmp_path, ref)
    # a folder without the policy table pays no temporary assistance, and needs no such key
    (ref / "temporary_assistance.csv").unlink()
    assert check_reference(context(tmp_path, "2020-01", reference=ref))["problems"] == 0


# --- step 2: the delivery --------------------------------------------------------------------------
# Contract section 2 headers, in Chinese as counties export them (救助金额 is the case's amount).
TEMP_ZH = ["行政区划代码", "姓名", "公民身份号码", "性别", "城乡类别", "开户银行", "银行账号", "户名", "家庭编号", "救助事由",
           "事由发生日期", "审批编号", "审批层级", "一事一议编号", "救助金额"]
T_C = "210112"  # 浑南区, Shenyang: the approving county of the cases below
# a migrant worker from Beijing (110101) and residents of the county
MIGRANT = {"id": make_id("110101", "19850101", 4), "name": "外省务工", "sex": "男"}
RESIDENT = {"id": make_id(T_C, "19700101", 5), "name": "本地居民", "sex": "男"}
WIDOW = {"id": make_id(T_C, "19720202", 6, male=False), "name": "病亡家属", "sex": "女"}


def case(p, event, approval_no, amount, level="乡镇", event_date="2020-01-05", household="", case_no="",
         county=T_C, holder=None):
    return [county, p["name"], p["id"], p["sex"], "城市", "中国工商银行", "6222" + p["id"][6:14] + "0009",
            holder or p["name"], household, event, event_date, approval_no, level, case_no, amount]


def temporary_file(inbox, month, rows, county=T_C, suffix=""):
    return write_csv(roster_path(inbox, month, "temporary", f"{county}_temporary_{month.replace('-', '')}{suffix}.csv"),
                     TEMP_ZH, rows)


def _through_integrity(tmp_path, month="2020-01"):
    from pipelines.ingest import ingest_program
    from pipelines.integrity import check_integrity
    from pipelines.settings import ROSTER_PROGRAMS
    from pipelines.validate import validate_program

    ctx = context(tmp_path, month)
    for program in ROSTER_PROGRAMS:
        ingest_program(ctx, program)
        validate_program(ctx, program)
    check_integrity(ctx)
    return ctx


def _rows(ctx, sql):
    import duckdb

    con = duckdb.connect()
    try:
        return con.execute(sql.replace("ROSTER", f"'{ctx.work_dir / 'integrity' / 'roster.parquet'}'")
                           .replace("FINDINGS", f"'{ctx.work_dir / 'integrity' / 'findings.parquet'}'")).fetchall()
    finally:
        con.close()


def test_every_case_row_ends_with_a_disposition_and_a_readable_reason(tmp_path):
    from pipelines.vocabulary import REASONS

    temporary_file(tmp_path / "inbox", "2020-01", [
        case(MIGRANT, "失业滞留", "LS2020-001", "600"),                 # another province's ID: accepted
        case(RESIDENT, "失火", "LS2020-002", "600"),                    # not an event of the vocabulary
        case(RESIDENT, "因病", "LS2020-003", "600", event_date="2020-02-01"),  # after the approval month
        case(RESIDENT, "因病", "", "600"),                              # no approval number
        case(RESIDENT, "因病", "LS2020-005", "600", level="省级"),      # not 乡镇/县级
        case(RESIDENT, "因病", "LS2020-006", "0"),                      # not above 0
        case(RESIDENT, "因病", "LS2020-007", "600", county="310112"),   # approving county outside Liaoning
        case(RESIDENT, "因病", "LS2020-008", "600", event_date="2020-13-01"),  # not a date
        case(RESIDENT, "因病", "LS2020-009", "1,200.50", event_date="2020年1月3日"),  # as typed: accepted
    ])
    ctx = _through_integrity(tmp_path)
    rows = _rows(ctx, "SELECT source_row, disposition, reasons FROM ROSTER WHERE program = 'temporary' "
                      "ORDER BY source_row")
    assert rows == [
        (1, "accepted", []), (2, "quarantined", ["EVENT_TYPE_INVALID"]), (3, "quarantined", ["EVENT_DATE_FUTURE"]),
        (4, "quarantined", ["APPROVAL_NO_MISSING"]), (5, "quarantined", ["APPROVAL_LEVEL_INVALID"]),
        (6, "quarantined", ["TEMPORARY_AMOUNT_INVALID"]), (7, "quarantined", ["REGION_UNKNOWN"]),
        (8, "quarantined", ["EVENT_DATE_INVALID"]), (9, "accepted", []),
    ]
    assert all(REASONS[code].message_zh for _, _, codes in rows for code in codes)
    (amount, event_date), = _rows(ctx, "SELECT approved_amount, event_date::VARCHAR FROM ROSTER WHERE source_row = 9")
    assert (amount, event_date) == (D("1200.50"), "2020-01-03")


def test_one_approval_delivered_twice_is_one_case(tmp_path):
    """The attack of docs/attack_findings_2026-12.md finding 1: the same approval again from another
    county, its number typed with spaces and in lower case."""
    inbox = tmp_path / "inbox"
    temporary_file(inbox, "2020-01", [case(MIGRANT, "失业滞留", "LS2020-001", "500")])
    temporary_file(inbox, "2020-01", [case(MIGRANT, "失业滞留", " ls2020-001 ", "500", county="210113")],
                   county="210113")
    ctx = _through_integrity(tmp_path)
    assert _rows(ctx, "SELECT source_file, disposition, duplicate_rule FROM ROSTER ORDER BY source_file") == [
        ("rosters/temporary/210112_temporary_202001.csv", "accepted", None),
        ("rosters/temporary/210113_temporary_202001.csv", "duplicate", "same_approval_no")]
    assert _rows(ctx, "SELECT finding_type FROM FINDINGS") == [("temporary_same_approval_no",)]


def test_a_case_no_policy_row_covers_stops_the_run(tmp_path):
    ref = copy_reference(tmp_path)
    path = ref / "temporary_assistance.csv"
    path.write_text("".join(ln for ln in path.read_text(encoding="utf-8").splitlines(keepends=True)
                            if "因灾" not in ln), encoding="utf-8")
    temporary_file(tmp_path / "inbox", "2020-01", [case(RESIDENT, "因灾", "LS2020-001", "500")])
    from pipelines.ingest import ingest_program
    from pipelines.integrity import check_integrity
    from pipelines.settings import ROSTER_PROGRAMS
    from pipelines.validate import validate_program

    ctx = context(tmp_path, "2020-01", reference=ref)
    for program in ROSTER_PROGRAMS:
        ingest_program(ctx, program)
        validate_program(ctx, program)
    with pytest.raises(RunError, match=r"temporary_assistance.csv has no row in force for payroll 2020-01 covering "
                                       r"county 210112 event 因灾 \(1 case\)"):
        check_integrity(ctx)

