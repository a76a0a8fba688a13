"""Tests of the reference model. Every expected value is worked out by hand in the comments."""
import csv
from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.model.rules import MonthInput, Reference, ReferenceGap, add_months, run_history, split_funds

BRIEF = Path(__file__).resolve().parents[2] / "data" / "reference"  # the shipped tables
CITY, RURAL = "城市", "农村"

pytestmark = pytest.mark.unit  # the model alone: pure Python


# ----------------------------------------------------------------------------- builders
def pid(n, birth="19600101", region="210102"):
    return f"{region}{birth}{n:03d}1"


def base(region="210102", ur=CITY, enrolled_from="2019-01", enrolled_to="", **kw):
    row = dict(region_code=region, name="x", sex="男", urban_rural=ur, bank_name="b",
               bank_account="123456789012", account_holder="x", enrolled_from=enrolled_from,
               enrolled_to=enrolled_to, approved_amount="")
    row.update(kw)
    return row


def household(hid, members, income, **kw):
    """members: list of (id, relation, class_category)."""
    return [base(id_number=i, household_id=hid, relation=rel, household_size=str(len(members)),
                 household_income=str(income), class_category=cls, **kw) for i, rel, cls in members]


def tekun(i, care="全自理", placement="分散供养", **kw):
    return base(id_number=i, placement=placement, care_level=care, institution_code="", **kw)


def orphan(i, placement="社会散居", **kw):
    return base(id_number=i, placement=placement, guardian_name="g", guardian_id_number="", **kw)


def disability(i, sub, grade, **kw):
    return base(id_number=i, subsidy_type=sub, disability_cert_no=i + "1" + grade,
                disability_category="1", disability_grade=grade, **kw)


def std(program, component, amount, region="21", ur="*", cat="*", frm="2019-01", to="", first=""):
    return dict(program=program, component=component, region_code=region, urban_rural=ur,
                category=cat, amount=str(amount), effective_from=frm, effective_to=to, first_payroll=first)


STANDARDS = [
    std("dibao", "standard", 500, ur=CITY), std("dibao", "standard", 300, ur=RURAL),
    std("tekun", "basic", 700), std("tekun", "care", 100, cat="全自理"), std("tekun", "care", 300, cat="半护理"),
    std("tekun", "care", 600, cat="全护理"),
    std("orphan", "basic", 1200, cat="社会散居"), std("orphan", "basic", 1700, cat="机构养育"),
    std("orphan", "basic", 1200, cat="事实无人抚养"),
    std("disability", "living", 70), std("disability", "nursing", 55, cat="1"),
    std("dibao", "class_addon", 30, cat="老年"), std("dibao", "class_addon", 60, cat="重残"),
    std("dibao", "class_addon", 60, cat="重病"), std("dibao", "class_addon", 40, cat="未成年"),
]
SHARES = [dict(program=p, region_code="21", central="0.50", provincial="0.20", city="0.15",
               county="0.15", effective_from="2019-01") for p in ("dibao", "tekun", "orphan", "disability")]


def linkage(cpi_t="3.5", food_t="", basis="cpi", mult="1", minimum="0", rounding="fen",
            programs="dibao;tekun", frm="2019-01", to=""):
    return dict(effective_from=frm, effective_to=to, cpi_threshold=cpi_t, food_threshold=food_t,
                index_lag="1", basis=basis, multiplier=mult, minimum=minimum, rounding=rounding,
                programs=programs)


def cpi_rows(overrides=None):
    """Quiet national CPI 1.0 / food 1.0 for 2019-2021, with overrides {month: (cpi, food)}."""
    rows, m = [], "2019-01"
    while m <= "2021-12":
        c, f = (overrides or {}).get(m, ("1.0", "1.0"))
        rows.append(dict(month=m, area="00", cpi_yoy=c, food_yoy=f))
        m = add_months(m, 1)
    return rows


def ref(standards=None, extra=(), cpi=None, rules=None, shares=None, exclusions=()):
    return Reference(standards=list(standards or STANDARDS) + list(extra), cpi=cpi_rows() if cpi is None else cpi,
                     price_linkage=rules or [linkage()], fund_shares=shares or SHARES,
                     exclusions=list(exclusions))


def month(p, deaths=(), withdrawn=(), **rosters):
    return MonthInput(p, {k: list(v) for k, v in rosters.items()}, list(deaths), list(withdrawn))


def death(i, date):
    return dict(id_number=i, name="x", death_date=date, source="公安")


def lines(result, **match):
    return [ln for ln in result.lines if all(getattr(ln, k) == v for k, v in match.items())]


def one(result, **match):
    found = lines(result, **match)
    assert len(found) == 1, found
    return found[0]


def read_csv(name):
    with open(BRIEF / name, encoding="utf-8-sig") as f:
        return [{k: (v or "").strip() for k, v in r.items()} for r in csv.DictReader(f)]


def shipped_ref():
    return Reference(read_csv("standards.csv"), read_csv("cpi.csv"), read_csv("price_linkage.csv"),
                     read_csv("fund_shares.csv"), read_csv("exclusions.csv"))


A, B, C = pid(1), pid(2), pid(3)


# ----------------------------------------------------------------------------- dibao
def test_dibao_gap_exactly_zero_no_line_whatever_the_floor():
    # 500 x 2 - 1000 = 0 -> not eligible; floor 50 x 2 does not rescue it
    r = ref(extra=[std("dibao", "floor", 50)])
    res = run_history(r, [month("2020-01", dibao=household("H", [(A, "户主", ""), (B, "配偶", "")], 1000))])
    assert res["2020-01"].lines == []


def test_dibao_gap_one_fen_without_floor():
    # 500 x 2 - 999.99 = 0.01 -> a line of 0.01 (no floor row = no floor)
    res = run_history(ref(), [month("2020-01", dibao=household("H", [(A, "户主", ""), (B, "配偶", "")], "999.99"))])
    ln = one(res["2020-01"], program="dibao")
    assert (ln.amount, ln.id_number, ln.status, ln.line_type) == (D("0.01"), A, "payable", "regular")
    # 1 fen x (0.50, 0.20, 0.15, 0.15): floors 0,0,0,0; the fen goes to the largest remainder (central)
    assert ln.fund == (D("0.01"), D("0"), D("0"), D("0"))


