"""Tests that find a wrong rule (issue 16): the boundaries and rules that no other fast test sits on,
each found by planting the wrong rule with `make mutation` (tools/mutation.py names, in brackets,
the mutation each assertion kills). Small hand-made inboxes; expected values by hand arithmetic.

Figures (shipped reference, 和平区 210102, see tests/test_engine_golden.py): dibao standard urban
655.00 / rural 450.00 until the 2020-04 payroll, 688.00 / 482.00 from it; tekun basic urban
852.00, rural 585.00, care 全自理 100.00; orphan 社会散居 1273.00; CPI of M−1 for payroll M:
2019-12 4.5%, 2020-01 5.4%, 2020-02 5.2% (March to June 2020 doubled, orphans covered).
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.helpers import copy_reference, query, roster_path, run, write_csv
from tests.test_engine_golden import DIBAO, DISABILITY, ORPHAN, TEKUN, C, acct, common, person

DEATHS = ["id_number", "name", "death_date", "source"]


def _write(inbox, month, program, header, rows, county=C):
    write_csv(roster_path(inbox, month, program, f"{county}_{program}_{month.replace('-', '')}.csv"), header, rows)


def _tekun(p, ur="城市"):
    return common(p, ur=ur) + ["分散供养", "全自理", ""]


def _lines(wh, month, pid, line_type=None):
    sql = ("SELECT service_month, program, line_type, status, amount FROM payment_ledger "
           "WHERE payroll_month = ? AND id_number = ?")
    args = [month, pid]
    if line_type:
        sql += " AND line_type = ?"
        args.append(line_type)
    return query(wh, sql + " ORDER BY ALL", args)


def _price(wh, month, pid):
    return [r[4] for r in _lines(wh, month, pid, "price_subsidy") if r[0] == month]


# --- the price linkage on its boundaries ---------------------------------------------------------

PRICE_CPI = """month,area,cpi_yoy,food_yoy
2019-12,00,3.5,1.0
2020-01,00,1.0,6.0
2020-02,21,5.0,5.5
2020-02,00,2.0,9.0
2020-03,00,4.0,0.0
2020-04,00,3.0,10.0
"""

PRICE_RULE = """effective_from,effective_to,cpi_threshold,food_threshold,index_lag,basis,multiplier,minimum,rounding,programs
2020-01,2020-01,3.5,6.0,1,cpi,1,0,fen,dibao;tekun
2020-02,2020-02,3.5,6.0,1,food,1,0,fen,dibao;tekun
2020-03,2020-03,3.5,6.0,1,triggered,1,0,yuan,dibao;tekun
2020-04,2020-04,3.5,6.0,1,cpi,2,40,fen,dibao;tekun
2020-05,,3.5,,1,cpi,1,0,fen,dibao;tekun
"""


@pytest.fixture(scope="module")
def price_months(tmp_path_factory):
    """One rule version per payroll month, each on a boundary; an urban and a rural tekun person."""
    tmp = tmp_path_factory.mktemp("price")
    ref = copy_reference(tmp)
    (ref / "cpi.csv").write_text(PRICE_CPI, encoding="utf-8")
    (ref / "price_linkage.csv").write_text(PRICE_RULE, encoding="utf-8")
    urban, rural = person(201, "19400101"), person(202, "19410101", False)
    months = ["2020-01", "2020-02", "2020-03", "2020-04", "2020-05"]
    for m in months:
        _write(tmp / "inbox", m, "tekun", TEKUN, [_tekun(urban), _tekun(rural, "农村")])
        run(tmp, m, reference=ref)
    wh = tmp / "warehouse.duckdb"
    return {m: (_price(wh, m, urban["id"]), _price(wh, m, rural["id"])) for m in months}


def test_cpi_equal_to_its_threshold_triggers(price_months):
    # [price_cpi_threshold_strict, price_fen_truncated] CPI 2019-12 3.5 = threshold 3.5, food 1.0 < 6:
    # 655 × 3.5% = 22.925 → 22.93 (half up); 450 × 3.5% = 15.75
    assert price_months["2020-01"] == ([D("22.93")], [D("15.75")])


def test_food_equal_to_its_threshold_triggers_and_basis_food_pays_at_food(price_months):
    # [price_food_threshold_strict, price_food_basis_reads_cpi] CPI 2020-01 1.0, food 6.0 = threshold:
    # basis food: 655 × 6% = 39.30; 450 × 6% = 27.00 (at cpi it would be 6.55 / 4.50)
    assert price_months["2020-02"] == ([D("39.30")], [D("27.00")])


def test_provincial_index_triggered_basis_and_yuan_half_up(price_months):
    # [price_national_over_provincial, price_triggered_takes_larger_index, price_yuan_truncated]
    # 2020-02 has a Liaoning row (cpi 5.0, food 5.5) and a national one (2.0, 9.0): the provincial
    # one is used; cpi triggers (5.0 ≥ 3.5), food does not (5.5 < 6), so basis triggered pays 5.0%:
    # 655 × 5% = 32.75 → 33 yuan; 450 × 5% = 22.50 → 23 yuan (half up; not 22)
    assert price_months["2020-03"] == ([D("33.00")], [D("23.00")])


def test_multiplier_and_minimum(price_months):
    # [price_multiplier_ignored, price_minimum_ignored] April's standards 688 / 482, CPI 4.0 × 2:
    # 688 × 4% × 2 = 55.04; 482 × 4% × 2 = 38.56, below the minimum 40 → 40.00
    assert price_months["2020-04"] == ([D("55.04")], [D("40.00")])


def test_a_blank_threshold_never_triggers(price_months):
    # [price_blank_threshold_triggers] CPI 3.0 < 3.5; food 10.0 but the food threshold is blank
    assert price_months["2020-05"] == ([], [])


def test_an_orphan_is_covered_in_the_month_of_the_18th_birthday(tmp_path):
    """[price_age_out_boundary] Born 2002-03-10: March 2020 is the month of the 18th birthday. The
    March payroll pays the allowance (1273.00) and the price subsidy (orphans covered March to June
    2020: 655 × 5.2% × 2 = 68.12)."""
    child, guardian = person(203, "20020310"), person(204, "19800101")
    _write(tmp_path / "inbox", "2020-03", "orphan", ORPHAN, [
        [C, child["name"], child["id"], child["sex"], "城市", "中国工商银行", acct(guardian), guardian["name"],
         "2019-06", "", "", "社会散居", guardian["name"], guardian["id"]]])
    run(tmp_path, "2020-03")
    assert _lines(tmp_path / "warehouse.duckdb", "2020-03", child["id"]) == [
        ("2020-03", "orphan", "price_subsidy", "payable", D("68.12")),
        ("2020-03", "orphan", "regular", "payable", D("1273.00"))]


# --- standards: effective_from and effective_to ----------------------------------------------------

def test_a_version_applies_only_from_effective_from_to_effective_to(tmp_path):
    """[standard_effective_to_ignored, standard_effective_from_ignored] Two county versions beside
    Shenyang's 655: 640 for 2019-06..2019-12 (closed) and 645 from 2020-02. January pays 655 (the
    closed version no longer applies); February pays 645; a household enrolled in February with
    entitlement from January gets January as arrears at 655 (the 645 version starts in February)."""
    ref = copy_reference(tmp_path)
    with open(ref / "standards.csv", "a", encoding="utf-8") as fh:
        fh.write("dibao,standard,210102,城市,*,640,2019-06,2019-12,\n"
                 "dibao,standard,210102,城市,*,645,2020-02,,\n")
    a, b = person(205, "19700101"), person(206, "19710101")
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    _write(inbox, "2020-01", "dibao", DIBAO, [common(a) + ["HA1", "户主", 1, "0", ""]])
    run(tmp_path, "2020-01", reference=ref)
    assert _lines(wh, "2020-01", a["id"], "regular") == [("2020-01", "dibao", "regular", "payable", D("655.00"))]
    _write(inbox, "2020-02", "dibao", DIBAO, [common(a) + ["HA1", "户主", 1, "0", ""],
                                              common(b, enrolled="2020-01") + ["HB1", "户主", 1, "0", ""]])
    run(tmp_path, "2020-02", reference=ref)
    assert _lines(wh, "2020-02", a["id"], "regular") == [("2020-02", "dibao", "regular", "payable", D("645.00"))]
    assert [r for r in _lines(wh, "2020-02", b["id"]) if r[2] != "price_subsidy"] == [
        ("2020-01", "dibao", "arrears", "payable", D("655.00")),
        ("2020-02", "dibao", "regular", "payable", D("645.00"))]


# --- deaths --------------------------------------------------------------------------------------

def test_deaths_month_of_death_paid_member_death_and_receivables(tmp_path):
    """P1 (tekun, 852 + 100 = 952.00) dies on 2020-01-05, reported in January: January, the month of
    death, is paid; February is not [death_month_unpaid]. P2 dies on 2020-01-20, reported only in
    March: January and February were paid; February's lines become receivables, January's do not
    (the month of death was owed) [receivable_includes_death_month]. In household HM the spouse died
    in December 2019 (reported in January): the household is paid, not held (655 × 2 = 1310.00)
    [death_member_holds_household], and the spouse gets no price subsidy, in January or later
    [price_dead_member_kept]; the head does (655 × 4.5% = 29.48)."""
    p1, p2 = person(207, "19400101"), person(208, "19410101")
    head, spouse = person(209, "19500101"), person(210, "19520101", False)
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    for m in ("2020-01", "2020-02", "2020-03"):
        _write(inbox, m, "tekun", TEKUN, [_tekun(p1), _tekun(p2)])
        _write(inbox, m, "dibao", DIBAO, [common(head) + ["HM", "户主", 2, "0", ""],
                                          common(spouse, account=False) + ["HM", "配偶", 2, "0", ""]])
    write_csv(inbox / "2020-01" / "registry" / "deaths.csv", DEATHS,
              [[p1["id"], p1["name"], "2020-01-05", "公安"], [spouse["id"], spouse["name"], "2019-12-10", "公安"]])
    write_csv(inbox / "2020-03" / "registry" / "deaths.csv", DEATHS, [[p2["id"], p2["name"], "2020-01-20", "民政"]])

    run(tmp_path, "2020-01")
    assert _lines(wh, "2020-01", p1["id"], "regular") == [("2020-01", "tekun", "regular", "payable", D("952.00"))]
    assert _price(wh, "2020-01", head["id"]) == [D("29.48")]
    run(tmp_path, "2020-02")
    assert _lines(wh, "2020-02", p1["id"]) == []
    for m in ("2020-01", "2020-02"):
        assert _lines(wh, m, head["id"], "regular") == [(m, "dibao", "regular", "payable", D("1310.00"))], m
        assert _price(wh, m, spouse["id"]) == [], m

    run(tmp_path, "2020-03")
    assert _lines(wh, "2020-03", p2["id"]) == []
    # February: 952.00 and its price subsidy 655 × 5.4% = 35.37
    assert query(wh, "SELECT paid_payroll, service_month, line_type, amount FROM receivable WHERE id_number = ? "
                     "ORDER BY ALL", [p2["id"]]) == [("2020-02", "2020-02", "price_subsidy", D("35.37")),
                                                     ("2020-02", "2020-02", "regular", D("952.00"))]


# --- exclusions and integrity decisions ----------------------------------------------------------

def test_exclusions_living_subsidy_outside_dibao_and_a_cross_county_duplicate(tmp_path):
    """January, shipped exclusions.csv:
    X is tekun and on the nursing-subsidy roster: (tekun, disability:护理补贴) pay_a_only, a pair
      without dibao: tekun 952.00 is paid, the nursing subsidy is not [exclusion_pay_a_only_not_enforced].
    Y has the living subsidy and no dibao household: not paid [living_subsidy_outside_dibao_paid].
    Z is tekun and the spouse in dibao household HZ: (tekun, dibao) pay_a_only, so Z is not a covered
      member: 655 × (2 − 1) − 0 = 655.00, not 1310.00 [dibao_excluded_member_counted].
    Q is listed by 和平区 and by 沈河区 (210103), both enrolled 2019-06: paid once, by the survivor
      (the lower region code) [cross_county_duplicate_paid]."""
    x, y, z, w, q = (person(211, "19400101"), person(212, "19800101"), person(213, "19420101"),
                     person(214, "19450101", False), person(215, "19430101"))
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    m = "2020-01"
    _write(inbox, m, "tekun", TEKUN, [_tekun(x), _tekun(z), _tekun(q)])
    _write(inbox, m, "tekun", TEKUN, [["210103"] + _tekun(q)[1:]], county="210103")
    _write(inbox, m, "disability", DISABILITY, [common(x) + ["护理补贴", x["id"] + "41", "肢体", "一级"],
                                                common(y) + ["生活补贴", y["id"] + "41", "肢体", "一级"]])
    _write(inbox, m, "dibao", DIBAO, [common(w) + ["HZ", "户主", 2, "0", ""],
                                      common(z, account=False) + ["HZ", "配偶", 2, "0", ""]])
    run(tmp_path, m)
    assert [r[1:] for r in _lines(wh, m, x["id"]) if r[2] == "regular"] == [("tekun", "regular", "payable",
                                                                             D("952.00"))]
    assert query(wh, "SELECT count(*) FROM finding WHERE finding_type = 'exclusive_programs' AND id_number = ?",
                 [x["id"]]) == [(1,)]
    assert _lines(wh, m, y["id"]) == []
    assert _lines(wh, m, w["id"], "regular") == [(m, "dibao", "regular", "payable", D("655.00"))]
    assert _lines(wh, m, z["id"], "regular") == [(m, "tekun", "regular", "payable", D("952.00"))]
    assert query(wh, "SELECT region_code, amount FROM payment_ledger WHERE id_number = ? AND line_type = 'regular'",
                 [q["id"]]) == [(C, D("952.00"))]
