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


# --- steps 3 and 4: integrity, the engine, golden months -------------------------------------------
# Hand arithmetic, shipped reference data (temporary_assistance.csv rows of province 21, v1 from
# 2020-01; 浑南区 210112 is in Shenyang, whose dibao standard is 655.00 urban / 450.00 rural until the
# 2020 raise is first paid in April):
#   因病       2 months, township cap 2000.00, county cap 5000.00, threshold 5000.00, twice in 12 months
#   疫情确诊   2 months, caps 2000.00 / 5000.00, once in 12 months
#   失业滞留   1 month
#   病亡       3 months, caps 3000.00 / 8000.00
#   standard (shown beside the amount): 因病 urban 2 × 655.00 = 1310.00; 失业滞留 1 × 655.00 = 655.00
#   fund key temporary 0 / 0.50 / 0.20 / 0.30: 2000.00 → 0.00 / 1000.00 / 400.00 / 600.00
def _person(seq, birth="19700101", male=True, region=T_C):
    return {"id": make_id(region, birth, seq, male), "name": f"临时{seq}", "sex": "男" if male else "女"}


def one_offs(wh, month=None):
    where = "WHERE line_type = 'one_off'" + (f" AND payroll_month = '{month}'" if month else "")
    return query(wh, f"SELECT payroll_month, approval_no, status, hold_reason, amount FROM payment_ledger {where} "
                     "ORDER BY payroll_month, approval_no")


def findings(wh, month, prefix="temporary_"):
    return query(wh, "SELECT finding_type, severity, action, id_number FROM finding WHERE payroll_month = ? "
                     "AND finding_type LIKE ? ORDER BY finding_type, id_number", [month, prefix + "%"])


def temporary_workbook(tmp_path, month="2020-01") -> dict[str, list[tuple]]:
    """reports/temporary_assistance.xlsx as {sheet: its rows}, read back with openpyxl."""
    import openpyxl

    wb = openpyxl.load_workbook(tmp_path / "out" / month / "reports" / "temporary_assistance.xlsx", read_only=True)
    def cells(row):  # read_only pads every row to the sheet's width
        row = list(row)
        while row and row[-1] is None:
            row.pop()
        return tuple(row)

    return {ws.title: [cells(r) for r in ws.iter_rows(values_only=True)] for ws in wb.worksheets}


def case_rows(sheet: list[tuple]) -> dict[str, dict]:
    """The case table of a county's sheet, by approval number, each case as {column: value}."""
    from pipelines.report import TEMPORARY_CASE_COLUMNS

    start = next(i for i, r in enumerate(sheet) if list(r[:len(TEMPORARY_CASE_COLUMNS)]) == TEMPORARY_CASE_COLUMNS)
    cases = {}
    for r in sheet[start + 1:]:
        if not r:
            break
        padded = r + (None,) * (len(TEMPORARY_CASE_COLUMNS) - len(r))
        cases[r[0]] = dict(zip(TEMPORARY_CASE_COLUMNS, padded, strict=True))
    return cases