def test_dibao_floor_then_addons():
    # gap 500 x 2 - 940 = 60 < floor 50 x 2 = 100 -> 100; plus 老年 add-on 30 -> 130
    r = ref(extra=[std("dibao", "floor", 50)])
    res = run_history(r, [month("2020-01", dibao=household("H", [(A, "户主", "老年"), (B, "配偶", "")], 940))])
    assert one(res["2020-01"], program="dibao").amount == D("130.00")


def test_dibao_addons_do_not_stack():
    # gap 500 x 3 - 600 = 900; A 老年;重残 -> max(30, 60) = 60; B 未成年 40; C none -> 900 + 100 = 1000
    hh = household("H", [(A, "户主", "老年;重残"), (B, "子女", "未成年"), (C, "配偶", "")], 600)
    res = run_history(ref(), [month("2020-01", dibao=hh)])
    assert one(res["2020-01"], program="dibao").amount == D("1000.00")


def test_dibao_rural_standard_by_urban_rural():
    # rural 300 x 2 - 100 = 500
    res = run_history(ref(), [month("2020-01", dibao=household("H", [(A, "户主", ""), (B, "配偶", "")], 100, ur=RURAL))])
    assert one(res["2020-01"], program="dibao").amount == D("500.00")


# ----------------------------------------------------------------------------- other programs
def test_tekun_basic_plus_care():
    # 700 + 300 (半护理) = 1000
    res = run_history(ref(), [month("2020-01", tekun=[tekun(A, care="半护理")])])
    assert one(res["2020-01"], program="tekun").amount == D("1000.00")


def test_orphan_paid_through_month_of_18th_birthday():
    kid = pid(7, birth="20020515")  # 18th birthday 2020-05-15
    ms = [month(m, orphan=[orphan(kid)]) for m in ("2020-04", "2020-05", "2020-06")]
    res = run_history(ref(), ms)
    assert one(res["2020-05"], program="orphan").amount == D("1200.00")  # the age-out month: paid
    assert lines(res["2020-06"], program="orphan") == []                  # the month after: not


def test_disability_living_only_for_dibao_members_and_nursing_by_grade():
    # A: dibao member, grade 1 -> living 70 and nursing 55; B: not on dibao -> nursing only
    ms = [month("2020-01", dibao=household("H", [(A, "户主", "")], 0),
                disability=[disability(A, "生活补贴", "1"), disability(A, "护理补贴", "1"),
                            disability(B, "生活补贴", "1"), disability(B, "护理补贴", "1")])]
    res = run_history(ref(), ms)["2020-01"]
    assert one(res, program="disability_living", id_number=A).amount == D("70.00")
    assert one(res, program="disability_nursing", id_number=A).amount == D("55.00")
    assert lines(res, program="disability_living", id_number=B) == []
    assert one(res, program="disability_nursing", id_number=B).amount == D("55.00")


def test_enrolment_bounds_regular_line():
    ms = [month("2020-01", tekun=[tekun(A, enrolled_to="2020-01"), tekun(B, enrolled_from="2020-02")])]
    res = run_history(ref(), ms)["2020-01"]
    assert [ln.id_number for ln in res.lines] == [A]


# ----------------------------------------------------------------------------- exclusions
EXCL = [dict(program_a="tekun", program_b="dibao", action="pay_a_only"),
        dict(program_a="tekun", program_b="disability:生活补贴", action="pay_a_only"),
        dict(program_a="orphan", program_b="dibao", action="flag")]


def test_exclusion_pay_a_only_removes_member_from_household():
    # B is on tekun: not counted in dibao -> 500 x 1 - 100 = 400 (not 900); tekun paid 800
    ms = [month("2020-01", dibao=household("H", [(A, "户主", ""), (B, "配偶", "")], 100), tekun=[tekun(B)])]
    res = run_history(ref(exclusions=EXCL), ms)["2020-01"]
    assert one(res, program="dibao").amount == D("400.00")
    assert one(res, program="tekun").amount == D("800.00")


def test_exclusion_subtype_and_flag():
    kid = pid(8, birth="20100101")
    ms = [month("2020-01", dibao=household("H", [(A, "户主", ""), (kid, "子女", "")], 0),
                tekun=[tekun(A)], orphan=[orphan(kid)],
                disability=[disability(A, "生活补贴", "1"), disability(A, "护理补贴", "1")])]
    res = run_history(ref(exclusions=EXCL), ms)["2020-01"]
    assert lines(res, program="disability_living") == []               # tekun + 生活补贴: pay_a_only
    assert one(res, program="disability_nursing").amount == D("55.00")  # 护理补贴 not named: paid
    # orphan + dibao is only 'flag': the child counts -> 500 x 1 (A excluded) - 0 = 500; orphan 1200
    assert one(res, program="dibao").amount == D("500.00")
    assert one(res, program="orphan").amount == D("1200.00")


# ----------------------------------------------------------------------------- price subsidy
def subsidy(r, roster, p="2020-02"):
    res = run_history(r, [month(p, **roster)])[p]
    return [ln for ln in res.lines if ln.line_type == "price_subsidy"]


def test_cpi_equal_to_threshold_triggers_and_just_below_does_not():
    hh = dict(dibao=household("H", [(A, "户主", "")], 0))
    # index month = 2020-02 - 1 = 2020-01; cpi 3.5 >= 3.5: 500 x 3.5 / 100 = 17.50
    ps = subsidy(ref(cpi=cpi_rows({"2020-01": ("3.5", "1.0")})), hh)
    assert [(p.id_number, p.amount, p.program, p.service_month) for p in ps] == [(A, D("17.50"), "dibao", "2020-02")]
    assert subsidy(ref(cpi=cpi_rows({"2020-01": ("3.4", "1.0")})), hh) == []  # 3.4 < 3.5


def test_blank_threshold_never_triggers():
    r = ref(cpi=cpi_rows({"2020-01": ("9.9", "99")}), rules=[linkage(cpi_t="", food_t="")])
    assert subsidy(r, dict(tekun=[tekun(A)])) == []


def test_rounding_fen_half_up():
    # 2101 city standard 655 x 4.5 / 100 = 29.475 -> 29.48 (never 29.47)
    r = ref(extra=[std("dibao", "standard", 655, region="2101", ur=CITY)], cpi=cpi_rows({"2020-01": ("4.5", "1")}))
    assert [p.amount for p in subsidy(r, dict(tekun=[tekun(A)]))] == [D("29.48")]


