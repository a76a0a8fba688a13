"""Given/expect tests of what each unit is due (contract section 3): the standards it needs and the
version that applies (int_standard_needs, int_standard_resolved), the four program formulas
(int_dibao_household, int_tekun_person, int_orphan_person, int_disability_person, int_program_due),
the price-linked subsidy (int_price_subsidy) and temporary assistance (int_temporary_due).

The golden cases of tests/test_engine_golden.py are here as given/expect tests, on the shipped
figures for 和平区 210102 (tests/modeltest.py STANDARDS, CPI, PRICE_LINKAGE): dibao standard
urban 655.00 / rural 450.00, 688.00 / 482.00 effective 2020-01 first paid in the 2020-04 payroll;
floor 50.00 a person; add-ons 老年 30, 重残 60, 重病 60, 未成年 40; tekun basic urban 852.00, care
全自理 100, 半护理 300, 全护理 600; orphans 机构养育 1711.00, 社会散居 and 事实无人抚养 1273.00;
disability living 70.00, nursing 55.00 (grades 1 and 2); payroll M reads the CPI of M − 1:
2019-12 4.5%, 2020-02 5.2%, 2020-03 4.3%; March to June 2020 doubled, orphans covered.
"""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from tests.modeltest import (  # noqa: F401  (fixtures)
    CPI,
    PRICE_LINKAGE,
    STANDARDS,
    C,
    basis_row,
    connection_fixture,
    ledger_line,
    mt_fixture,
    person_id,
    unit_row,
)

pytestmark = pytest.mark.unit

# the people of tests/test_engine_golden.py
A1, A2, A3 = person_id(1, "19700101"), person_id(2, "19720202"), person_id(3, "20100303")  # HH1
B1, B2 = person_id(4, "19650101"), person_id(5, "19680101")  # HH2, on the floor
E1, E2 = person_id(6, "19500505"), person_id(7, "20110707")  # HH3, two add-on classes on the head
N1 = person_id(8, "19800808")  # HH4, income above the standard
F1 = person_id(10, "19760101")  # HH6, enrolled in April, entitled from February
R1 = person_id(11, "19600101")  # HH7, rural
T1, T2, T3 = person_id(21, "19400101"), person_id(22, "19410101"), person_id(23, "19420101")
O1, O2, O3 = person_id(31, "20120101"), person_id(32, "20100505"), person_id(33, "20110606")
PROGRAM_MODELS = ("int_dibao_household", "int_tekun_person", "int_orphan_person", "int_disability_person")
RELATIONS = ("户主", "配偶", "子女", "子女")


def household(hh, people, income, service="2020-01", classes=None, excluded=(), **values):
    """The basis rows of a dibao household: the first person is the head; household_size is the
    number of rows (contract section 2); classes: id -> class categories."""
    classes = classes or {}
    return [basis_row("dibao", p, service, i + 1, household_id=hh, relation=RELATIONS[i], household_size=len(people),
                      household_income=D(income), class_categories=classes.get(p), excluded_member=p in excluded,
                      **values)
            for i, p in enumerate(people)]


def _due_from_roster(mt, payroll, basis, units=()):
    """The standards each basis row needs, their versions, and the four program models."""
    mt.payroll(payroll)
    mt.reference(standards=STANDARDS)
    mt.given("int_basis_roster", basis)
    mt.given("int_units", list(units))
    for model in ("int_standard_needs", "int_standard_resolved", *PROGRAM_MODELS):
        mt.run(model)


def due(unit, service, amount, line_type="regular", eligible=True):
    return {"unit_key": unit, "service_month": service, "line_type": line_type, "eligible": eligible,
            "due": None if amount is None else D(amount)}


# --- the golden cases, from roster rows and standards.csv to what each unit is due -------------

def test_golden_dibao_households(mt):
    _due_from_roster(mt, "2020-01", [
        *household("H1", [A1, A2, A3], "600"),      # 655 × 3 − 600 = 1365.00
        *household("H2", [B1, B2], "1280.00"),      # 655 × 2 − 1280 = 30 < floor 50 × 2 → 100.00
        # 655 × 2 − 0 = 1310; head 老年 30 and 重残 60: only 60; child 未成年 40 → 1410.00
        *household("H3", [E1, E2], "0", classes={E1: ["老年", "重残"], E2: ["未成年"]}),
        *household("H4", [N1], "700"),              # 655 × 1 − 700 < 0: not eligible, whatever the floor
        *household("H7", [R1], "0", urban_rural="农村"),  # rural 450 − 0 = 450.00
    ])
    mt.expect("int_program_due", [due("H1", "2020-01", "1365.00"), due("H2", "2020-01", "100.00"),
                                  due("H3", "2020-01", "1410.00"), due("H4", "2020-01", None, eligible=False),
                                  due("H7", "2020-01", "450.00")])