def test_caps_by_approving_level_and_the_case_by_case_number(tmp_path):
    p = [_person(i) for i in range(50, 56)]
    temporary_file(tmp_path / "inbox", "2020-01", [
        case(p[0], "因病", "LS-A", "2000.00"),                          # township, at its cap: paid
        case(p[1], "因病", "LS-B", "2000.01"),                          # a fen above it: held
        case(p[2], "因病", "LS-C", "2000.01", level="县级"),            # a county may: paid
        case(p[3], "因病", "LS-D", "5000.01", level="县级"),            # above the county's cap: held
        case(p[4], "因病", "LS-E", "5000.01", level="县级", case_no="YSYY-2020-01"),  # 一事一议: paid
        case(p[5], "因病", "LS-F", "2000.01", case_no="YSYY-2020-02"),  # a township's, 一事一议: paid
    ])
    result = run(tmp_path, "2020-01")
    wh = tmp_path / "warehouse.duckdb"
    assert one_offs(wh) == [
        ("2020-01", "LS-A", "payable", None, D("2000.00")),
        ("2020-01", "LS-B", "held", "temporary_above_cap", D("2000.01")),
        ("2020-01", "LS-C", "payable", None, D("2000.01")),
        ("2020-01", "LS-D", "held", "temporary_above_cap", D("5000.01")),
        ("2020-01", "LS-E", "payable", None, D("5000.01")),
        ("2020-01", "LS-F", "payable", None, D("2000.01")),
    ]
    # the line explains itself: the approved amount, the standard (2 × 655.00) beside it, both versions
    (versions, formula, inputs, funds), = query(wh, "SELECT rule_versions, formula, inputs, [fund_central, "
                                                   "fund_provincial, fund_city, fund_county] FROM payment_ledger "
                                                   "WHERE approval_no = 'LS-A'")
    assert versions == ["temporary_assistance/21/因病@2020-01#v1", "dibao/standard/2101/城市/*@2018-07"]
    assert "核定救助金额 2000.00 元；标准 2.00 个月 × 低保标准 655.00 = 1310.00 元" in formula
    assert json.loads(inputs)["standard_amount"] == 1310.0 and json.loads(inputs)["level_cap"] == 2000.0
    assert funds == [D("0.00"), D("1000.00"), D("400.00"), D("600.00")]
    assert [f[0] for f in findings(wh, "2020-01")] == ["temporary_above_cap"] * 2
    # paid through the month's payout batch, and the books balance to the fen
    assert result["report"]["checks"] == "balanced"
    (count, total), = query(wh, "SELECT sum(count), sum(sum) FROM payout_file WHERE payroll_month = '2020-01' "
                                "AND format = 'csv'")
    assert (count, total) == (4, D("2000.00") + D("2000.01") + D("5000.01") + D("2000.01"))
    # the county's sheet: the cases by event, each against the cap of the level that approved it
    book = temporary_workbook(tmp_path)
    assert list(book) == [f"{T_C} 浑南区"]
    sheet = book[f"{T_C} 浑南区"]
    assert ("因病", 6, 2000.00 + 2000.01 + 5000.01 + 2000.01, 2000.01 + 5000.01) in sheet
    assert ("一事一议案件", 2) in sheet and ("超过审批层级限额", 4) in sheet and ("外省人员", 0) in sheet
    cases = case_rows(sheet)
    assert {k: (v["审批层级"], v["核定金额"], v["审批层级限额"], v["一事一议编号"], v["状态"]) for k, v in cases.items()} == {
        "LS-A": ("乡镇", 2000.00, 2000.00, None, "发放"), "LS-B": ("乡镇", 2000.01, 2000.00, None, "暂停"),
        "LS-C": ("县级", 2000.01, 5000.00, None, "发放"), "LS-D": ("县级", 5000.01, 5000.00, None, "暂停"),
        "LS-E": ("县级", 5000.01, 5000.00, "YSYY-2020-01", "发放"),
        "LS-F": ("乡镇", 2000.01, 2000.00, "YSYY-2020-02", "发放")}
    assert cases["LS-A"]["标准金额（月数×低保标准）"] == 1310.00
    assert all(p[i]["id"] not in str(sheet) for i in range(6))  # ID numbers masked
    assert [r[0] for r in sheet if r and str(r[0]).startswith("临时救助金额超过")] == [
        "临时救助金额超过审批层级限额且无一事一议编号，暂停待核（temporary_above_cap）"] * 2


def test_the_case_by_case_threshold_holds_below_the_county_cap(tmp_path):
    ref = copy_reference(tmp_path)
    path = ref / "temporary_assistance.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("21,因病,2,2000,5000,5000,2", "21,因病,2,2000,5000,3000,2"),
                    encoding="utf-8")
    p = [_person(i) for i in range(60, 63)]
    temporary_file(tmp_path / "inbox", "2020-01", [
        case(p[0], "因病", "LS-T1", "3000.00", level="县级"),   # at the threshold: paid
        case(p[1], "因病", "LS-T2", "3000.01", level="县级"),   # above it, within the county cap: held
        case(p[2], "因病", "LS-T3", "3000.01", level="县级", case_no="YSYY-9"),
    ])
    run(tmp_path, "2020-01", reference=ref)
    assert one_offs(tmp_path / "warehouse.duckdb") == [
        ("2020-01", "LS-T1", "payable", None, D("3000.00")),
        ("2020-01", "LS-T2", "held", "temporary_case_by_case_missing", D("3000.01")),
        ("2020-01", "LS-T3", "payable", None, D("3000.01")),
    ]