def test_rounding_yuan_half_up():
    r = ref(rules=[linkage(cpi_t="3.0", rounding="yuan")], cpi=cpi_rows({"2020-01": ("5.0", "1"), "2020-02": ("3.0", "1")}),
            extra=[std("dibao", "standard", 590, region="210103", ur=CITY),
                   std("dibao", "standard", 983, region="210104", ur=CITY)])
    x, y = pid(4, region="210103"), pid(5, region="210104")
    roster = dict(tekun=[tekun(x, region="210103"), tekun(y, region="210104")])
    # 590 x 5.0% = 29.50 -> 30 ; 983 x 5.0% = 49.15 -> 49
    assert [p.amount for p in subsidy(r, roster)] == [D("30"), D("49")]
    # index 2020-02 cpi 3.0: 590 x 3% = 17.70 -> 18 ; 983 x 3% = 29.49 -> 29
    assert [p.amount for p in subsidy(r, roster, p="2020-03")] == [D("18"), D("29")]


def test_minimum_applies_after_rounding():
    # 500 x 3.5% = 17.50 < minimum 20 -> 20
    r = ref(rules=[linkage(minimum="20")], cpi=cpi_rows({"2020-01": ("3.5", "1")}))
    assert [p.amount for p in subsidy(r, dict(tekun=[tekun(A)]))] == [D("20.00")]


@pytest.mark.parametrize("basis,cpi,food,expected", [
    ("food", "2.0", "8.0", "40.00"),       # food 8.0 >= 6: 500 x 8% = 40
    ("cpi", "4.0", "8.0", "20.00"),        # cpi basis: 500 x 4% = 20 even though food is larger
    ("triggered", "4.0", "8.0", "40.00"),  # both trigger: the larger, 8% -> 40
    ("triggered", "4.0", "5.9", "20.00"),  # food 5.9 < 6 does not trigger: 4% -> 20
])
def test_basis(basis, cpi, food, expected):
    r = ref(rules=[linkage(food_t="6.0", basis=basis)], cpi=cpi_rows({"2020-01": (cpi, food)}))
    assert [p.amount for p in subsidy(r, dict(tekun=[tekun(A)]))] == [D(expected)]


def test_multiplier_and_program_list():
    # 500 x 4% x 2 = 40; orphans covered only because the rule lists them
    kid = pid(9, birth="20100101")
    r = ref(rules=[linkage(mult="2", programs="dibao;tekun;orphan")], cpi=cpi_rows({"2020-01": ("4.0", "1")}))
    ps = subsidy(r, dict(orphan=[orphan(kid)]))
    assert [(p.program, p.amount) for p in ps] == [("orphan", D("40.00"))]
    assert subsidy(ref(cpi=cpi_rows({"2020-01": ("4.0", "1")})), dict(orphan=[orphan(kid)])) == []


def test_price_subsidy_once_per_person_first_listed_program_and_fund():
    # A: dibao head and disability -> one subsidy, carried by the first listed program covering A
    roster = dict(dibao=household("H", [(A, "户主", ""), (B, "配偶", "")], 0),
                  disability=[disability(A, "生活补贴", "1")])
    r = ref(rules=[linkage(programs="disability;dibao")], cpi=cpi_rows({"2020-01": ("4.0", "1")}))
    ps = {p.id_number: p for p in subsidy(r, roster)}
    assert len(ps) == 2 and ps[A].program == "disability_living" and ps[B].program == "dibao"
    # 500 x 4% = 20 each; no price_subsidy fund row here: disability shares 0.5/0.2/0.15/0.15
    assert ps[A].fund == (D("10.00"), D("4.00"), D("3.00"), D("3.00"))
    # with a price_subsidy row (0/0.5/0.25/0.25) it wins: 20 -> 0, 10, 5, 5
    r2 = ref(rules=r.price_linkage, cpi=r.cpi, shares=SHARES + [dict(
        program="price_subsidy", region_code="21", central="0", provincial="0.5", city="0.25",
        county="0.25", effective_from="2019-01")])
    assert {p.fund for p in subsidy(r2, roster)} == {(D("0"), D("10.00"), D("5.00"), D("5.00"))}


def test_ineligible_household_members_get_no_subsidy():
    # gap 500 - 600 < 0: no dibao line, so no price subsidy either
    r = ref(cpi=cpi_rows({"2020-01": ("4.0", "1")}))
    assert subsidy(r, dict(dibao=household("H", [(A, "户主", "")], 600))) == []


def test_provincial_cpi_row_wins_over_national():
    cpi = cpi_rows({"2020-01": ("9.0", "1")}) + [dict(month="2020-01", area="21", cpi_yoy="1.0", food_yoy="1.0")]
    assert subsidy(ref(cpi=cpi), dict(tekun=[tekun(A)])) == []  # provincial 1.0 < 3.5


# ----------------------------------------------------------------------------- fund split
def test_fund_split_remainders_to_the_fen():
    # 100.01 = 10001 fen x (0.4, 0.1, 0.3, 0.2) = 4000.4, 1000.1, 3000.3, 2000.2 -> +1 to central
    assert split_funds(D("100.01"), (D("0.4"), D("0.1"), D("0.3"), D("0.2"))) == (D("40.01"), D("10.00"), D("30.00"), D("20.00"))
    # 5 fen x (0.5, 0.25, 0.125, 0.125) = 2.5, 1.25, 0.625, 0.625 -> floors 2,1,0,0; 2 left: city, county
    assert split_funds(D("0.05"), (D("0.5"), D("0.25"), D("0.125"), D("0.125"))) == (D("0.02"), D("0.01"), D("0.01"), D("0.01"))
    # ties: 3 fen x 0.25 each = 0.75 each -> central, provincial, city
    assert split_funds(D("0.03"), (D("0.25"),) * 4) == (D("0.01"), D("0.01"), D("0.01"), D("0"))


@given(st.integers(min_value=1, max_value=10 ** 9))
def test_fund_split_always_adds_up(fen_total):
    amount = D(fen_total) / 100
    parts = split_funds(amount, (D("0.5"), D("0.25"), D("0.125"), D("0.125")))
    assert sum(parts) == amount and min(parts) >= 0


