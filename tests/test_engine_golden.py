"""Golden tests of the payment engine: small rosters, worked by hand.

Reference data is the shipped sample (data/reference). The figures used, all for 和平区 210102
(Shenyang) unless said otherwise:

  dibao standard   urban 655.00 from 2018-07; 688.00 effective 2020-01, first paid in the 2020-04
                   payroll (the 2020 raise, +5%)            rural 450.00 / 482.00
  dibao floor      50.00 per person;  add-ons: 老年 30, 重残 60, 重病 60, 未成年 40 (largest one per member)
  tekun            basic urban 852.00 (Shenyang, 1.3 × 655 rounded up); care 全自理 100, 半护理 300, 全护理 600
  orphans          机构养育 1711.00, 社会散居 1273.00, 事实无人抚养 1273.00
  disability       living 70.00, nursing 55.00 (grades 1 and 2)
  price subsidy    payroll M uses the CPI of M−1: 2019-12 4.5%, 2020-01 5.4%, 2020-02 5.2%, 2020-03 4.3%;
                   2020-03..06 doubled (multiplier 2) and orphans covered; rounded half up to the fen
  fund shares      dibao in Shenyang 0.40 / 0.10 / 0.30 / 0.20; price subsidy 0 / 0.50 / 0.25 / 0.25
"""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from tests.helpers import copy_reference, make_id, query, roster_path, run, write_csv

COMMON = ["region_code", "name", "id_number", "sex", "urban_rural", "bank_name", "bank_account", "account_holder",
          "enrolled_from", "enrolled_to", "approved_amount"]
DIBAO = COMMON + ["household_id", "relation", "household_size", "household_income", "class_category"]
TEKUN = COMMON + ["placement", "care_level", "institution_code"]
ORPHAN = COMMON + ["placement", "guardian_name", "guardian_id_number"]
DISABILITY = COMMON + ["subsidy_type", "disability_cert_no", "disability_category", "disability_grade"]
C = "210102"
MONTHS = ["2020-01", "2020-02", "2020-03", "2020-04"]


def person(seq, birth, male=True, name=None):
    return {"id": make_id(C, birth, seq, male), "name": name or f"测试{seq}", "sex": "男" if male else "女"}


# --- the people -------------------------------------------------------------------------------
A1, A2, A3 = person(1, "19700101"), person(2, "19720202", False), person(3, "20100303")
B1, B2 = person(4, "19650101"), person(5, "19680101", False)
E1, E2 = person(6, "19500505"), person(7, "20110707", False)
N1 = person(8, "19800808")
L1 = person(9, "19750909", False)  # enrolled in March
F1 = person(10, "19760101")  # enrolled in April, entitled from February
R1 = person(11, "19600101", False)  # rural, for an odd-fen fund split
T1, T2, T3 = person(21, "19400101"), person(22, "19410101"), person(23, "19420101", False)
O1, O2, O3 = person(31, "20120101"), person(32, "20100505", False), person(33, "20110606")
O4 = person(34, "20020215")  # 18th birthday in February 2020
G1, G2, G3 = person(41, "19800101"), person(42, "19810101", False), person(43, "19820101")


def acct(p):
    return "6222" + p["id"][6:14] + "0001"


def common(p, ur="城市", enrolled="2019-06", account=True, holder=None):
    return [C, p["name"], p["id"], p["sex"], ur, "中国工商银行" if account else "", acct(p) if account else "",
            (holder or p["name"]) if account else "", enrolled, "", ""]


def dibao_rows(month):
    rows = [
        # HH1 with an income: 655×3 − 600 = 1365.00
        common(A1) + ["H1", "户主", 3, "600", ""],
        common(A2, account=False) + ["H1", "配偶", 3, "600", ""],
        common(A3, account=False) + ["H1", "子女", 3, "600", ""],
        # HH2 on the floor: 655×2 − 1280 = 30 < 50×2 → 100.00
        common(B1) + ["H2", "户主", 2, "1,280.00", ""],
        common(B2, account=False) + ["H2", "配偶", 2, "1280", ""],
        # HH3 two add-on classes on one member (largest only): 655×2 − 0 + 60 (重残 over 老年) + 40 = 1410.00
        common(E1) + ["H3", "户主", 2, "0", "老年;重残"],
        common(E2, account=False) + ["H3", "子女", 2, "0", "未成年"],
        # HH4 not eligible: 655×1 − 700 < 0 → no line, a finding
        common(N1) + ["H4", "户主", 1, "700", ""],
        # HH7 rural: 450 − 0 = 450.00; its price subsidy 450 × 4.5% = 20.25 splits to an odd fen
        common(R1, ur="农村") + ["H7", "户主", 1, "0", ""],
    ]
    if month >= "2020-03":  # HH5 enrolled in March
        rows.append(common(L1, enrolled="2020-03") + ["H5", "户主", 1, "0", ""])
    if month >= "2020-04":  # HH6 enrolled in April, entitled from February
        rows.append(common(F1, enrolled="2020-02") + ["H6", "户主", 1, "100", ""])
    return rows