def test_golden_dibao_household_lines_stand_on_the_head(mt):
    _due_from_roster(mt, "2020-01", household("H1", [A1, A2, A3], "600"))
    mt.expect("int_program_due", [{"unit_key": "H1", "id_number": A1, "household_id": "H1"}])


def test_golden_late_enrolment_months_use_the_standard_the_payroll_applies(mt):
    """HH6, first on April's roster, entitled from February: February and March at 688 (the
    version the April payroll applies to them), 688 − 100 = 588.00 each, and April."""
    _due_from_roster(mt, "2020-04", [
        *household("H6", [F1], "100", service="2020-02", line_type="arrears", basis_month="2020-04"),
        *household("H6", [F1], "100", service="2020-03", line_type="arrears", basis_month="2020-04"),
        *household("H6", [F1], "100", service="2020-04")])
    mt.expect("int_program_due", [due("H6", "2020-02", "588.00", "arrears"), due("H6", "2020-03", "588.00", "arrears"),
                                  due("H6", "2020-04", "588.00")])


def test_golden_raise_recomputes_a_paid_month_and_names_its_rule_versions(mt):
    """HH1's January in the April payroll, from January's roster: 688 × 3 − 600 = 1464.00 (1365.00
    was paid: int_payment_lines pays the 99.00 difference); the line names the new version."""
    _due_from_roster(mt, "2020-04", household("H1", [A1, A2, A3], "600", service="2020-01", line_type="arrears",
                                              basis="history", arrears_cause="raise_back_pay"))
    mt.expect("int_program_due", [due("H1", "2020-01", "1464.00", "arrears")])
    [line] = mt.rows("int_program_due", ["rule_versions", "inputs"])
    assert "dibao/standard/2101/城市/*@2020-01#2020-04" in line["rule_versions"]
    assert json.loads(line["inputs"])["household_size"] == 3


def test_golden_tekun_basic_plus_care_by_level(mt):
    _due_from_roster(mt, "2020-01", [
        basis_row("tekun", T1, "2020-01", 1, placement="集中供养", care_level="全自理", institution_code="INST01"),
        basis_row("tekun", T2, "2020-01", 2, placement="分散供养", care_level="半护理"),
        basis_row("tekun", T3, "2020-01", 3, placement="分散供养", care_level="全护理")])
    mt.expect("int_program_due", [due(T1, "2020-01", "952.00"),     # 852 + 100 全自理
                                  due(T2, "2020-01", "1152.00"),    # 852 + 300 半护理
                                  due(T3, "2020-01", "1452.00")])   # 852 + 600 全护理


def test_golden_orphans_by_placement(mt):
    _due_from_roster(mt, "2020-01", [basis_row("orphan", O1, "2020-01", 1, placement="机构养育"),
                                     basis_row("orphan", O2, "2020-01", 2, placement="社会散居"),
                                     basis_row("orphan", O3, "2020-01", 3, placement="事实无人抚养")])
    mt.expect("int_program_due", [due(O1, "2020-01", "1711.00"), due(O2, "2020-01", "1273.00"),
                                  due(O3, "2020-01", "1273.00")])


def test_golden_both_disability_subsidies_are_separate_lines(mt):
    """A2, grade 1 (肢体 = 4): living 70.00 and nursing 55.00, each its own ledger program."""
    _due_from_roster(mt, "2020-01", [
        basis_row("disability", A2, "2020-01", 1, subsidy_type="生活补贴", disability_category="4", disability_grade="1"),
        basis_row("disability", A2, "2020-01", 2, subsidy_type="护理补贴", disability_category="4", disability_grade="1")])
    mt.expect("int_program_due", [{"line_program": "disability_living", "due": D("70.00")},
                                  {"line_program": "disability_nursing", "due": D("55.00")}])


# --- int_standard_needs -------------------------------------------------------------------------

def test_each_program_needs_its_components_and_the_price_subsidy_the_dibao_standard(mt):
    """dibao: standard and floor of the head's county, each covered member's add-on classes (not an
    excluded member's); tekun basic and care by level; orphans by placement; disability living and
    nursing by grade; every unit the dibao standard of the payroll month (its price subsidy)."""
    mt.payroll("2020-04")
    mt.given("int_basis_roster", [
        *household("H3", [E1, E2, A3], "0", service="2020-03", line_type="arrears",
                   classes={E1: ["老年", "重残"], A3: ["重病"]}, excluded=(A3,)),
        basis_row("tekun", T2, "2020-04", placement="分散供养", care_level="半护理", urban_rural="农村"),
        basis_row("orphan", O2, "2020-04", placement="社会散居"),
        basis_row("disability", A2, "2020-04", subsidy_type="护理补贴", disability_grade="2"),
    ])
    mt.given("int_units", [unit_row("tekun", T2, "2020-04", urban_rural="农村")])
    need = lambda program, component, category, month, ur="城市": {  # noqa: E731
        "program": program, "component": component, "region_code": C, "urban_rural": ur, "category": category,
        "service_month": month}
    mt.expect("int_standard_needs", [
        need("dibao", "standard", "*", "2020-03"), need("dibao", "floor", "*", "2020-03"),
        need("dibao", "class_addon", "老年", "2020-03"), need("dibao", "class_addon", "重残", "2020-03"),
        need("tekun", "basic", "*", "2020-04", "农村"), need("tekun", "care", "半护理", "2020-04", "农村"),
        need("orphan", "basic", "社会散居", "2020-04"), need("disability", "nursing", "2", "2020-04"),
        need("dibao", "standard", "*", "2020-04", "农村"),
    ])