# ----------------------------------------------------------------------------- deaths
def test_death_known_person_paid_through_death_month_only():
    ms = [month("2020-01", deaths=[death(A, "2020-01-31")], tekun=[tekun(A)]),
          month("2020-02", tekun=[tekun(A)])]
    res = run_history(ref(), ms)
    assert len(lines(res["2020-01"], program="tekun")) == 1  # death month is paid
    assert lines(res["2020-02"], program="tekun") == []


def test_death_dated_after_report_month_is_not_applied():
    res = run_history(ref(), [month("2020-01", deaths=[death(A, "2020-03-01")], tekun=[tekun(A)]),
                              month("2020-02", tekun=[tekun(A)])])
    assert len(lines(res["2020-02"], program="tekun")) == 1


def test_head_death_holds_household_and_members_subsidies():
    # head A died 2020-01; Feb: computed from the roster as delivered (3 members, income 200):
    # 500 x 3 - 200 = 1300, held on A; B, C subsidies 500 x 4% = 20 each, held; A (dead) gets none
    hh = household("H", [(A, "户主", ""), (B, "配偶", ""), (C, "子女", "")], 200)
    r = ref(cpi=cpi_rows({"2020-01": ("4.0", "1")}))
    res = run_history(r, [month("2020-01", deaths=[death(A, "2020-01-10")], dibao=hh), month("2020-02", dibao=hh)])
    jan = one(res["2020-01"], program="dibao", line_type="regular")
    assert (jan.amount, jan.status) == (D("1300.00"), "payable")  # 500 x 3 - 200; death month paid
    feb = one(res["2020-02"], program="dibao", line_type="regular")
    assert (feb.amount, feb.status, feb.id_number) == (D("1300.00"), "held", A)
    ps = lines(res["2020-02"], line_type="price_subsidy")
    assert sorted((p.id_number, p.status, p.amount) for p in ps) == [(B, "held", D("20.00")), (C, "held", D("20.00"))]


def test_member_death_household_paid_as_delivered_without_their_subsidy():
    # B died 2020-01 (known in Feb): Feb paid as delivered, 500 x 2 - 200 = 800, payable;
    # price subsidy (index Jan cpi 4.0): A 500 x 4% = 20, B none
    hh = household("H", [(A, "户主", ""), (B, "配偶", "")], 200)
    r = ref(cpi=cpi_rows({"2020-01": ("4.0", "1")}))
    res = run_history(r, [month("2020-02", deaths=[death(B, "2020-01-05")], dibao=hh)])["2020-02"]
    feb = one(res, program="dibao", line_type="regular")
    assert (feb.amount, feb.status) == (D("800.00"), "payable")
    assert [(p.id_number, p.amount) for p in lines(res, line_type="price_subsidy")] == [(A, D("20.00"))]


def test_death_reported_late_creates_receivables():
    # tekun A died 2020-01-20, reported in the March payroll: February (paid 800) is a receivable
    ms = [month(m, tekun=[tekun(A)]) for m in ("2020-01", "2020-02")]
    ms.append(month("2020-03", deaths=[death(A, "2020-01-20")], tekun=[tekun(A)]))
    res = run_history(ref(), ms)
    assert lines(res["2020-03"]) == []
    assert [(x.payroll_month, x.service_month, x.program, x.line_type, x.id_number, x.amount)
            for x in res["2020-03"].receivables] == [("2020-02", "2020-02", "tekun", "regular", A, D("800.00"))]


def test_member_death_reported_late_only_their_own_lines_are_receivables():
    # household A+B, income 200: paid 500 x 2 - 200 = 800 per month, B's subsidy 500 x 4% = 20 in Feb.
    # B died 2020-01; learnt in March: only B's own Feb line (subsidy 20) is a receivable; the Feb
    # household line (800, on A) is not. March: paid as delivered, 500 x 2 - 200 = 800 (index Feb: none).
    hh = household("H", [(A, "户主", ""), (B, "配偶", "")], 200)
    r = ref(cpi=cpi_rows({"2020-01": ("4.0", "1")}))
    res = run_history(r, [month("2020-01", dibao=hh), month("2020-02", dibao=hh),
                          month("2020-03", deaths=[death(B, "2020-01-31")], dibao=hh)])
    got = sorted((x.service_month, x.line_type, x.id_number, x.amount) for x in res["2020-03"].receivables)
    assert got == [("2020-02", "price_subsidy", B, D("20.00"))]
    assert one(res["2020-03"], program="dibao").amount == D("800.00")


def test_head_death_reported_late_whole_household_line_is_receivable():
    hh = household("H", [(A, "户主", ""), (B, "配偶", "")], 200)
    res = run_history(ref(), [month("2020-01", dibao=hh), month("2020-02", dibao=hh),
                              month("2020-03", deaths=[death(A, "2020-01-31")], dibao=hh)])
    # head A died 2020-01, learnt in March: the Feb household line (500 x 2 - 200 = 800, on A) is a
    # receivable; March is computed as delivered, 500 x 2 - 200 = 800, and held
    assert [(x.service_month, x.amount) for x in res["2020-03"].receivables] == [("2020-02", D("800.00"))]
    march = one(res["2020-03"], program="dibao")
    assert (march.amount, march.status) == (D("800.00"), "held")


def test_death_withdrawn_months_withheld_are_owed_again():
    # head A "died" 2020-01 (reported Jan): Feb household line held; March withdraws the death:
    # March regular 500 x 2 - 200 = 800 payable, and Feb paid as arrears 800 (the held line is not counted)
    hh = household("H", [(A, "户主", ""), (B, "配偶", "")], 200)
    ms = [month("2020-01", deaths=[death(A, "2020-01-15")], dibao=hh), month("2020-02", dibao=hh),
          month("2020-03", withdrawn=[A], dibao=hh), month("2020-04", dibao=hh)]
    res = run_history(ref(), ms)
    assert one(res["2020-02"], program="dibao").status == "held"
    arr = one(res["2020-03"], line_type="arrears")
    assert (arr.service_month, arr.amount, arr.status, arr.id_number) == ("2020-02", D("800.00"), "payable", A)
    assert one(res["2020-03"], line_type="regular").status == "payable"
    assert lines(res["2020-04"], line_type="arrears") == []  # paid once