def test_the_repeat_window_counts_the_household_across_months(tmp_path):
    inbox = tmp_path / "inbox"
    a, b, c = _person(70), _person(71, male=False), _person(72)
    # household HT1 (two members) twice for 因病 in January: the policy allows two in 12 months
    temporary_file(inbox, "2020-01", [
        case(a, "因病", "LS-R1", "800", household="HT1", event_date="2020-01-03"),
        case(b, "因病", "LS-R2", "800", household="HT1", event_date="2020-01-10"),
        # no household number: the person is the household; 疫情确诊 once in 12 months
        case(c, "疫情确诊", "LS-R3", "600", event_date="2020-01-02"),
        case(c, "疫情确诊", "LS-R4", "600", event_date="2020-01-20"),
    ])
    run(tmp_path, "2020-01")
    # February: a third 因病 case of HT1 (the third in the window), and another event for the same person
    temporary_file(inbox, "2020-02", [
        case(a, "因病", "LS-R5", "800", household="HT1", event_date="2020-02-03"),
        case(c, "因灾", "LS-R6", "600", event_date="2020-02-03"),
    ])
    run(tmp_path, "2020-02")
    wh = tmp_path / "warehouse.duckdb"
    assert one_offs(wh) == [
        ("2020-01", "LS-R1", "payable", None, D("800.00")),
        ("2020-01", "LS-R2", "payable", None, D("800.00")),
        ("2020-01", "LS-R3", "payable", None, D("600.00")),
        ("2020-01", "LS-R4", "held", "temporary_repeat_within_12_months", D("600.00")),
        ("2020-02", "LS-R5", "held", "temporary_repeat_within_12_months", D("800.00")),
        ("2020-02", "LS-R6", "payable", None, D("600.00")),
    ]
    (detail,), = query(wh, "SELECT detail FROM finding WHERE payroll_month = '2020-02' "
                           "AND finding_type = 'temporary_repeat_within_12_months'")
    assert "12个月内第 3 次，规定至多 2 次" in detail


def test_a_person_from_another_province_is_paid_under_the_approving_county(tmp_path):
    temporary_file(tmp_path / "inbox", "2020-01", [case(MIGRANT, "失业滞留", "LS-M1", "655")])
    run(tmp_path, "2020-01")
    wh = tmp_path / "warehouse.duckdb"
    assert query(wh, "SELECT disposition, reason_codes FROM row_disposition WHERE program = 'temporary'") == \
        [("accepted", [])]
    (region, amount, id_number, formula), = query(wh, "SELECT region_code, amount, id_number, formula "
                                                      "FROM payment_ledger WHERE line_type = 'one_off'")
    assert (region, amount, id_number[:6]) == (T_C, D("655.00"), "110101")
    assert "标准 1.00 个月 × 低保标准 655.00 = 655.00 元" in formula
    sheet = temporary_workbook(tmp_path)[f"{T_C} 浑南区"]
    assert case_rows(sheet)["LS-M1"]["外省人员"] == "是" and ("外省人员", 1) in sheet


def test_the_dead_before_the_event_are_not_paid_and_after_it_held(tmp_path):
    inbox = tmp_path / "inbox"
    temporary_file(inbox, "2020-01", [
        case(RESIDENT, "因病", "LS-D1", "500", event_date="2020-01-05"),
        case(WIDOW, "病亡", "LS-D2", "2500", event_date="2020-01-05"),
    ])
    write_csv(inbox / "2020-01" / "registry" / "deaths.csv", ["id_number", "name", "death_date", "source"], [
        [RESIDENT["id"], RESIDENT["name"], "2019-12-20", "公安"],   # before the event: no case to pay
        [WIDOW["id"], WIDOW["name"], "2020-01-08", "公安"],         # after it: whose account, a caseworker says
    ])
    run(tmp_path, "2020-01")
    wh = tmp_path / "warehouse.duckdb"
    assert one_offs(wh) == [("2020-01", "LS-D2", "held", "temporary_recipient_deceased", D("2500.00"))]
    assert findings(wh, "2020-01") == [
        ("temporary_deceased_before_event", "warning", "not_paid", RESIDENT["id"]),
        ("temporary_recipient_deceased", "error", "held", WIDOW["id"]),
    ]