# --- int_standard_resolved ----------------------------------------------------------------------

def _needs(mt, *needs):
    mt.given("int_standard_needs", [{"program": p, "component": c, "region_code": r, "urban_rural": u, "category": k,
                                     "service_month": s} for p, c, r, u, k, s in needs])


def resolved(component, region, month, amount, version, program="dibao"):
    return {"program": program, "component": component, "region_code": region, "service_month": month,
            "amount": None if amount is None else D(amount), "version_id": version}


def test_the_longest_region_prefix_wins_and_a_value_matches_a_star(mt):
    """210102 finds 2101's 655 over the province's 622; 211302 (no city row) the province's; a
    class add-on of category 老年 the row for 老年 (urban_rural `*`); a need no row covers has none."""
    mt.payroll("2020-01")
    mt.reference(standards=STANDARDS)
    _needs(mt, ("dibao", "standard", C, "城市", "*", "2020-01"), ("dibao", "standard", "211302", "城市", "*", "2020-01"),
           ("dibao", "class_addon", C, "城市", "老年", "2020-01"), ("dibao", "standard", C, "城市", "*", "2018-06"),
           ("tekun", "care", C, "城市", "无此等级", "2020-01"))
    mt.expect("int_standard_resolved", [
        resolved("standard", C, "2020-01", "655.00", "dibao/standard/2101/城市/*@2018-07"),
        resolved("standard", "211302", "2020-01", "622.00", "dibao/standard/21/城市/*@2019-01"),
        resolved("class_addon", C, "2020-01", "30.00", "dibao/class_addon/21/*/老年@2019-01")])


def test_a_raise_applies_from_its_first_payroll_to_the_months_from_its_effective_from(mt):
    """688 (effective 2020-01, first_payroll 2020-04): the March payroll still applies 655 to March;
    the April payroll applies 688 to January to April, and 655 to December 2019."""
    mt.payroll("2020-03")
    mt.reference(standards=STANDARDS)
    _needs(mt, ("dibao", "standard", C, "城市", "*", "2020-03"))
    mt.expect("int_standard_resolved", [resolved("standard", C, "2020-03", "655.00", "dibao/standard/2101/城市/*@2018-07")])
    mt.payroll("2020-04")
    _needs(mt, *[("dibao", "standard", C, "城市", "*", m) for m in ("2019-12", "2020-01", "2020-04")])
    raised = "dibao/standard/2101/城市/*@2020-01#2020-04"
    mt.expect("int_standard_resolved", [resolved("standard", C, "2019-12", "655.00", "dibao/standard/2101/城市/*@2018-07"),
                                        resolved("standard", C, "2020-01", "688.00", raised),
                                        resolved("standard", C, "2020-04", "688.00", raised)])


def test_a_version_applies_from_effective_from_through_effective_to(mt):
    mt.payroll("2020-06")
    mt.reference(standards="""
        program,component,region_code,urban_rural,category,amount,effective_from,effective_to,first_payroll
        tekun,basic,2101,城市,*,852,2019-01,2020-02,
        tekun,basic,2101,城市,*,900,2020-03,,
    """)
    _needs(mt, *[("tekun", "basic", C, "城市", "*", m) for m in ("2018-12", "2020-02", "2020-03")])
    mt.expect("int_standard_resolved", [resolved("basic", C, "2020-02", "852.00", "tekun/basic/2101/城市/*@2019-01", "tekun"),
                                        resolved("basic", C, "2020-03", "900.00", "tekun/basic/2101/城市/*@2020-03", "tekun")])


# --- the program formulas, one model each --------------------------------------------------------

def std(program, component, amount, category="*", service="2020-01", urban_rural="城市"):
    """A row of int_standard_resolved for county 210102."""
    return {"program": program, "component": component, "region_code": C, "urban_rural": urban_rural,
            "category": category, "service_month": service, "amount": D(amount),
            "version_id": f"{program}/{component}/{category}@test"}