def test_death_withdrawn_person_not_paid_gets_arrears_and_no_new_receivables():
    # tekun A "died" 2020-01, known from Jan: Feb unpaid. March: withdrawn -> arrears for Feb 800
    ms = [month("2020-01", deaths=[death(A, "2020-01-15")], tekun=[tekun(A)]), month("2020-02", tekun=[tekun(A)]),
          month("2020-03", withdrawn=[A], tekun=[tekun(A)])]
    res = run_history(ref(), ms)
    assert lines(res["2020-02"]) == []
    assert [(x.service_month, x.line_type, x.amount) for x in res["2020-03"].lines] == [
        ("2020-03", "regular", D("800.00")), ("2020-02", "arrears", D("800.00"))]
    assert res["2020-03"].receivables == []


def test_withdrawn_after_late_report_pays_nothing_twice():
    # Feb was paid, death learnt in March (receivable), withdrawn in April: Feb is not paid again
    ms = [month("2020-02", tekun=[tekun(A)]), month("2020-03", deaths=[death(A, "2020-01-15")], tekun=[tekun(A)]),
          month("2020-04", withdrawn=[A], tekun=[tekun(A)])]
    res = run_history(ref(), ms)
    assert len(res["2020-03"].receivables) == 1
    # April: March (withheld while the death was known) is owed again: 800; February is not
    assert sorted((x.service_month, x.line_type, x.amount) for x in res["2020-04"].lines) == [
        ("2020-03", "arrears", D("800.00")), ("2020-04", "regular", D("800.00"))]


# ----------------------------------------------------------------------------- arrears
RAISE = [std("dibao", "standard", 550, ur=CITY, frm="2020-01", first="2020-03"),
         std("tekun", "basic", 750, frm="2020-01", first="2020-03")]


def test_raise_back_pay_to_someone_who_left_and_someone_who_died():
    # household H (A+B, income 200) on Jan and Feb rosters, gone in March.
    # Jan, Feb paid 500 x 2 - 200 = 800; March payroll applies 550 to Jan: 550 x 2 - 200 = 900 -> +100 each.
    # tekun C died 2020-02 (known): Jan and Feb were paid 800, now 750 + 100 = 850 -> +50 each.
    hh = household("H", [(A, "户主", ""), (B, "配偶", "")], 200)
    ms = [month("2020-01", dibao=hh, tekun=[tekun(C)]),
          month("2020-02", deaths=[death(C, "2020-02-10")], dibao=hh, tekun=[tekun(C)]),
          month("2020-03")]
    res = run_history(ref(extra=RAISE), ms)
    got = sorted((x.program, x.service_month, x.amount, x.status, x.id_number) for x in res["2020-03"].lines)
    assert got == [("dibao", "2020-01", D("100.00"), "payable", A), ("dibao", "2020-02", D("100.00"), "payable", A),
                   ("tekun", "2020-01", D("50.00"), "payable", C), ("tekun", "2020-02", D("50.00"), "payable", C)]


def test_raise_back_pay_uses_the_roster_of_the_service_month():
    # Jan: 3 members (500 x 3 - 200 = 1300); Feb: 2 members (800). March raise: Jan 550 x 3 - 200 = 1450
    # -> +150; Feb 550 x 2 - 200 = 900 -> +100
    jan = household("H", [(A, "户主", ""), (B, "配偶", ""), (C, "子女", "")], 200)
    feb = household("H", [(A, "户主", ""), (B, "配偶", "")], 200)
    res = run_history(ref(extra=RAISE), [month("2020-01", dibao=jan), month("2020-02", dibao=feb), month("2020-03", dibao=feb)])
    assert sorted((x.service_month, x.line_type, x.amount) for x in res["2020-03"].lines) == [
        ("2020-01", "arrears", D("150.00")), ("2020-02", "arrears", D("100.00")), ("2020-03", "regular", D("900.00"))]


def test_no_back_pay_for_months_deliberately_not_paid():
    # C was dead (known) in Feb: unpaid for Feb, no back pay for it; only Jan (paid) gets +50
    ms = [month("2020-01", deaths=[death(C, "2020-01-10")], tekun=[tekun(C)]), month("2020-02", tekun=[tekun(C)]),
          month("2020-03")]
    res = run_history(ref(extra=RAISE), ms)
    assert [(x.service_month, x.amount) for x in res["2020-03"].lines] == [("2020-01", D("50.00"))]


def test_late_enrolment_from_history_start():
    # history starts 2020-01; A first appears in March with enrolled_from 2019-11:
    # arrears for Jan and Feb only (800 each), none for 2019
    ms = [month("2020-01"), month("2020-02"), month("2020-03", tekun=[tekun(A, enrolled_from="2019-11")])]
    res = run_history(ref(), ms)
    assert sorted((x.service_month, x.line_type, x.amount) for x in res["2020-03"].lines) == [
        ("2020-01", "arrears", D("800.00")), ("2020-02", "arrears", D("800.00")), ("2020-03", "regular", D("800.00"))]


def test_late_enrolment_then_raise_top_up_is_held():
    # A enrolled late (Feb payroll, from Jan): Jan arrears 800 payable. March raise: 750 + 100 = 850
    # -> Jan top-up +50 held (Jan already carries a payable arrears line); Feb (regular) top-up +50 payable
    ms = [month("2020-01"), month("2020-02", tekun=[tekun(A, enrolled_from="2020-01")]),
          month("2020-03", tekun=[tekun(A, enrolled_from="2020-01")]),
          month("2020-04", tekun=[tekun(A, enrolled_from="2020-01")])]
    res = run_history(ref(extra=RAISE), ms)
    assert [(x.service_month, x.amount, x.status) for x in lines(res["2020-02"], line_type="arrears")] == [
        ("2020-01", D("800.00"), "payable")]
    assert sorted((x.service_month, x.amount, x.status) for x in lines(res["2020-03"], line_type="arrears")) == [
        ("2020-01", D("50.00"), "held"), ("2020-02", D("50.00"), "payable")]
    # D10: the held top-up is owed, not claimed: April states it again, held (850 - 800 = 50)
    assert [(x.service_month, x.amount, x.status) for x in lines(res["2020-04"], line_type="arrears")] == [
        ("2020-01", D("50.00"), "held")]