def test_a_one_off_is_paid_once_across_a_rerun_and_the_next_month(tmp_path):
    inbox = tmp_path / "inbox"
    rows = [case(RESIDENT, "因病", "LS-P1", "900")]
    temporary_file(inbox, "2020-01", rows)
    run(tmp_path, "2020-01")
    wh = tmp_path / "warehouse.duckdb"
    first = query(wh, "SELECT line_id, amount, payment_ref FROM payment_ledger WHERE line_type = 'one_off'")
    run(tmp_path, "2020-01")  # a rerun replaces the month: the same one line
    assert query(wh, "SELECT line_id, amount, payment_ref FROM payment_ledger WHERE line_type = 'one_off'") == first
    # February's county file carries the January case again, and a new one
    temporary_file(inbox, "2020-02", rows + [case(WIDOW, "因病", "LS-P2", "700")])
    run(tmp_path, "2020-02")
    run(tmp_path, "2020-02")
    assert one_offs(wh) == [("2020-01", "LS-P1", "payable", None, D("900.00")),
                            ("2020-02", "LS-P2", "payable", None, D("700.00"))]
    assert findings(wh, "2020-02") == [("temporary_already_paid", "warning", "not_paid", RESIDENT["id"])]


def test_a_recipient_on_dibao_this_month_is_paid_and_reported(tmp_path):
    from tests.test_engine_golden import DIBAO, C, common, person

    head = person(80, "19700101")
    inbox = tmp_path / "inbox"
    write_csv(roster_path(inbox, "2020-01", "dibao", f"{C}_dibao_202001.csv"), DIBAO,
              [common(head) + ["HD80", "户主", 1, "0", ""]])
    temporary_file(inbox, "2020-01", [case(head, "因病", "LS-O1", "500", county=C)], county=C)
    run(tmp_path, "2020-01")
    wh = tmp_path / "warehouse.duckdb"
    assert one_offs(wh) == [("2020-01", "LS-O1", "payable", None, D("500.00"))]
    assert findings(wh, "2020-01") == [("temporary_also_on_monthly_program", "info", "paid_and_flagged", head["id"])]
    (sheet,) = temporary_workbook(tmp_path).values()
    assert case_rows(sheet)["LS-O1"]["同时享受按月救助"] and ("同时享受按月救助", 1) in sheet
    assert case_rows(sheet)["LS-O1"]["外省人员"] is None and head["id"] not in str(sheet)
    # dibao 655 − 0 = 655.00 as ever, beside it
    assert query(wh, "SELECT amount FROM payment_ledger WHERE program = 'dibao' AND line_type = 'regular'") == \
        [(D("655.00"),)]