DIBAO_STANDARDS = [std("dibao", "standard", "655.00"), std("dibao", "floor", "50.00"),
                   std("dibao", "class_addon", "30.00", "老年"), std("dibao", "class_addon", "60.00", "重残"),
                   std("dibao", "class_addon", "40.00", "未成年")]


def test_dibao_gap_floor_and_one_add_on_per_covered_member(mt):
    """H1: gap 655 × 3 − 600 = 1365.00, floor 50 × 3 = 150.00. H3: the head's largest add-on (重残
    60 over 老年 30) and the child's 40: 100.00. HZ: the spouse holds an excluding program (not a
    covered member): 1 of 2 members, 655 × 1 − 0, and the spouse's add-on is not counted."""
    mt.payroll("2020-01")
    mt.given("int_standard_resolved", DIBAO_STANDARDS)
    mt.given("int_basis_roster", [
        *household("H1", [A1, A2, A3], "600"),
        *household("H3", [E1, E2], "0", classes={E1: ["老年", "重残"], E2: ["未成年"]}),
        *household("HZ", [B1, B2], "0", classes={B2: ["老年"]}, excluded=(B2,)),
    ])
    mt.expect("int_dibao_household", [
        {"unit_key": "H1", "covered_members": 3, "gap": D("1365.00"), "floor_total": D("150.00"), "addons": D("0.00"),
         "addon_classes": None, "has_standard": True},
        {"unit_key": "H3", "covered_members": 2, "gap": D("1310.00"), "floor_total": D("100.00"),
         "addons": D("100.00"), "addon_classes": ["重残", "未成年"], "has_standard": True},
        {"unit_key": "HZ", "covered_members": 1, "gap": D("655.00"), "floor_total": D("50.00"), "addons": D("0.00"),
         "addon_classes": None, "has_standard": True},
    ])


def test_a_household_without_a_standard_says_so(mt):
    mt.payroll("2020-01")
    mt.given("int_standard_resolved", [])
    mt.given("int_basis_roster", household("H1", [A1], "0"))
    mt.expect("int_dibao_household", [{"unit_key": "H1", "standard": None, "gap": None, "has_standard": False}])


def test_tekun_is_basic_plus_care_and_needs_both(mt):
    mt.payroll("2020-01")
    mt.given("int_standard_resolved", [std("tekun", "basic", "852.00"), std("tekun", "care", "300.00", "半护理")])
    mt.given("int_basis_roster", [basis_row("tekun", T2, "2020-01", 1, care_level="半护理", placement="分散供养"),
                                  basis_row("tekun", T3, "2020-01", 2, care_level="全护理", placement="分散供养")])
    mt.expect("int_tekun_person", [
        {"id_number": T2, "basic": D("852.00"), "care": D("300.00"), "due": D("1152.00"), "has_standard": True},
        {"id_number": T3, "basic": D("852.00"), "care": None, "due": None, "has_standard": False}])


def test_an_orphan_is_paid_the_standard_of_the_placement(mt):
    mt.payroll("2020-01")
    mt.given("int_standard_resolved", [std("orphan", "basic", "1711.00", "机构养育"),
                                       std("orphan", "basic", "1273.00", "社会散居")])
    mt.given("int_basis_roster", [basis_row("orphan", O1, "2020-01", 1, placement="机构养育"),
                                  basis_row("orphan", O2, "2020-01", 2, placement="社会散居", age_out_month="2028-05")])
    mt.expect("int_orphan_person", [{"id_number": O1, "due": D("1711.00"), "age_out_month": None},
                                    {"id_number": O2, "due": D("1273.00"), "age_out_month": "2028-05"}])


def test_the_living_subsidy_is_one_amount_and_the_nursing_subsidy_is_by_grade(mt):
    mt.payroll("2020-01")
    mt.given("int_standard_resolved", [std("disability", "living", "70.00"), std("disability", "nursing", "55.00", "1"),
                                       std("disability", "nursing", "45.00", "2")])
    mt.given("int_basis_roster", [
        basis_row("disability", A2, "2020-01", 1, subsidy_type="生活补贴", disability_grade="2"),
        basis_row("disability", A2, "2020-01", 2, subsidy_type="护理补贴", disability_grade="2"),
        basis_row("disability", B2, "2020-01", 1, subsidy_type="护理补贴", disability_grade="1")])
    mt.expect("int_disability_person", [
        {"id_number": A2, "line_program": "disability_living", "due": D("70.00")},
        {"id_number": A2, "line_program": "disability_nursing", "due": D("45.00")},
        {"id_number": B2, "line_program": "disability_nursing", "due": D("55.00")}])