# ----------------------------------------------------------------------------- reference gaps
def test_missing_fund_share_refuses_the_month():
    shares = [s for s in SHARES if s["program"] != "orphan"]
    with pytest.raises(ReferenceGap, match="orphan"):
        run_history(ref(shares=shares), [month("2020-01", orphan=[orphan(pid(9, birth="20100101"))])])


def test_duplicate_standard_version_refuses_the_month():
    dup = [std("tekun", "basic", 710)]  # same key and effective_from as tekun/basic 700
    with pytest.raises(ReferenceGap, match="tekun/basic"):
        run_history(ref(extra=dup), [month("2020-01", tekun=[tekun(A)])])


def test_missing_standard_and_missing_cpi_refuse_the_month():
    # (changed by D3: a nursing grade without a standard is no longer a gap; a missing orphan
    # placement still is: no orphan/basic version for 事实无人抚养)
    without = ref(standards=[r for r in STANDARDS if r["category"] != "事实无人抚养"])
    with pytest.raises(ReferenceGap, match="orphan/basic"):
        run_history(without, [month("2020-01", orphan=[orphan(pid(9, birth="20100101"), placement="事实无人抚养")])])
    # D17: whether anyone needs it or not
    with pytest.raises(ReferenceGap, match="orphan/basic"):
        run_history(without, [month("2020-01", tekun=[tekun(A)])])
    with pytest.raises(ReferenceGap, match="cpi"):
        run_history(ref(cpi=[]), [month("2020-01", tekun=[tekun(A)])])


# ----------------------------------------------------------------------------- shipped tables
def test_shipped_tables_dibao_2101_across_the_2020_raise():
    # 210102 city, 2 members, income 300. Standard 2101 city 655 (longest prefix over 21's 622).
    hh = household("H", [(A, "户主", ""), (B, "配偶", "")], 300)
    ms = [month(f"2020-{m:02d}", dibao=hh) for m in range(1, 8)]
    res = run_history(shipped_ref(), ms)
    jan = one(res["2020-01"], program="dibao", line_type="regular")
    assert jan.amount == D("1010.00")  # 655 x 2 - 300 = 1010 (the floor 50 x 2 = 100 does not bite)
    assert jan.fund == (D("404.00"), D("101.00"), D("303.00"), D("202.00"))  # dibao 2101: 0.4/0.1/0.3/0.2
    # Jan: rule 2016-07, index 2019-12 cpi 4.5 >= 3.5: 655 x 4.5% = 29.475 -> 29.48 each member
    ps = lines(res["2020-01"], line_type="price_subsidy")
    assert sorted(p.amount for p in ps) == [D("29.48")] * 2
    # price_subsidy row 0/0.5/0.25/0.25: 2948 fen -> 0, 1474, 737, 737
    assert ps[0].fund == (D("0"), D("14.74"), D("7.37"), D("7.37"))
    # Mar: rule 2020-03 (x2), index Feb 5.2: 655 x 5.2% x 2 = 68.12
    assert {p.amount for p in lines(res["2020-03"], line_type="price_subsidy")} == {D("68.12")}
    # Apr: 688 applies: regular 688 x 2 - 300 = 1076; Jan-Mar back pay 1076 - 1010 = 66 each
    apr = res["2020-04"]
    assert one(apr, line_type="regular").amount == D("1076.00")
    assert sorted((x.service_month, x.amount) for x in lines(apr, line_type="arrears")) == [
        ("2020-01", D("66.00")), ("2020-02", D("66.00")), ("2020-03", D("66.00"))]
    # Apr subsidy: index Mar 4.3: 688 x 4.3% x 2 = 59.168 -> 59.17 ; May: index Apr cpi 3.3 < 3.5, but
    # food 14.8 >= 6.0 (the shipped 2020 rule keeps the food threshold); basis cpi:
    # 688 x 3.3% x 2 = 45.408 -> 45.41
    assert {p.amount for p in lines(apr, line_type="price_subsidy")} == {D("59.17")}
    assert {p.amount for p in lines(res["2020-05"], line_type="price_subsidy")} == {D("45.41")}
    # Jul: back to rule 2016-07, index Jun cpi 2.5 < 3.5 but food 11.1 >= 6.0; basis cpi: 688 x 2.5% = 17.20
    assert {p.amount for p in lines(res["2020-07"], line_type="price_subsidy")} == {D("17.20")}
    # no raise arrears again after April
    assert lines(res["2020-05"], line_type="arrears") == []


def test_shipped_tables_tekun_and_exclusion():
    # 210202 rural tekun 半护理: 676 + 300 = 976 in Mar; Apr 723 + 300 = 1023, Mar back pay 47.
    # Also on dibao and 生活补贴: both excluded (tekun pay_a_only); the household has nobody else -> no line
    x = pid(6, region="210202")
    roster = dict(tekun=[tekun(x, care="半护理", region="210202", ur=RURAL)],
                  dibao=household("H", [(x, "户主", "")], 0, region="210202", ur=RURAL),
                  disability=[disability(x, "生活补贴", "2", region="210202", ur=RURAL)])
    res = run_history(shipped_ref(), [month("2020-03", **roster), month("2020-04", **roster)])
    assert [(ln.program, ln.line_type, ln.amount) for ln in res["2020-03"].lines if ln.line_type != "price_subsidy"] == [
        ("tekun", "regular", D("976.00"))]
    assert sorted((ln.line_type, ln.service_month, ln.amount) for ln in lines(res["2020-04"], program="tekun")) == [
        ("arrears", "2020-03", D("47.00")), ("price_subsidy", "2020-04", D("47.82")), ("regular", "2020-04", D("1023.00"))]
    # Apr subsidy (rule 2020-03, index Mar 4.3): rural 2102 standard 556 x 4.3% x 2 = 47.816 -> 47.82
    # Mar subsidy (index Feb 5.2): 520 x 5.2% x 2 = 54.08, carried by tekun (dibao excluded)
    assert [(p.program, p.amount) for p in lines(res["2020-03"], line_type="price_subsidy")] == [("tekun", D("54.08"))]