def test_a_month_without_a_temporary_folder_behaves_as_before(tmp_path):
    """The monthly programs' ledger is the same with or without temporary cases beside them, and their
    line keys are the ones the engine made before temporary assistance existed."""
    from tests.test_engine_golden import DIBAO, TEKUN, C, common, person

    head, elder = person(81, "19700101"), person(82, "19400101")
    ledgers = {}
    for variant in ("without", "with"):
        base = tmp_path / variant
        inbox = base / "inbox"
        write_csv(roster_path(inbox, "2020-01", "dibao", f"{C}_dibao_202001.csv"), DIBAO,
                  [common(head) + ["HD81", "户主", 1, "100", ""]])
        write_csv(roster_path(inbox, "2020-01", "tekun", f"{C}_tekun_202001.csv"), TEKUN,
                  [common(elder) + ["分散供养", "全自理", ""]])
        if variant == "with":
            temporary_file(inbox, "2020-01", [case(head, "因病", "LS-W1", "500", county=C)], county=C)
        run(base, "2020-01")
        ledgers[variant] = query(base / "warehouse.duckdb",
                                 "SELECT * EXCLUDE (payment_ref) FROM payment_ledger WHERE line_type <> 'one_off' "
                                 "ORDER BY line_id")
    assert ledgers["with"] == ledgers["without"]
    wh = tmp_path / "without" / "warehouse.duckdb"
    # 655 − 100 = 555.00 dibao; tekun 852.00 + 100.00 = 952.00; price subsidies 655 × 4.5% = 29.48 each
    assert query(wh, "SELECT program, line_type, amount FROM payment_ledger ORDER BY ALL") == [
        ("dibao", "price_subsidy", D("29.48")), ("dibao", "regular", D("555.00")),
        ("tekun", "price_subsidy", D("29.48")), ("tekun", "regular", D("952.00"))]
    # the line key as before: md5 of payroll, service month, program, line type and person
    for line_id, program, line_type, id_number in query(
            wh, "SELECT line_id, program, line_type, id_number FROM payment_ledger"):
        assert line_id == hashlib.md5(f"2020-01|2020-01|{program}|{line_type}|{id_number}".encode()).hexdigest()
    assert query(wh, "SELECT count(*) FROM row_disposition WHERE program = 'temporary' OR source_file LIKE "
                     "'rosters/temporary/%'") == [(0,)]
    assert query(wh, "SELECT count(*) FROM source_file WHERE program = 'temporary'") == [(0,)]
    assert query(wh, "SELECT count(*) FROM finding WHERE finding_type LIKE 'temporary_%'") == [(0,)]


def test_a_county_s_case_count_may_swing_from_month_to_month(tmp_path):
    """Cases come as events do: 60 in January and 1 in February is no sign of a lost file (the row-swing
    check of the monthly rosters, 50% above 50 rows, does not apply)."""
    from pipelines.ingest import ingest_program
    from pipelines.warehouse import previous_file_counts

    inbox = tmp_path / "inbox"
    temporary_file(inbox, "2020-01", [case(_person(100 + i), "因病", f"LS-S{i:02d}", "300") for i in range(60)])
    run(tmp_path, "2020-01")
    temporary_file(inbox, "2020-02", [case(_person(200), "因病", "LS-S99", "300")])
    ctx = context(tmp_path, "2020-02")
    assert previous_file_counts(ctx).get("temporary") == {T_C: 60}
    assert ingest_program(ctx, "temporary", previous_file_counts(ctx)["temporary"])["files_by_status"] == {"loaded": 1}