def _household_formula(unit, gap, floor_total, addons="0.00", size=1):
    return {"unit_key": unit, "id_number": unit, "line_program": "dibao", "service_month": "2020-01",
            "line_type": "regular", "basis": "current", "covered_members": size, "household_income": D("0.00"),
            "standard": D("655.00"), "floor": D("50.00"), "gap": D(gap), "floor_total": D(floor_total),
            "addons": D(addons), "has_standard": True}


def test_a_dibao_gap_of_zero_is_not_eligible_and_a_fen_above_it_gets_the_floor(mt):
    """Contract: a household whose gap is zero or negative is not eligible, whatever the floor;
    one whose gap is 0.01 is paid max(0.01, 50 × 1) = 50.00; the floor does not cut add-ons."""
    mt.payroll("2020-01")
    mt.given("int_dibao_household", [_household_formula("H0", "0.00", "50.00", "40.00"),
                                     _household_formula("H1", "0.01", "50.00"),
                                     _household_formula("H2", "-0.01", "50.00"),
                                     _household_formula("H3", "30.00", "100.00", "40.00", size=2)])
    mt.empty("int_tekun_person", "int_orphan_person", "int_disability_person")
    mt.expect("int_program_due", [due("H0", "2020-01", None, eligible=False), due("H1", "2020-01", "50.00"),
                                  due("H2", "2020-01", None, eligible=False), due("H3", "2020-01", "140.00")])
    [h3] = mt.rows("int_program_due", ["formula"], where="unit_key = 'H3'")
    assert h3["formula"] == "max(655.00×2−0.00, 50.00×2) + 附加40.00 = 140.00"


# --- int_price_subsidy ---------------------------------------------------------------------------

def _price(mt, payroll, units, standards, cpi=None, rule=None, eligible=(), held=()):
    """The price subsidy's inputs: the units, the dibao standard each county applies this payroll
    ((urban_rural, amount)), the households eligible for dibao, lines held in earlier payrolls; the
    index and the rule: the shipped cpi.csv and price_linkage.csv, or the rows given (stg_cpi and
    stg_price_linkage as their staging models make them)."""
    mt.payroll(payroll)
    if cpi is None and rule is None:
        mt.reference(cpi=CPI, price_linkage=PRICE_LINKAGE)
    else:
        mt.given("stg_cpi", cpi)
        mt.given("stg_price_linkage", rule)
    mt.given("int_units", units)
    mt.given("int_standard_resolved", [std("dibao", "standard", a, service=payroll, urban_rural=u) for u, a in standards])
    mt.given("int_dibao_household", [{"unit_key": h, "service_month": payroll, "basis": "current", "gap": D("1.00")}
                                     for h in eligible])
    mt.given("hist_ledger", list(held))


def index(cpi_yoy, food_yoy, month="2019-12", area="00"):
    """A row of stg_cpi (cpi.csv: month, area, cpi_yoy, food_yoy)."""
    return {"month": month, "area": area, "cpi_yoy": D(cpi_yoy), "food_yoy": D(food_yoy)}


def rule(basis="cpi", cpi_threshold="3.5", food_threshold="6.0", multiplier="1", minimum="0", rounding="fen",
         programs=("dibao", "tekun")):
    """A row of stg_price_linkage: price_linkage.csv's `2016-07,,3.5,6.0,1,cpi,1,0,fen,dibao;tekun`
    as staged (effective_to blank = 9999-12, a blank threshold None), with the values given."""
    return {"effective_from": "2016-07", "effective_to": "9999-12", "index_lag": 1, "basis": basis,
            "cpi_threshold": None if cpi_threshold is None else D(cpi_threshold),
            "food_threshold": None if food_threshold is None else D(food_threshold),
            "multiplier": D(multiplier), "minimum": D(minimum), "rounding": rounding, "programs": list(programs),
            "version_id": "price_linkage@2016-07"}


def subsidy(id_number, amount, unit=None, program=None, eligible=True):
    return {"id_number": id_number, "unit_key": unit or id_number, "line_program": program or "tekun",
            "due": D(amount), "eligible": eligible}


def tekun(p, month, row=1, **values):
    return unit_row("tekun", p, month, row, **values)


def test_golden_price_subsidy_is_the_dibao_standard_times_the_cpi_rounded_half_up(mt):
    """Payroll 2020-01 reads the CPI of 2019-12, 4.5%: urban 655 × 4.5% = 29.475 → 29.48, rural
    450 × 4.5% = 20.25. Every covered member of an eligible dibao household counts (on the
    household's unit); HH4 (not eligible) and the orphan (not covered before March) get none."""
    _price(mt, "2020-01", [
        *[unit_row("dibao", p, "2020-01", i, household_id="H1", relation=r)
          for i, (p, r) in enumerate([(A1, "户主"), (A2, "配偶"), (A3, "子女")], 1)],
        unit_row("dibao", N1, "2020-01", 4, household_id="H4", relation="户主"),
        tekun(T2, "2020-01"), tekun(R1, "2020-01", 2, urban_rural="农村"),
        unit_row("orphan", O2, "2020-01", placement="社会散居"),
    ], standards=[("城市", "655.00"), ("农村", "450.00")], eligible=["H1"])
    mt.expect("int_price_subsidy", [subsidy(A1, "29.48", "H1", "dibao"), subsidy(A2, "29.48", "H1", "dibao"),
                                    subsidy(A3, "29.48", "H1", "dibao"), subsidy(T2, "29.48"), subsidy(R1, "20.25")])