def test_member_death_withdrawn_household_owed_nothing_more():
    # B "died" 2020-01 (known in Jan): Feb paid as delivered 500 x 2 - 200 = 800; Feb subsidy
    # (index Jan cpi 4.0) 500 x 4% = 20 for A only. March withdraws it: Feb owed 800, paid 800 -> no
    # arrears; B's withheld Feb subsidy is not back paid (price subsidy: payroll month only).
    # March: 800 regular, no subsidy (index Feb cpi 1.0).
    hh = household("H", [(A, "户主", ""), (B, "配偶", "")], 200)
    ms = [month("2020-01", deaths=[death(B, "2020-01-15")], dibao=hh), month("2020-02", dibao=hh),
          month("2020-03", withdrawn=[B], dibao=hh)]
    res = run_history(ref(cpi=cpi_rows({"2020-01": ("4.0", "1")})), ms)
    assert one(res["2020-02"], line_type="regular").amount == D("800.00")
    assert [p.id_number for p in lines(res["2020-02"], line_type="price_subsidy")] == [A]
    assert [(x.service_month, x.line_type, x.amount, x.status) for x in res["2020-03"].lines] == [
        ("2020-03", "regular", D("800.00"), "payable")]


def test_member_death_learnt_after_back_pay_recovers_only_their_own_lines():
    # A+B, income 200. Jan, Feb paid 500 x 2 - 200 = 800; March raise 550: Jan, Feb arrears
    # 550 x 2 - 200 = 900 - 800 = 100 each; March regular 900. Feb subsidy (index Jan cpi 4.0):
    # 500 x 4% = 20 each for A and B. B died 2019-12, learnt in April: the household lines (regular
    # and arrears, on A) are not receivables; B's own Feb subsidy 20 is.
    hh = household("H", [(A, "户主", ""), (B, "配偶", "")], 200)
    ms = [month("2020-01", dibao=hh), month("2020-02", dibao=hh), month("2020-03", dibao=hh),
          month("2020-04", deaths=[death(B, "2019-12-20")], dibao=hh)]
    res = run_history(ref(extra=RAISE, cpi=cpi_rows({"2020-01": ("4.0", "1")})), ms)
    assert [(x.payroll_month, x.service_month, x.line_type, x.id_number, x.amount) for x in res["2020-04"].receivables] == [
        ("2020-02", "2020-02", "price_subsidy", B, D("20.00"))]
    # nothing netted: April pays 550 x 2 - 200 = 900 as delivered, and no arrears (Jan-Mar have 900)
    assert [(x.line_type, x.amount) for x in res["2020-04"].lines] == [("regular", D("900.00"))]


def test_held_household_months_get_no_raise_back_pay():
    # head A died 2020-01 (known): Feb held. March raise: no payable arrears for Feb (not paid), Jan +150
    hh = household("H", [(A, "户主", ""), (B, "配偶", ""), (C, "子女", "")], 200)
    ms = [month("2020-01", deaths=[death(A, "2020-01-15")], dibao=hh), month("2020-02", dibao=hh), month("2020-03", dibao=hh)]
    res = run_history(ref(extra=RAISE), ms)
    # Jan: 550 x 3 - 200 = 1450 vs 500 x 3 - 200 = 1300 -> +150 ; March regular as delivered:
    # 550 x 3 - 200 = 1450, held. (Changed by D6: Feb, still held, is restated as a held arrears
    # line at the amount due now, 550 x 3 - 200 = 1450.)
    assert sorted((x.service_month, x.line_type, x.amount, x.status) for x in res["2020-03"].lines) == [
        ("2020-01", "arrears", D("150.00"), "payable"), ("2020-02", "arrears", D("1450.00"), "held"),
        ("2020-03", "regular", D("1450.00"), "held")]


def test_head_death_learnt_after_back_pay_recovers_every_household_line():
    # A+B, income 200. Jan, Feb paid 500 x 2 - 200 = 800; March raise 550: Jan, Feb arrears
    # 900 - 800 = 100 each, March regular 900. Head A died 2020-01, learnt in April: Feb regular 800
    # and Feb arrears 100 (March payroll), and the March regular 900 are receivables; Jan (the death
    # month) is not. April: 550 x 2 - 200 = 900, held; no arrears.
    hh = household("H", [(A, "户主", ""), (B, "配偶", "")], 200)
    ms = [month("2020-01", dibao=hh), month("2020-02", dibao=hh), month("2020-03", dibao=hh),
          month("2020-04", deaths=[death(A, "2020-01-20")], dibao=hh)]
    res = run_history(ref(extra=RAISE), ms)
    assert sorted((x.payroll_month, x.service_month, x.line_type, x.id_number, x.amount) for x in res["2020-04"].receivables) == [
        ("2020-02", "2020-02", "regular", A, D("800.00")), ("2020-03", "2020-02", "arrears", A, D("100.00")),
        ("2020-03", "2020-03", "regular", A, D("900.00"))]
    assert [(x.line_type, x.amount, x.status) for x in res["2020-04"].lines] == [("regular", D("900.00"), "held")]


# ----------------------------------------------------------------------------- decisions D1-D9
def test_d2_late_enrolment_settled_once_but_topped_up_by_a_raise():
    # raise: tekun/basic 750 from 2020-01, first applied by the April payroll
    raise_apr = [std("tekun", "basic", 750, frm="2020-01", first="2020-04")]
    ms = [month("2020-01"),
          month("2020-02", tekun=[tekun(A, care="全自理", enrolled_from="2020-01")]),
          month("2020-03", tekun=[tekun(A, care="半护理", enrolled_from="2020-01")]),
          month("2020-04", tekun=[tekun(A, care="半护理", enrolled_from="2020-01")])]
    res = run_history(ref(extra=raise_apr), ms)
    # Feb: regular 700 + 100 = 800; Jan late-enrolment arrears from the Feb roster 700 + 100 = 800
    assert sorted((x.service_month, x.line_type, x.amount, x.status) for x in res["2020-02"].lines) == [
        ("2020-01", "arrears", D("800.00"), "payable"), ("2020-02", "regular", D("800.00"), "payable")]
    # Mar: care 半护理 -> regular 700 + 300 = 1000; Jan is NOT recomputed from the March roster
    # (that would be 1000 - 800 = 200 more); Feb (Feb roster 全自理) 800 - 800 = 0 -> no arrears
    assert lines(res["2020-03"], line_type="arrears") == []
    assert one(res["2020-03"], line_type="regular").amount == D("1000.00")
    # Apr raise: regular 750 + 300 = 1050. Jan from the roster that paid it (Feb, 全自理):
    # 750 + 100 = 850 - 800 = 50, held (Jan already has a payable arrears line) -- not 1050 - 800 = 250.
    # Feb (Feb roster): 850 - 800 = 50 payable; Mar (Mar roster 半护理): 1050 - 1000 = 50 payable.
    assert sorted((x.service_month, x.amount, x.status) for x in lines(res["2020-04"], line_type="arrears")) == [
        ("2020-01", D("50.00"), "held"), ("2020-02", D("50.00"), "payable"), ("2020-03", D("50.00"), "payable")]