def tekun_rows():
    inst = "和平区福利院"
    return [
        # 集中供养, paid to the institution's account
        common(T1, holder=inst) [:6] + ["6222000099990001", inst, "2019-06", "", ""] + ["集中供养", "全自理", "INST01"],
        common(T2) + ["分散供养", "半护理", ""],
        common(T3) + ["分散供养", "全护理", ""],
    ]


def orphan_rows(month):
    rows = []
    if month == "2020-01":
        home = "和平区儿童福利院"
        rows += [
            common(O1)[:6] + ["6222000099990002", home, "2019-06", "", ""] + ["机构养育", "", ""],
            common(G1)[:1] + [O2["name"], O2["id"], O2["sex"], "城市", "中国工商银行", acct(G1), G1["name"],
                               "2019-06", "", ""] + ["社会散居", G1["name"], G1["id"]],
            common(G2)[:1] + [O3["name"], O3["id"], O3["sex"], "城市", "中国工商银行", acct(G2), G2["name"],
                               "2019-06", "", ""] + ["事实无人抚养", G2["name"], G2["id"]],
        ]
    if month <= "2020-03":
        rows.append([C, O4["name"], O4["id"], O4["sex"], "城市", "中国工商银行", acct(G3), G3["name"], "2019-06", "", ""]
                    + ["社会散居", G3["name"], G3["id"]])
    return rows


def disability_rows():
    # A2 (member of HH1) holds both subsidies, grade 1 (肢体 = 4): two lines, to her own card
    cert = A2["id"] + "41"
    return [common(A2) + ["生活补贴", cert, "肢体", "一级"], common(A2) + ["护理补贴", cert, "肢体", "一级"]]


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("golden")
    inbox = tmp / "inbox"
    for m in MONTHS:
        ym = m.replace("-", "")
        write_csv(roster_path(inbox, m, "dibao", f"{C}_dibao_{ym}.csv"), DIBAO, dibao_rows(m))
        if m == "2020-01":
            write_csv(roster_path(inbox, m, "tekun", f"{C}_tekun_{ym}.csv"), TEKUN, tekun_rows())
            write_csv(roster_path(inbox, m, "disability", f"{C}_disability_{ym}.csv"), DISABILITY, disability_rows())
        if orphan_rows(m):
            write_csv(roster_path(inbox, m, "orphan", f"{C}_orphan_{ym}.csv"), ORPHAN, orphan_rows(m))
    for m in MONTHS:
        run(tmp, m)
    return tmp / "warehouse.duckdb"


def lines(wh, month, program=None, line_type=None, person=None):
    sql = ("SELECT program, line_type, service_month, amount, status, payee_account, id_number FROM payment_ledger "
           "WHERE payroll_month = ?")
    args = [month]
    for col, val in (("program", program), ("line_type", line_type), ("id_number", person)):
        if val is not None:
            sql += f" AND {col} = ?"
            args.append(val)
    return query(wh, sql + " ORDER BY service_month, program, line_type", args)


def amount(wh, month, pid, program, line_type="regular", service=None):
    rows = [r for r in lines(wh, month, program, line_type, pid) if service is None or r[2] == service]
    assert len(rows) == 1, rows
    return rows[0][3]


def test_dibao_household_with_income(golden):
    assert amount(golden, "2020-01", A1["id"], "dibao") == D("1365.00")  # 655×3 − 600


def test_dibao_household_on_the_floor(golden):
    assert amount(golden, "2020-01", B1["id"], "dibao") == D("100.00")  # max(655×2 − 1280 = 30, 50×2)


def test_dibao_add_ons_do_not_stack(golden):
    # 655×2 − 0 = 1310; head 老年(30) and 重残(60): only 60; child 未成年 40 → 1410
    assert amount(golden, "2020-01", E1["id"], "dibao") == D("1410.00")


def test_dibao_household_above_the_standard_gets_no_line_and_a_finding(golden):
    assert lines(golden, "2020-01", "dibao", "regular", N1["id"]) == []
    found = query(golden, "SELECT finding_type, action FROM finding WHERE payroll_month = '2020-01' AND id_number = ?",
                  [N1["id"]])
    assert ("dibao_not_eligible", "not_paid") in found