def test_golden_doubled_months_cover_orphans_and_use_the_payrolls_standard(mt):
    """March 2020 reads February's 5.2%, doubled: 655 × 5.2% × 2 = 68.12, orphans covered. April
    reads March's 4.3% on April's standard 688: 688 × 4.3% × 2 = 59.168 → 59.17."""
    _price(mt, "2020-03", [tekun(T2, "2020-03"), unit_row("orphan", O2, "2020-03", placement="社会散居")],
           standards=[("城市", "655.00")])
    mt.expect("int_price_subsidy", [subsidy(T2, "68.12"), subsidy(O2, "68.12", program="orphan")])
    _price(mt, "2020-04", [tekun(T2, "2020-04")], standards=[("城市", "688.00")])
    mt.expect("int_price_subsidy", [subsidy(T2, "59.17")])


def _one_rule(mt, cpi_yoy, food_yoy, area="00", **values):
    """T2 (urban, 655.00) in payroll 2020-01, which reads the index of 2019-12."""
    _price(mt, "2020-01", [tekun(T2, "2020-01")], standards=[("城市", "655.00")], cpi=[index(cpi_yoy, food_yoy, area=area)],
           rule=[rule(**values)])


def test_the_cpi_at_its_threshold_triggers_and_a_tenth_below_does_not(mt):
    _one_rule(mt, "3.5", "1.0")
    mt.expect("int_price_subsidy", [subsidy(T2, "22.93")])  # 655 × 3.5% = 22.925 → 22.93
    _one_rule(mt, "3.4", "5.9")
    mt.expect("int_price_subsidy", [])


def test_basis_food_pays_at_the_food_index_when_food_triggers(mt):
    _one_rule(mt, "1.0", "6.0", basis="food")
    mt.expect("int_price_subsidy", [subsidy(T2, "39.30")])  # 655 × 6.0% = 39.30


def test_basis_triggered_takes_the_larger_triggering_index_only(mt):
    """Golden (triggered): both over, 17.4 > 4.5: 655 × 17.4% = 113.97. CPI 4.0 over, food 5.9 under
    its 6.0: the CPI's 4.0, though food is larger: 655 × 4.0% = 26.20."""
    _one_rule(mt, "4.5", "17.4", basis="triggered")
    mt.expect("int_price_subsidy", [subsidy(T2, "113.97")])
    _one_rule(mt, "4.0", "5.9", basis="triggered")
    mt.expect("int_price_subsidy", [subsidy(T2, "26.20")])


def test_rounding_to_the_yuan_is_half_up(mt):
    """590 × 5% = 29.50 → 30.00; 589.80 × 5% = 29.49 → 29.00."""
    _price(mt, "2020-01", [tekun(T2, "2020-01"), tekun(R1, "2020-01", 2, urban_rural="农村")],
           standards=[("城市", "590.00"), ("农村", "589.80")], cpi=[index("5.0", "1.0")], rule=[rule(rounding="yuan")])
    mt.expect("int_price_subsidy", [subsidy(T2, "30.00"), subsidy(R1, "29.00")])


def test_the_minimum_raises_a_small_subsidy_but_a_negative_index_pays_nothing(mt):
    """Minimum 40: 655 × 4.5% = 29.48 → 40.00. Basis food on a month the CPI triggers and food is
    −1.0: the rate is negative, so nothing is paid whatever the minimum (D4, policy)."""
    _one_rule(mt, "4.5", "1.0", minimum="40")
    mt.expect("int_price_subsidy", [subsidy(T2, "40.00")])
    _one_rule(mt, "4.5", "-1.0", basis="food", minimum="40")
    mt.expect("int_price_subsidy", [{"id_number": T2, "eligible": False}])


def test_the_provincial_series_wins_over_the_national_one(mt):
    _price(mt, "2020-01", [tekun(T2, "2020-01")], standards=[("城市", "655.00")],
           cpi=[index("4.5", "1.0"), index("5.0", "1.0", area="21")], rule=[rule()])
    mt.expect("int_price_subsidy", [subsidy(T2, "32.75")])  # 655 × 5.0% = 32.75
    [row] = mt.rows("int_price_subsidy", ["inputs"])
    assert json.loads(row["inputs"])["index_area"] == "21"