def test_d3_nursing_grade_without_standard_no_line_but_missing_care_level_is_a_gap():
    # nursing standard exists for grade 1 only (55): B grade 3 -> no line, no gap; C grade 1 -> 55
    ms = [month("2020-01", disability=[disability(B, "护理补贴", "3"), disability(C, "护理补贴", "1")])]
    res = run_history(ref(), ms)["2020-01"]
    assert [(x.id_number, x.program, x.amount) for x in res.lines] == [(C, "disability_nursing", D("55.00"))]
    # tekun care level 全护理 has no tekun/care version: the month is refused (D17: even with nobody
    # on that level, or on tekun at all)
    without = ref(standards=[r for r in STANDARDS if r["category"] != "全护理"])
    with pytest.raises(ReferenceGap, match="tekun/care"):
        run_history(without, [month("2020-01", tekun=[tekun(A, care="全护理")])])
    with pytest.raises(ReferenceGap, match="tekun/care"):
        run_history(without, ms)


@pytest.mark.parametrize("rule,cpi,food", [
    (dict(food_t="6.0", basis="cpi"), "-0.5", "8.0"),   # food 8.0 >= 6 triggers; basis cpi -0.5
    (dict(food_t="6.0", basis="cpi"), "0.0", "8.0"),    # basis index exactly 0
    (dict(cpi_t="-1.0", basis="triggered"), "-0.5", "1.0"),  # cpi -0.5 >= -1.0 triggers, rate -0.5
])
def test_d4_no_subsidy_on_a_falling_index_whatever_the_minimum(rule, cpi, food):
    # 500 x -0.5% = -2.50 (or 500 x 0% = 0) -> before D4 the minimum 10 would have paid 10; now nothing
    r = ref(rules=[linkage(minimum="10", **rule)], cpi=cpi_rows({"2020-01": (cpi, food)}))
    assert subsidy(r, dict(tekun=[tekun(A)])) == []


def test_d6_held_months_are_restated_until_release():
    # H: head A (+B), income 200, A died 2019-12 (reported Jan). H2: head C alone, income 100, C died
    # 2019-12 (reported Jan), enrolled from 2020-01 but first delivered in Feb (late enrolment while held).
    # Raise: dibao 550 from 2020-01, first applied by the March payroll. April withdraws both deaths.
    h1 = household("H", [(A, "户主", ""), (B, "配偶", "")], 200)
    h2 = household("H2", [(C, "户主", "")], 100, enrolled_from="2020-01")
    dead = [death(A, "2019-12-10"), death(C, "2019-12-10")]
    ms = [month("2020-01", deaths=dead, dibao=h1), month("2020-02", dibao=h1 + h2),
          month("2020-03", dibao=h1 + h2), month("2020-04", withdrawn=[A, C], dibao=h1 + h2),
          month("2020-05", dibao=h1 + h2)]
    res = run_history(ref(extra=RAISE), ms)

    def got(p):
        return sorted((x.id_number, x.service_month, x.line_type, x.amount, x.status) for x in res[p].lines)
    # Jan: H 500 x 2 - 200 = 800 held
    assert got("2020-01") == [(A, "2020-01", "regular", D("800.00"), "held")]
    # Feb: H Feb 800 held + Jan restated 800 held; H2 Feb 500 - 100 = 400 held + Jan (never computed) 400 held
    assert got("2020-02") == [(A, "2020-01", "arrears", D("800.00"), "held"), (A, "2020-02", "regular", D("800.00"), "held"),
                              (C, "2020-01", "arrears", D("400.00"), "held"), (C, "2020-02", "regular", D("400.00"), "held")]
    # Mar (third payroll): the amount due now, 550 x 2 - 200 = 900 for H, 550 - 100 = 450 for H2:
    # Jan and Feb restated held, March regular held
    assert got("2020-03") == [
        (A, "2020-01", "arrears", D("900.00"), "held"), (A, "2020-02", "arrears", D("900.00"), "held"),
        (A, "2020-03", "regular", D("900.00"), "held"),
        (C, "2020-01", "arrears", D("450.00"), "held"), (C, "2020-02", "arrears", D("450.00"), "held"),
        (C, "2020-03", "regular", D("450.00"), "held")]
    # Apr: released: each held month paid once as payable arrears (900 / 450), regulars payable
    assert got("2020-04") == [
        (A, m, "arrears", D("900.00"), "payable") for m in ("2020-01", "2020-02", "2020-03")] + [
        (A, "2020-04", "regular", D("900.00"), "payable")] + [
        (C, m, "arrears", D("450.00"), "payable") for m in ("2020-01", "2020-02", "2020-03")] + [
        (C, "2020-04", "regular", D("450.00"), "payable")]
    # May: nothing owed for earlier months any more
    assert lines(res["2020-05"], line_type="arrears") == []


def test_d8_empty_exclusions_table_pays_both():
    # no exclusion rows: B on tekun still counts in dibao -> 500 x 2 - 100 = 900; tekun 700 + 100 = 800
    ms = [month("2020-01", dibao=household("H", [(A, "户主", ""), (B, "配偶", "")], 100), tekun=[tekun(B)])]
    res = run_history(ref(exclusions=[]), ms)["2020-01"]
    assert one(res, program="dibao").amount == D("900.00")
    assert one(res, program="tekun").amount == D("800.00")


def test_d9_program_without_any_fund_share_refuses_the_month_even_if_nobody_is_on_it():
    shares = [s for s in SHARES if s["program"] != "orphan"]
    with pytest.raises(ReferenceGap, match="orphan"):  # nobody is on orphan
        run_history(ref(shares=shares), [month("2020-01", tekun=[tekun(A)])])
    with pytest.raises(ReferenceGap, match="orphan"):  # nobody at all
        run_history(ref(shares=shares), [month("2020-01")])
