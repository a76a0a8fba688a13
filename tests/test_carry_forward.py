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