def test_a_blank_threshold_never_triggers(mt):
    _one_rule(mt, "9.9", "1.0", cpi_threshold=None)
    mt.expect("int_price_subsidy", [])


def test_golden_one_price_subsidy_per_person_carried_by_the_first_program_of_the_rule(mt):
    """A child in dibao household H9, on the orphan roster and the nursing-subsidy roster: one line,
    dibao's (the first program of the rule's list that covers the child): 655 × 17.4% = 113.97."""
    child = A3
    _price(mt, "2020-01", [
        unit_row("dibao", A1, "2020-01", 1, household_id="H9", relation="户主"),
        unit_row("dibao", child, "2020-01", 2, household_id="H9", relation="子女"),
        unit_row("orphan", child, "2020-01", 1, placement="社会散居"),
        unit_row("disability", child, "2020-01", 1, subsidy_type="护理补贴"),
    ], standards=[("城市", "655.00")], eligible=["H9"],
        cpi=[index("4.5", "17.4")], rule=[rule("triggered", programs=("dibao", "tekun", "orphan", "disability"))])
    mt.expect("int_price_subsidy", [subsidy(A1, "113.97", "H9", "dibao"), subsidy(child, "113.97", "H9", "dibao")])


def test_no_price_subsidy_outside_the_entitlement_or_for_the_excluded_and_the_dead(mt):
    """Covered are the units entitled this month: not before enrolled_from, after enrolled_to or
    after the age-out month; not a member excluded from the household; not a dead member."""
    _price(mt, "2020-02", [
        tekun(T1, "2020-02", 1, enrolled_from="2020-03"),
        tekun(T2, "2020-02", 2, enrolled_to="2020-01"),
        tekun(T3, "2020-02", 3, enrolled_to="2020-02"),  # the last month: covered
        unit_row("orphan", O1, "2020-02", 1, age_out_month="2020-01"),
        unit_row("orphan", O2, "2020-02", 2, age_out_month="2020-02"),  # the 18th birthday's month: covered
        unit_row("dibao", A1, "2020-02", 1, household_id="H1", relation="户主"),
        unit_row("dibao", A2, "2020-02", 2, household_id="H1", relation="配偶", excluded_member=True),
        unit_row("dibao", A3, "2020-02", 3, household_id="H1", relation="子女", no_price_subsidy=True),
    ], standards=[("城市", "655.00")], eligible=["H1"],
        cpi=[index("5.4", "20.6", month="2020-01")], rule=[rule(programs=("dibao", "tekun", "orphan"))])
    # February reads January's CPI, 5.4%: 655 × 5.4% = 35.37
    mt.expect("int_price_subsidy", [subsidy(T3, "35.37"), subsidy(O2, "35.37", program="orphan"),
                                    subsidy(A1, "35.37", "H1", "dibao")])


def test_a_held_price_subsidy_is_released_once_the_unit_is_on_the_roster(mt):
    """T2's January subsidy was held (29.48) and never paid since: released in March at the amount
    recorded, for January. T3's was paid in February after its hold: not again. O1 died in
    January: what was held for February is not owed."""
    held = lambda p, m, payroll, status="held", **kw: ledger_line(payroll, m, "tekun", p, "29.48",  # noqa: E731
                                                                   "price_subsidy", status, **kw)
    _price(mt, "2020-03", [tekun(T2, "2020-03"), tekun(T3, "2020-03", 2),
                           tekun(O1, "2020-03", 3, death_month="2020-01")], standards=[("城市", "655.00")],
           cpi=[index("1.0", "1.0", month="2020-02")], rule=[rule()],
           held=[held(T2, "2020-01", "2020-01"), held(T2, "2020-01", "2020-02"),
                 held(T3, "2020-01", "2020-01"), held(T3, "2020-01", "2020-02", "payable"),
                 held(O1, "2020-02", "2020-02")])
    mt.expect("int_price_subsidy", [{"id_number": T2, "service_month": "2020-01", "arrears_cause": "held_released",
                                     "due": D("29.48")}])


# --- int_temporary_due ---------------------------------------------------------------------------

TEMPORARY = """
    region_code,event_type,standard_months,township_cap,county_cap,case_by_case_threshold,max_per_12_months,version,valid_from
    21,疫情确诊,2,2000,5000,5000,1,v1,2020-01
"""