def test_dibao_household_paid_once_to_the_head(golden):
    rows = lines(golden, "2020-01", "dibao", "regular")
    assert {r[6] for r in rows} == {A1["id"], B1["id"], E1["id"], R1["id"]}  # heads only
    assert [r[5] for r in rows if r[6] == A1["id"]] == [acct(A1)]


def test_tekun_basic_plus_care_each_level_and_placement(golden):
    assert amount(golden, "2020-01", T1["id"], "tekun") == D("952.00")   # 852 + 100 全自理
    assert amount(golden, "2020-01", T2["id"], "tekun") == D("1152.00")  # 852 + 300 半护理
    assert amount(golden, "2020-01", T3["id"], "tekun") == D("1452.00")  # 852 + 600 全护理
    assert lines(golden, "2020-01", "tekun", "regular", T1["id"])[0][5] == "6222000099990001"  # institution


def test_orphans_by_placement_and_age_out(golden):
    assert amount(golden, "2020-01", O1["id"], "orphan") == D("1711.00")
    assert amount(golden, "2020-01", O2["id"], "orphan") == D("1273.00")
    assert amount(golden, "2020-01", O3["id"], "orphan") == D("1273.00")
    assert lines(golden, "2020-01", "orphan", "regular", O2["id"])[0][5] == acct(G1)  # the guardian's account
    # born 2002-02-15: paid through February 2020, the month of the 18th birthday
    assert amount(golden, "2020-02", O4["id"], "orphan") == D("1273.00")
    assert lines(golden, "2020-03", "orphan", person=O4["id"]) == []
    disp = query(golden, "SELECT disposition, reason_codes FROM row_disposition WHERE payroll_month = '2020-03' "
                         "AND id_number = ?", [O4["id"]])
    assert disp == [("quarantined", ["ORPHAN_AGED_OUT"])]


def test_both_disability_subsidies_are_separate_lines(golden):
    assert amount(golden, "2020-01", A2["id"], "disability_living") == D("70.00")
    assert amount(golden, "2020-01", A2["id"], "disability_nursing") == D("55.00")


def test_price_subsidy_under_cpi_per_covered_person(golden):
    # 2020-01 uses the CPI of 2019-12: 4.5%. Urban 655 × 4.5% = 29.475 → 29.48 (half up)
    assert amount(golden, "2020-01", A3["id"], "dibao", "price_subsidy") == D("29.48")
    assert amount(golden, "2020-01", T2["id"], "tekun", "price_subsidy") == D("29.48")
    # every covered dibao member counts, paid to the household's account
    members = lines(golden, "2020-01", "dibao", "price_subsidy")
    assert {r[6] for r in members} >= {A1["id"], A2["id"], A3["id"]}
    assert {r[5] for r in members if r[6] in (A2["id"], A3["id"])} == {acct(A1)}
    # orphans are not covered outside the 2020 window
    assert lines(golden, "2020-01", "orphan", "price_subsidy") == []


def test_doubled_month(golden):
    # 2020-03 uses the CPI of 2020-02, 5.2%, doubled: 655 × 5.2% × 2 = 68.12
    assert amount(golden, "2020-03", A1["id"], "dibao", "price_subsidy") == D("68.12")
    # April uses April's standard (688, the raise is first paid in April): 688 × 4.3% × 2 = 59.168 → 59.17
    assert amount(golden, "2020-04", A1["id"], "dibao", "price_subsidy") == D("59.17")


def test_raise_pays_arrears_in_april_only_for_months_paid(golden):
    # HH1, paid January to March at 655: (688 − 655) × 3 = 99.00 for each month
    for s in ("2020-01", "2020-02", "2020-03"):
        assert amount(golden, "2020-04", A1["id"], "dibao", "arrears", s) == D("99.00")
    assert amount(golden, "2020-04", A1["id"], "dibao") == D("1464.00")  # 688×3 − 600
    # HH5 enrolled in March: the March difference alone, 688 − 655 = 33.00
    rows = lines(golden, "2020-04", "dibao", "arrears", L1["id"])
    assert [(r[2], r[3]) for r in rows] == [("2020-03", D("33.00"))]
    # HH2 stays on the floor: max(688×2 − 1280 = 96, 100) = 100 = what was paid: no arrears
    assert lines(golden, "2020-04", "dibao", "arrears", B1["id"]) == []
    # no arrears before April: January to March payrolls pay the old standard
    assert query(golden, "SELECT count(*) FROM payment_ledger WHERE payroll_month < '2020-04' "
                         "AND arrears_cause = 'raise_back_pay'")[0][0] == 0