@pytest.mark.unit
def test_every_figure_of_the_shipped_policy_is_named_illustrative_in_sources():
    """data/reference/SOURCES.md: no row of temporary_assistance.csv carries a document number, so its
    section names each figure of the file, and every line of it says illustrative."""
    import csv
    import re

    from pipelines.settings import DEFAULT_REFERENCE

    text = (DEFAULT_REFERENCE / "SOURCES.md").read_text(encoding="utf-8")
    section = text[text.index("## temporary_assistance.csv in detail"):]
    items = {m.group(1): m.group(2) for m in re.finditer(r"^- \*\*(\w+)\*\*.*?:(.*?)(?=^- |\Z)", section, re.M | re.S)}
    with open(DEFAULT_REFERENCE / "temporary_assistance.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert set(items) == set(rows[0]) - {"region_code", "event_type", "valid_from"}, items
    assert all("**illustrative**" in body for body in items.values()), items
    for r in rows:  # each figure as written there: months by event, caps in yuan with a thousands comma
        assert f"{r['event_type']} {r['standard_months']}" in items["standard_months"], r
        for column in ("township_cap", "county_cap", "case_by_case_threshold"):
            assert f"{int(r[column]):,}" in items[column], (column, r)
        times = {"1": "once for ", "2": "twice for "}[r["max_per_12_months"]]
        listed = items["max_per_12_months"].split(times)[1].split(",  ")[0].split(" per ")[0]
        assert r["event_type"] in listed, (r, listed)


# --- supplementary runs, reissues and released holds of one-offs ----------------------------------

def test_a_late_case_is_paid_once_by_a_supplementary_run(tmp_path, capsys):
    """January is released with RESIDENT's case LS-L1; the county then delivers two late January
    cases: LS-L2, a second case of the same person (one_off's grain adds the approval number, so it is
    not LS-L1 again), and LS-L3 of another person. The supplementary batch S1 pays exactly these two:
    700.00 + 650.00 = 1350.00; a rerun of it writes the same, and February pays none of them again
    (two new cases of one person in one month are two lines, and the books' paid-once check sees two
    approvals, not one line twice)."""
    from pipelines.cli import main as doudi

    inbox, wh, out = tmp_path / "inbox", tmp_path / "warehouse.duckdb", tmp_path / "out"
    temporary_file(inbox, "2020-01", [case(RESIDENT, "因病", "LS-L1", "900")])
    run(tmp_path, "2020-01")
    assert doudi(["release", "--month", "2020-01", "--out", str(out), "--warehouse", str(wh), "--by", "财政局张三"]) == 0
    late = [case(RESIDENT, "因灾", "LS-L2", "700", event_date="2020-01-20"),
            case(WIDOW, "因病", "LS-L3", "650", event_date="2020-01-21")]
    temporary_file(inbox, "2020-01", late, suffix="_补报")
    args = ["run", "--month", "2020-01", "--inbox", str(inbox), "--out", str(out), "--warehouse", str(wh),
            "--supplementary"]
    assert doudi(args) == 0, capsys.readouterr().err
    supplementary = "SELECT approval_no, status, amount FROM payment_ledger WHERE batch_id = 'S1' ORDER BY 1"
    assert query(wh, supplementary) == [("LS-L2", "payable", D("700.00")), ("LS-L3", "payable", D("650.00"))]
    assert query(wh, "SELECT sum(count), sum(sum) FROM payout_file WHERE payroll_month = '2020-01' AND format = 'csv' "
                     "AND name LIKE '%_S1_%'") == [(2, D("1350.00"))]
    assert doudi(args) == 0
    assert query(wh, supplementary) == [("LS-L2", "payable", D("700.00")), ("LS-L3", "payable", D("650.00"))]
    # February: the three again (paid already), and two new cases of RESIDENT, both payable this month
    temporary_file(inbox, "2020-02", [case(RESIDENT, "因病", "LS-L1", "900")] + late + [
        case(RESIDENT, "隔离收治", "LS-L4", "400", event_date="2020-02-03"),
        case(RESIDENT, "其他", "LS-L5", "300", event_date="2020-02-04")])
    run(tmp_path, "2020-02")
    assert one_offs(wh) == [("2020-01", "LS-L1", "payable", None, D("900.00")),
                            ("2020-01", "LS-L2", "payable", None, D("700.00")),
                            ("2020-01", "LS-L3", "payable", None, D("650.00")),
                            ("2020-02", "LS-L4", "payable", None, D("400.00")),
                            ("2020-02", "LS-L5", "payable", None, D("300.00"))]
    assert [f[0] for f in findings(wh, "2020-02")] == ["temporary_already_paid"] * 3


def test_a_held_case_is_paid_once_after_a_caseworker_clears_it(tmp_path, capsys):
    """January holds LS-K1 (2000.01, a fen above the township's 2000.00 cap, no 一事一议 number). The
    caseworker clears it for February through March; the county delivers nothing more of it. February
    pays it once, 2000.01 to the case's account (arrears_cause held_released, from January's held
    line); a rerun of February pays it once; March, still covered by the clearance, does not pay it
    again, nor a redelivery of it in March (already paid)."""
    from pipelines.cli import main as doudi

    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    temporary_file(inbox, "2020-01", [case(RESIDENT, "因病", "LS-K1", "2000.01")])
    run(tmp_path, "2020-01")
    assert one_offs(wh) == [("2020-01", "LS-K1", "held", "temporary_above_cap", D("2000.01"))]
    clear = ["clear", "--month", "2020-02", "--warehouse", str(wh), "--by", "王科长", "--program", "temporary",
             "--id", RESIDENT["id"], "--hold-reason", "temporary_above_cap", "--through", "2020-03",
             "--note", "经县民政局复核"]
    assert doudi(clear) == 0, capsys.readouterr().err
    temporary_file(inbox, "2020-02", [case(WIDOW, "因病", "LS-K2", "600")])  # another case of February
    run(tmp_path, "2020-02")
    run(tmp_path, "2020-02")
    temporary_file(inbox, "2020-03", [case(RESIDENT, "因病", "LS-K1", "2000.01")])
    run(tmp_path, "2020-03")
    assert one_offs(wh) == [("2020-01", "LS-K1", "held", "temporary_above_cap", D("2000.01")),
                            ("2020-02", "LS-K1", "payable", None, D("2000.01")),
                            ("2020-02", "LS-K2", "payable", None, D("600.00"))]
    (cause, basis, account, ref, funds), = query(
        wh, "SELECT arrears_cause, basis_month, payee_account, payment_ref, fund_provincial + fund_city + fund_county "
            "FROM payment_ledger WHERE payroll_month = '2020-02' AND approval_no = 'LS-K1'")
    assert (cause, basis, account, funds) == ("held_released", "2020-01", "6222" + RESIDENT["id"][6:14] + "0009",
                                              D("2000.01"))
    assert ref and query(wh, "SELECT amount FROM payout_record WHERE payment_ref = ?", [ref]) == [(D("2000.01"),)]
    assert [f[0] for f in findings(wh, "2020-03")] == ["temporary_already_paid"]


def test_a_failed_one_off_is_reissued_once_to_the_corrected_account(tmp_path):
    """January pays LS-F1 (900.00); the bank returns it failed. February: the county delivers the case
    again with a new card (not paid again: temporary_already_paid): one reissue of 900.00 to the new
    card, naming January's line; a rerun gives the same; March (the case delivered again) reissues
    nothing more. Paid in money that arrived: 900.00, once."""
    from pipelines.cli import main as doudi

    inbox, wh, out = tmp_path / "inbox", tmp_path / "warehouse.duckdb", tmp_path / "out"
    temporary_file(inbox, "2020-01", [case(RESIDENT, "因病", "LS-F1", "900")])
    run(tmp_path, "2020-01")
    assert doudi(["release", "--month", "2020-01", "--out", str(out), "--warehouse", str(wh), "--by", "财政局"]) == 0
    (ref, line_id), = query(wh, "SELECT payment_ref, line_id FROM payment_ledger WHERE approval_no = 'LS-F1'")
    write_csv(inbox / "2020-02" / "bank_returns" / "ICBC_202001_回盘.csv", ["payment_ref", "status", "reason"],
              [[ref, "失败", "账户冻结"]])
    assert doudi(["returns", "--month", "2020-02", "--inbox", str(inbox), "--warehouse", str(wh),
                  "--out", str(out)]) == 0
    corrected = case(RESIDENT, "因病", "LS-F1", "900")
    corrected[6] = "6217000011112222"
    temporary_file(inbox, "2020-02", [corrected])
    reissues = ("SELECT payroll_month, line_type, approval_no, amount, status, payee_account, reissue_of "
                "FROM payment_ledger WHERE line_type = 'reissue' ORDER BY payroll_month")
    for _ in range(2):
        run(tmp_path, "2020-02")
        assert query(wh, reissues) == [("2020-02", "reissue", "LS-F1", D("900.00"), "payable", "6217000011112222",
                                        [line_id])]
    assert findings(wh, "2020-02") == [("temporary_already_paid", "warning", "not_paid", RESIDENT["id"])]
    temporary_file(inbox, "2020-03", [corrected])
    run(tmp_path, "2020-03")
    assert query(wh, reissues)[1:] == []
    assert query(wh, "SELECT sum(amount) FROM payment_ledger WHERE id_number = ? AND status = 'payable' "
                     "AND payment_state IS DISTINCT FROM 'failed'", [RESIDENT["id"]]) == [(D("900.00"),)]


def test_the_event_is_a_dimension_of_the_star_schema_also_in_an_older_warehouse(tmp_path):
    """January is published, then its warehouse is taken back to before this change (fact_payment a
    table without the case columns, no dim_event). February's publish migrates it: fact_payment is
    a view over the ledger again, so January's lines keep their values and get their case back,
    February's one_off lines carry theirs. The analyst copy joins them to dim_event; an approval
    number typed as an ID number is masked there."""
    import duckdb

    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    temporary_file(inbox, "2020-01", [case(RESIDENT, "因病", "LS-E1", "800")])
    run(tmp_path, "2020-01")
    case_columns = ["approval_no", "event_type", "event_date", "approval_level", "case_by_case_no"]
    columns = ", ".join(case_columns)
    con = duckdb.connect(str(wh))
    con.execute(f"CREATE TABLE old_fact_payment AS SELECT * EXCLUDE ({columns}) FROM fact_payment")
    con.execute("DROP VIEW fact_payment")
    con.execute("ALTER TABLE old_fact_payment RENAME TO fact_payment")
    con.execute("DROP TABLE dim_event")
    january = con.execute("SELECT * FROM fact_payment ORDER BY ALL").fetchall()
    con.close()
    typed_as_id = make_id(T_C, "19800101", 7)  # a county that numbers its approvals like ID numbers
    temporary_file(inbox, "2020-02", [
        case(WIDOW, "病亡", "LS-E2", "3000.01", level="乡镇", event_date="2020-02-03", case_no="YSYY-7"),
        case(MIGRANT, "失业滞留", typed_as_id, "655", level="县级", event_date="2020-02-04")])
    run(tmp_path, "2020-02")
    assert query(wh, f"SELECT * EXCLUDE ({columns}) FROM fact_payment WHERE payroll_month = '2020-01' "
                     "ORDER BY ALL") == january
    import datetime

    assert query(wh, f"SELECT {columns} FROM fact_payment WHERE payroll_month = '2020-01'") == [
        ("LS-E1", "因病", datetime.date(2020, 1, 5), "乡镇", None)]

    assert query(wh, f"SELECT {columns}, status, amount FROM fact_payment WHERE payroll_month = '2020-02' "
                     "ORDER BY approval_no") == [
        (typed_as_id, "失业滞留", datetime.date(2020, 2, 4), "县级", None, "payable", D("655.00")),
        ("LS-E2", "病亡", datetime.date(2020, 2, 3), "乡镇", "YSYY-7", "payable", D("3000.01"))]
    analyst = wh.with_name("warehouse_analyst.duckdb")
    # by event: 因病 800.00 (January), 病亡 3000.01 and 失业滞留 655.00 (February); every other event none.
    # The analyst facts are read from the ledger, which kept January's case through the migration.
    assert query(analyst, "SELECT e.event_type, count(f.approval_no), coalesce(sum(f.amount), 0) FROM a_dim_event e "
                          "LEFT JOIN a_fact_payment f USING (event_type) GROUP BY ALL ORDER BY min(e.sort_order)") == [
        ("疫情确诊", 0, 0), ("隔离收治", 0, 0), ("病亡", 1, D("3000.01")), ("失业滞留", 1, D("655.00")),
        ("因病", 1, D("800.00")), ("因灾", 0, 0), ("其他", 0, 0)]
    # dim_event counts the cases from the ledger
    assert query(analyst, "SELECT event_type, cases_in_ledger, amount_payable FROM a_dim_event WHERE cases_in_ledger > 0 "
                          "ORDER BY sort_order") == [("病亡", 1, D("3000.01")), ("失业滞留", 1, D("655.00")),
                                                     ("因病", 1, D("800.00"))]
    approvals = [r[0] for r in query(analyst, "SELECT approval_no FROM a_fact_payment WHERE approval_no IS NOT NULL "
                                              "ORDER BY 1")]
    assert approvals == [typed_as_id[:6] + "********" + typed_as_id[-4:], "LS-E1", "LS-E2"]