def test_a_temporary_case_is_paid_the_amount_approved_once_with_its_standard_beside_it(mt):
    """One one_off line per case, the amount approved (1500.00); the policy's standard, 2 months ×
    the approving county's dibao standard 655 = 1310.00, stands in its explanation, with both
    rule versions."""
    mt.payroll("2020-02")
    mt.reference(standards=STANDARDS, temporary_assistance=TEMPORARY)
    mt.given("int_units", [unit_row("temporary", T1, "2020-02", approval_no="LS-001", event_type="疫情确诊",
                                    approval_level="乡镇", approved_amount=D("1500.00"),
                                    temporary_policy_version="temporary_assistance/21/疫情确诊@2020-01#v1")])
    mt.empty("hist_ledger", "hold_clearances")
    mt.expect("int_temporary_due", [{"unit_key": "LS-001", "line_type": "one_off", "service_month": "2020-02",
                                     "approval_no": "LS-001", "due": D("1500.00"),
                                     "rule_versions": ["temporary_assistance/21/疫情确诊@2020-01#v1",
                                                       "dibao/standard/2101/城市/*@2018-07"]}])
    [row] = mt.rows("int_temporary_due", ["inputs"])
    assert json.loads(row["inputs"])["standard_amount"] == 1310.0  # JSON number (2 × 655)


def test_a_temporary_case_without_its_policy_version_stops_the_run(mt):
    mt.payroll("2020-02")
    mt.reference(standards=STANDARDS, temporary_assistance=TEMPORARY)
    mt.given("int_units", [unit_row("temporary", T1, "2020-02", approval_no="LS-001", event_type="疫情确诊",
                                    approved_amount=D("1500.00"), temporary_policy_version="no-such-version")])
    mt.empty("hist_ledger", "hold_clearances")
    mt.fails("int_temporary_due", "temporary_assistance.csv has no version no-such-version")


def _held_case(payroll, approval, person, amount, reason, status="held"):
    return ledger_line(payroll, payroll, "temporary", approval, amount, line_type="one_off", status=status,
                       id_number=person, approval_no=approval, hold_reason=reason if status == "held" else None,
                       rule_versions=["temporary_assistance/21/因病@2020-01#v1"], inputs='{"approved_amount": 1}',
                       formula="临时救助 因病", payment_state=None if status == "held" else "sent")


def _clearance(person, reason, effective="2020-03", through="2020-03"):
    return {"clearance_id": f"C-{person[-4:]}-{reason}", "program": "temporary", "id_number": person,
            "hold_reason": reason, "effective_payroll": effective, "through_payroll": through,
            "cleared_by": "民政局李四", "cleared_at": "2020-03-02T09:00:00"}


def test_a_held_case_is_paid_once_in_the_first_payroll_its_clearance_covers(mt):
    """Payroll 2020-03, nothing delivered. T1's LS-H1 (2500.00, held above the cap in January and again
    in February) is cleared for that reason: one payable-to-be line of 2500.00, from February's held
    line. T2's LS-H2 was cleared for another reason than its hold: still owed, not paid. T3's LS-H3 is
    cleared but already has a payable line (paid in February): not again."""
    mt.payroll("2020-03")
    mt.reference(standards=STANDARDS, temporary_assistance=TEMPORARY)
    mt.empty("int_units")
    mt.given("hist_ledger", [
        _held_case("2020-01", "LS-H1", T1, "2500.00", "temporary_above_cap"),
        _held_case("2020-02", "LS-H1", T1, "2500.00", "temporary_above_cap"),
        _held_case("2020-01", "LS-H2", T2, "900.00", "temporary_repeat_within_12_months"),
        _held_case("2020-01", "LS-H3", T3, "800.00", "temporary_recipient_deceased"),
        _held_case("2020-02", "LS-H3", T3, "800.00", None, status="payable")])
    mt.given("hold_clearances", [_clearance(T1, "temporary_above_cap"), _clearance(T2, "temporary_above_cap"),
                                 _clearance(T3, "temporary_recipient_deceased")])
    mt.expect("int_temporary_due", [{"unit_key": "LS-H1", "approval_no": "LS-H1", "id_number": T1,
                                     "line_type": "one_off", "service_month": "2020-03", "basis_month": "2020-02",
                                     "arrears_cause": "held_released", "due": D("2500.00")}])


def test_a_held_case_delivered_again_is_paid_from_the_delivery_not_twice(mt):
    """LS-H1 held in February, cleared for March, and delivered again in March (a unit of int_units):
    one line, the delivered one (integrity waived its hold); nothing released beside it."""
    mt.payroll("2020-03")
    mt.reference(standards=STANDARDS, temporary_assistance=TEMPORARY)
    mt.given("int_units", [unit_row("temporary", T1, "2020-03", approval_no="LS-H1", event_type="疫情确诊",
                                    approval_level="乡镇", approved_amount=D("2500.00"),
                                    temporary_policy_version="temporary_assistance/21/疫情确诊@2020-01#v1")])
    mt.given("hist_ledger", [_held_case("2020-02", "LS-H1", T1, "2500.00", "temporary_above_cap")])
    mt.given("hold_clearances", [_clearance(T1, "temporary_above_cap")])
    mt.expect("int_temporary_due", [{"unit_key": "LS-H1", "arrears_cause": None, "due": D("2500.00")}])
