"""不断 (issue 20): a county's late or rejected roster does not stop its people's payments.

Three months in two counties. Shenyang (210102) delivers January; its February dibao file is late,
so February pays Shenyang's January roster forward (provisional lines, a finding naming the county)
while Dalian (210202) is paid as it would be anyway. February is released; Shenyang's file then
arrives with a lower income, and the supplementary run of February pays exactly the difference.
In March Shenyang's file is unreadable (rejected whole) and March pays February's late file forward.
Deaths still apply to a roster paid forward, and past carry_forward_max_months the county is not
paid and the finding says so.

Amounts (Shenyang urban dibao standard 655.00 for these payrolls; Dalian urban 620.00, regions of
standards.csv): one-person households, standard × 1 − income.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from decimal import Decimal as D

import pytest

from pipelines.monthly import run_month
from pipelines.payout import release
from pipelines.settings import RunError
from pipelines.summary import month_summary
from tests.helpers import context, query, roster_path, write_csv
from tests.test_engine_golden import DIBAO, common, person

SHENYANG, DALIAN = "210102", "210202"
HEAD_S, HEAD_D, OLD_S = person(81, "19600101"), person(82, "19610101"), person(83, "19300101")


def _in(county, row):
    return [county] + row[1:]


def _dibao(inbox, month, county, rows, name=None):
    ym = month.replace("-", "")
    return write_csv(roster_path(inbox, month, "dibao", name or f"{county}_dibao_{ym}.csv"), DIBAO,
                     [_in(county, r) for r in rows])


def _household(p, hh, income):
    return common(p) + [hh, "户主", 1, income, ""]


def regular(wh, month, who):
    return query(wh, "SELECT amount, status, provisional_from FROM payment_ledger WHERE payroll_month = ? "
                     "AND id_number = ? AND line_type = 'regular' AND program = 'dibao'", [month, who["id"]])


def findings(wh, month, kind):
    return query(wh, "SELECT region_code, detail FROM finding WHERE payroll_month = ? AND finding_type = ?",
                 [month, kind])


def _standard(wh, month, who):
    return query(wh, "SELECT amount_due FROM payment_ledger WHERE payroll_month = ? AND id_number = ? "
                     "AND line_type = 'regular'", [month, who["id"]])[0][0]


@pytest.fixture()
def january(tmp_path):
    inbox = tmp_path / "inbox"
    _dibao(inbox, "2020-01", SHENYANG, [_household(HEAD_S, "HS1", "100"), _household(OLD_S, "HS2", "0")])
    _dibao(inbox, "2020-01", DALIAN, [_household(HEAD_D, "HD1", "20")])
    run_month(context(tmp_path, "2020-01", inbox=inbox))
    release(context(tmp_path, "2020-01", inbox=inbox), "财政局")
    return tmp_path


def test_a_late_file_is_paid_forward_then_trued_up_and_a_rejected_one_too(january):
    tmp, inbox = january, january / "inbox"
    wh = tmp / "warehouse.duckdb"
    s_std, d_std = _standard(wh, "2020-01", HEAD_S) + D("100"), _standard(wh, "2020-01", HEAD_D) + D("20")
    assert regular(wh, "2020-01", HEAD_S) == [(s_std - D("100"), "payable", None)]

    # February: Dalian delivers, Shenyang does not
    _dibao(inbox, "2020-02", DALIAN, [_household(HEAD_D, "HD1", "20")])
    run_month(context(tmp, "2020-02", inbox=inbox))
    assert regular(wh, "2020-02", HEAD_S) == [(s_std - D("100"), "payable", "2020-01")]  # January's roster
    assert regular(wh, "2020-02", OLD_S) == [(s_std, "payable", "2020-01")]
    assert regular(wh, "2020-02", HEAD_D) == [(d_std - D("20"), "payable", None)]        # as it would be
    (county, detail), = findings(wh, "2020-02", "county_file_carried_forward")
    assert county == SHENYANG and "2020-01" in detail
    page = (context(tmp, "2020-02").reports_dir / "reconciliation.html").read_text(encoding="utf-8")
    assert "名册未报送或被退回，按以往名册临时发放" in page and f"临时发放（不断）：1 个县区 {SHENYANG}" in page
    release(context(tmp, "2020-02", inbox=inbox), "财政局")

    # Shenyang's February file arrives: HEAD_S's income fell to 40; the supplementary run pays 60.00 more
    _dibao(inbox, "2020-02", SHENYANG, [_household(HEAD_S, "HS1", "40"), _household(OLD_S, "HS2", "0")])
    run_month(replace(context(tmp, "2020-02", inbox=inbox), supplementary=True))
    top_up = query(wh, "SELECT amount, arrears_cause, batch_id FROM payment_ledger WHERE payroll_month = '2020-02' "
                       "AND id_number = ? AND line_type = 'arrears'", [HEAD_S["id"]])
    assert top_up == [(D("60.00"), "supplementary_correction", "S1")]
    assert query(wh, "SELECT count(*) FROM payment_ledger WHERE payroll_month = '2020-02' AND batch_id = 'S1'")[0][0] == 1
    assert findings(wh, "2020-02", "county_file_carried_forward") == []  # the file is there now
    release(context(tmp, "2020-02", inbox=inbox), "财政局")

    # March: Shenyang's file is unreadable, rejected whole; February's late file is paid forward
    roster_path(inbox, "2020-03", "dibao", f"{SHENYANG}_dibao_202003.csv").parent.mkdir(parents=True)
    roster_path(inbox, "2020-03", "dibao", f"{SHENYANG}_dibao_202003.csv").write_bytes(b"\x00\xff garbage")
    _dibao(inbox, "2020-03", DALIAN, [_household(HEAD_D, "HD1", "20")])
    run_month(context(tmp, "2020-03", inbox=inbox))
    assert regular(wh, "2020-03", HEAD_S) == [(s_std - D("40"), "payable", "2020-02")]
    assert [k for k, _ in findings(wh, "2020-03", "file_rejected")] == [SHENYANG]
    assert [k for k, _ in findings(wh, "2020-03", "county_file_carried_forward")] == [SHENYANG]
    # the unreadable file had no row to judge; the carried rows are the month's, each with one disposition
    assert query(wh, "SELECT disposition, count(*), count(*) FILTER (WHERE source_file LIKE 'carried/2020-02/%') "
                     "FROM row_disposition WHERE payroll_month = '2020-03' GROUP BY 1") == [("accepted", 3, 2)]


def test_a_roster_paid_forward_still_meets_the_death_registry(january):
    tmp, inbox = january, january / "inbox"
    wh = tmp / "warehouse.duckdb"
    _dibao(inbox, "2020-02", DALIAN, [_household(HEAD_D, "HD1", "20")])
    write_csv(inbox / "2020-02" / "registry" / "deaths.csv", ["id_number", "name", "death_date"],
              [[OLD_S["id"], OLD_S["name"], "2020-01-15"]])
    run_month(context(tmp, "2020-02", inbox=inbox))
    # dead in January: the household is held as the death registry holds a dibao head's, not paid
    assert query(wh, "SELECT status, hold_reason, provisional_from FROM payment_ledger WHERE payroll_month = "
                     "'2020-02' AND id_number = ? AND line_type = 'regular'", [OLD_S["id"]]) == [
        ("held", "household_head_deceased", "2020-01")]
    assert regular(wh, "2020-02", HEAD_S)[0][1:] == ("payable", "2020-01")


def test_past_the_policys_months_a_missing_county_is_not_paid_and_said_so(january, tmp_path):
    tmp, inbox = january, january / "inbox"
    wh = tmp / "warehouse.duckdb"
    reference = tmp / "reference"
    shutil.copytree(context(tmp, "2020-02").reference, reference)
    params = reference / "policy_parameters.csv"
    params.write_text(params.read_text(encoding="utf-8").replace("carry_forward_max_months,2,",
                                                                 "carry_forward_max_months,0,"), encoding="utf-8")
    _dibao(inbox, "2020-02", DALIAN, [_household(HEAD_D, "HD1", "20")])
    run_month(context(tmp, "2020-02", inbox=inbox, reference=reference))
    assert regular(wh, "2020-02", HEAD_S) == []
    (county, detail), = findings(wh, "2020-02", "county_file_not_delivered")
    assert county == SHENYANG and "carry_forward_max_months (0)" in detail


def test_a_county_that_delivers_the_header_alone_has_nobody_and_is_not_paid_forward(january):
    tmp, inbox = january, january / "inbox"
    wh = tmp / "warehouse.duckdb"
    _dibao(inbox, "2020-02", DALIAN, [_household(HEAD_D, "HD1", "20")])
    _dibao(inbox, "2020-02", SHENYANG, [])  # 和平区: nobody on dibao this month
    run_month(context(tmp, "2020-02", inbox=inbox))
    assert regular(wh, "2020-02", HEAD_S) == [] and regular(wh, "2020-02", OLD_S) == []
    assert findings(wh, "2020-02", "county_file_carried_forward") == []
    assert [k for k, _ in findings(wh, "2020-02", "file_rejected")] == [SHENYANG]  # FILE_EMPTY, for the caseworker


# --- a county whose reference data is broken (issue 20: "the same principle applies to reference data") --

NEW_S = person(84, "19500101")


def _reference_with(tmp, name, *shenyang_rows):
    """The shipped reference with more standards.csv rows for Shenyang (和平区) from February."""
    reference = tmp / name
    shutil.copytree(context(tmp, "2020-02").reference, reference)
    standards = reference / "standards.csv"
    standards.write_text(standards.read_text(encoding="utf-8").rstrip("\n") + "\n" + "\n".join(shenyang_rows)
                         + "\n", encoding="utf-8")
    return reference


def _all_lines(wh, month, county, batch=None):
    return query(wh, "SELECT id_number, line_type, amount, status, provisional_from FROM payment_ledger "
                     "WHERE payroll_month = ? AND region_code = ? AND coalesce(batch_id, '') LIKE ? ORDER BY ALL",
                 [month, county, batch or "%"])


def test_a_county_with_broken_fund_shares_is_paid_forward_with_the_fund_parts_it_had(january):
    """Found by an attack on the product: a city's fund_shares.csv row summing to 1.1 held its counties,
    and then the run stopped the whole province ("lines whose fund parts do not add up"), because
    the lines paid forward were split by the broken row. They keep the parts of the line they repeat."""
    tmp, inbox = january, january / "inbox"
    wh = tmp / "warehouse.duckdb"
    broken = tmp / "reference_fund_shares"
    shutil.copytree(context(tmp, "2020-02").reference, broken)
    shares = broken / "fund_shares.csv"
    shares.write_text(shares.read_text(encoding="utf-8") + "dibao,210102,0.40,0.10,0.30,0.30,2020-02\n",
                      encoding="utf-8")
    _dibao(inbox, "2020-02", SHENYANG, [_household(HEAD_S, "HS1", "100"), _household(OLD_S, "HS2", "0")])
    _dibao(inbox, "2020-02", DALIAN, [_household(HEAD_D, "HD1", "20")])
    run_month(context(tmp, "2020-02", inbox=inbox, reference=broken))
    parts = ("SELECT id_number, line_type, amount, fund_central, fund_provincial, fund_city, fund_county, "
             "fund_version FROM payment_ledger WHERE payroll_month = ? AND region_code = ? ORDER BY ALL")
    assert query(wh, parts, ["2020-02", SHENYANG]) == query(wh, parts, ["2020-01", SHENYANG])
    assert {p for *_, p in _all_lines(wh, "2020-02", SHENYANG)} == {"2020-01"}
    (county, detail), = findings(wh, "2020-02", "county_reference_held")
    assert county == SHENYANG and "fund" in detail
    assert regular(wh, "2020-02", HEAD_D)[0][1] == "payable"  # Dalian is paid as always


def test_a_county_with_a_broken_standard_is_paid_forward_while_the_rest_is_paid_then_trued_up(january):
    tmp, inbox = january, january / "inbox"
    wh = tmp / "warehouse.duckdb"
    s_std, d_std = _standard(wh, "2020-01", HEAD_S) + D("100"), _standard(wh, "2020-01", HEAD_D) + D("20")
    broken = _reference_with(tmp, "reference_broken", "dibao,standard,210102,城市,*,-700,2020-02,,")
    # (the tekun basic standard must stay at least 1.3 × the dibao standard: it rises with it)
    fixed = _reference_with(tmp, "reference_fixed", "dibao,standard,210102,城市,*,700,2020-02,,",
                            "tekun,basic,210102,城市,*,910,2020-02,,")
    january_shenyang = {(who, kind, amount) for who, kind, amount, *_ in _all_lines(wh, "2020-01", SHENYANG)}

    # February: Shenyang's new standard row is negative. Shenyang is held: each of its people is paid
    # what January paid them, marked provisional; a new household has nothing to pay forward and is
    # told so; Dalian is paid as it would be anyway.
    rows = [_household(HEAD_S, "HS1", "100"), _household(OLD_S, "HS2", "0"),
            common(NEW_S, enrolled="2020-02") + ["HS3", "户主", 1, "0", ""]]  # approved from February
    _dibao(inbox, "2020-02", SHENYANG, rows)
    _dibao(inbox, "2020-02", DALIAN, [_household(HEAD_D, "HD1", "20")])
    run_month(context(tmp, "2020-02", inbox=inbox, reference=broken))
    february = _all_lines(wh, "2020-02", SHENYANG)
    assert {(who, kind, amount) for who, kind, amount, *_ in february} == january_shenyang
    assert {(status, provisional) for *_, status, provisional in february} == {("payable", "2020-01")}
    assert regular(wh, "2020-02", HEAD_D) == [(d_std - D("20"), "payable", None)]
    assert regular(wh, "2020-02", NEW_S) == []
    (county, detail), = findings(wh, "2020-02", "county_reference_held")
    assert county == SHENYANG and "negative amount" in detail and "dibao/standard/210102" in detail
    (county, detail), = findings(wh, "2020-02", "county_reference_held_unpaid")
    assert county == SHENYANG and "补充批次" in detail
    summary = "\n".join(month_summary(context(tmp, "2020-02", inbox=inbox, reference=broken), 1.0))
    assert f"HELD:      {SHENYANG}: the county's reference data is broken" in summary and "--supplementary" in summary
    # the reconciliation shows it before anything else, for whoever signs it
    page = (context(tmp, "2020-02").reports_dir / "reconciliation.html").read_text(encoding="utf-8")
    assert page.index('id="provisional"') < page.index('id="funds"')
    assert f"临时发放（不断）：1 个县区 {SHENYANG}" in page and "参考数据有误，按最近一次发放金额临时发放" in page
    release(context(tmp, "2020-02", inbox=inbox, reference=broken), "财政局")

    # the standard is corrected to 700.00: the supplementary run pays exactly what is missing. Each of
    # the two households was paid January's 655 standard and price subsidy forward; it is owed 700 and
    # the February price subsidy on 700 (what the new household is paid): one top-up line each
    run_month(replace(context(tmp, "2020-02", inbox=inbox, reference=fixed), supplementary=True))
    s1 = query(wh, "SELECT id_number, line_type, amount FROM payment_ledger WHERE payroll_month = '2020-02' "
                   "AND batch_id = 'S1' ORDER BY ALL")
    (price_now,), = {(a,) for who, kind, a in s1 if who == NEW_S["id"] and kind == "price_subsidy"}
    (price_then,), = {(a,) for who, kind, a, *_ in february if who == HEAD_S["id"] and kind == "price_subsidy"}
    owed = D("700") - s_std + price_now - price_then  # 45.00 + (37.80 − 29.48) = 53.32
    assert sorted(s1) == sorted([(HEAD_S["id"], "arrears", owed), (OLD_S["id"], "arrears", owed),
                                 (NEW_S["id"], "price_subsidy", price_now), (NEW_S["id"], "regular", D("700.00"))])
    assert findings(wh, "2020-02", "county_reference_held") == []
    assert _all_lines(wh, "2020-02", DALIAN, "S1") == []  # nothing new for the county that was paid
    release(context(tmp, "2020-02", inbox=inbox, reference=fixed), "财政局")

    # March, with the corrected tables: everyone paid by the new standard, nothing provisional
    _dibao(inbox, "2020-03", SHENYANG, rows)
    _dibao(inbox, "2020-03", DALIAN, [_household(HEAD_D, "HD1", "20")])
    run_month(context(tmp, "2020-03", inbox=inbox, reference=fixed))
    assert regular(wh, "2020-03", HEAD_S) == [(D("600.00"), "payable", None)]
    assert regular(wh, "2020-03", NEW_S) == [(D("700.00"), "payable", None)]
    assert regular(wh, "2020-03", HEAD_D) == [(d_std - D("20"), "payable", None)]


def test_a_broken_row_of_the_whole_province_still_stops_the_run(january):
    tmp, inbox = january, january / "inbox"
    broken = _reference_with(tmp, "reference_broken", "dibao,standard,21,城市,*,-700,2020-02,,")
    _dibao(inbox, "2020-02", DALIAN, [_household(HEAD_D, "HD1", "20")])
    with pytest.raises(RunError, match="no payment computed"):
        run_month(context(tmp, "2020-02", inbox=inbox, reference=broken))