def test_late_enrolment_is_paid_the_months_not_yet_paid(golden):
    # HH6 enrolled in April with enrolled_from February: February and March at the standard the April
    # payroll applies to them (688), 688 − 100 = 588.00 each, plus April 588.00
    rows = lines(golden, "2020-04", "dibao", None, F1["id"])
    program_lines = [(r[1], r[2], r[3]) for r in rows if r[1] != "price_subsidy"]
    assert program_lines == [("arrears", "2020-02", D("588.00")), ("arrears", "2020-03", D("588.00")),
                             ("regular", "2020-04", D("588.00"))]


def test_fund_split_of_an_odd_fen_amount(golden):
    # rural price subsidy 450 × 4.5% = 20.25 = 2025 fen; shares 0 / 0.5 / 0.25 / 0.25 give
    # 0 / 1012.5 / 506.25 / 506.25: floors 0 + 1012 + 506 + 506 = 2024; the spare fen goes to the
    # largest remainder (provincial, .5) → 0.00 / 10.13 / 5.06 / 5.06
    row = query(golden, "SELECT amount, fund_central, fund_provincial, fund_city, fund_county FROM payment_ledger "
                        "WHERE payroll_month = '2020-01' AND id_number = ? AND line_type = 'price_subsidy'", [R1["id"]])
    assert row == [(D("20.25"), D("0.00"), D("10.13"), D("5.06"), D("5.06"))]
    # Shenyang dibao 0.40 / 0.10 / 0.30 / 0.20 of 1365.00
    row = query(golden, "SELECT fund_central, fund_provincial, fund_city, fund_county FROM payment_ledger "
                        "WHERE payroll_month = '2020-01' AND id_number = ? AND line_type = 'regular'", [A1["id"]])
    assert row == [(D("546.00"), D("136.50"), D("409.50"), D("273.00"))]


def test_each_line_names_its_rule_versions(golden):
    versions, inputs = query(golden, "SELECT rule_versions, inputs FROM payment_ledger WHERE payroll_month = '2020-04' "
                                     "AND id_number = ? AND line_type = 'arrears' AND service_month = '2020-01'",
                             [A1["id"]])[0]
    assert "dibao/standard/2101/城市/*@2020-01#2020-04" in versions
    assert json.loads(inputs)["household_size"] == 3


def test_triggered_basis_and_a_person_in_three_programs_paid_once(tmp_path):
    """A rule on the `triggered` basis with both indices over: the larger rate (food 17.4% in
    2019-12) applies: 655 × 17.4% = 113.97. A child in dibao, orphans and the nursing subsidy gets
    one price subsidy line, carried by the first program of the rule's list (dibao)."""
    ref = copy_reference(tmp_path)
    (ref / "price_linkage.csv").write_text(
        "effective_from,effective_to,cpi_threshold,food_threshold,index_lag,basis,multiplier,minimum,rounding,programs\n"
        "2016-07,,3.5,6.0,1,triggered,1,0,fen,dibao;tekun;orphan;disability\n", encoding="utf-8")
    child = person(51, "20100101")
    head = person(52, "19800101")
    guardian = person(53, "19700101")
    inbox = tmp_path / "inbox"
    m = "2020-01"
    write_csv(roster_path(inbox, m, "dibao", f"{C}_dibao_202001.csv"), DIBAO, [
        common(head) + ["H9", "户主", 2, "0", ""], common(child, account=False) + ["H9", "子女", 2, "0", ""]])
    write_csv(roster_path(inbox, m, "orphan", f"{C}_orphan_202001.csv"), ORPHAN, [
        [C, child["name"], child["id"], child["sex"], "城市", "中国工商银行", acct(guardian), guardian["name"],
         "2019-06", "", "", "社会散居", guardian["name"], guardian["id"]]])
    write_csv(roster_path(inbox, m, "disability", f"{C}_disability_202001.csv"), DISABILITY, [
        common(child) + ["护理补贴", child["id"] + "51", "智力", "一级"]])
    run(tmp_path, m, reference=ref)
    wh = tmp_path / "warehouse.duckdb"
    price = lines(wh, m, None, "price_subsidy", child["id"])
    assert [(r[0], r[3]) for r in price] == [("dibao", D("113.97"))]
    assert {r[0] for r in lines(wh, m, None, "regular", child["id"])} == {"orphan", "disability_nursing"}
