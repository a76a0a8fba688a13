"""Given/expect tests of the integrity models (int_integrity_findings, pipelines/integrity.py
INTEGRITY_TARGET, and the models it needs): decisions that need all the month's rosters at once (contract sections
1 to 3): duplicates across counties, exclusive programs, the living subsidy only in dibao, the
death registry, temporary-assistance cases, external registries, accounts, and the findings.
"""

from __future__ import annotations

import datetime
from decimal import Decimal as D

import pytest

from tests.modeltest import (  # noqa: F401  (fixtures)
    C,
    connection_fixture,
    final_row,
    mt_fixture,
    person_id,
    roster_row,
)

pytestmark = pytest.mark.unit

A1, A2, A3 = person_id(1, "19700101"), person_id(2, "19720202"), person_id(3, "20100303")
T1, T2, T3 = person_id(21, "19400101"), person_id(22, "19410101"), person_id(23, "19420101")
O1, G1 = person_id(31, "20120101"), person_id(41, "19800101")
SHENHE = "210103"
EXCLUSIONS = """
    program_a,program_b,action
    tekun,dibao,pay_a_only
    tekun,disability:生活补贴,pay_a_only
    tekun,disability:护理补贴,pay_a_only
    orphan,disability:生活补贴,pay_a_only
    orphan,dibao,flag
"""


def file_of(program, county=C):
    return f"rosters/{program}/{county}_{program}.csv"


def programs_row(p, program, row=1, subsidy=None, household=None, relation=None, county=C):
    """A row of int_person_programs."""
    return {"id_number": p, "program": program, "subsidy_type": subsidy, "household_id": household,
            "relation": relation, "source_file": file_of(program, county), "source_row": row}


# --- int_roster_all ----------------------------------------------------------------------------

def test_every_validated_row_is_on_the_months_roster_whatever_its_disposition(mt):
    mt.payroll("2020-01")
    mt.given("validated_rows", [roster_row("dibao", A1, 1, household_id="H1", relation="户主"),
                                roster_row("tekun", T1, 1, placement="分散供养", disposition="quarantined",
                                           reasons=["ID_CHECK_DIGIT"]),
                                roster_row("temporary", T2, 1, approval_no="LS-1", event_type="因病")])
    mt.expect("int_roster_all", [
        {"program": "dibao", "id_number": A1, "disposition": "accepted", "household_id": "H1", "placement": None,
         "approval_no": None, "reasons": None},
        {"program": "tekun", "id_number": T1, "disposition": "quarantined", "household_id": None, "placement": "分散供养",
         "approval_no": None, "reasons": ["ID_CHECK_DIGIT"]},
        {"program": "temporary", "id_number": T2, "disposition": "accepted", "household_id": None, "placement": None,
         "approval_no": "LS-1", "reasons": None}])


# --- int_cross_county_duplicates ---------------------------------------------------------------

def test_one_person_twice_for_one_program_is_paid_once_by_the_earliest_enrolment(mt):
    """T1 in 和平区 and 沈河区, both from 2019-06: the lower region code survives. T2 enrolled in
    沈河区 earlier: 沈河区 survives. T3 in tekun and dibao: two programs, no duplicate; A2's two
    disability subsidies are two ledger programs. A quarantined row is nobody's duplicate; a
    temporary case delivered by two counties is paid once (same_approval_no)."""
    mt.payroll("2020-01")
    tekun = lambda p, county, row, **kw: roster_row("tekun", p, row, region_code=county,  # noqa: E731
                                                    source_file=file_of("tekun", county), **kw)
    mt.given("int_roster_all", [
        tekun(T1, SHENHE, 1), tekun(T1, C, 1),
        tekun(T2, C, 2), tekun(T2, SHENHE, 2, enrolled_from="2019-01"),
        tekun(T3, C, 3), roster_row("dibao", T3, 1, household_id="H1", relation="户主"),
        roster_row("disability", A2, 1, subsidy_type="生活补贴"), roster_row("disability", A2, 2, subsidy_type="护理补贴"),
        tekun(A1, C, 4), tekun(A1, SHENHE, 4, disposition="quarantined"),
        roster_row("temporary", A3, 1, approval_no="LS-1"),
        roster_row("temporary", A3, 1, approval_no="LS-1", region_code=SHENHE, source_file=file_of("temporary", SHENHE)),
    ])
    mt.expect("int_cross_county_duplicates", [
        {"id_number": T1, "region_code": SHENHE, "survivor_region": C, "duplicate_rule": "earliest_enrolment"},
        {"id_number": T2, "region_code": C, "survivor_region": SHENHE, "duplicate_rule": "earliest_enrolment"},
        {"id_number": A3, "region_code": SHENHE, "survivor_region": C, "duplicate_rule": "same_approval_no"}])


# --- int_person_programs -----------------------------------------------------------------------

def test_person_programs_are_the_accepted_rows_less_duplicates(mt):
    mt.payroll("2020-01")
    mt.given("int_roster_all", [roster_row("tekun", T1, 1), roster_row("tekun", T2, 2, disposition="quarantined"),
                                roster_row("tekun", T3, 3), roster_row("disability", T1, 1, subsidy_type="护理补贴")])
    mt.given("int_cross_county_duplicates", [{"source_file": file_of("tekun"), "source_row": 3}])
    mt.expect("int_person_programs", [{"id_number": T1, "program": "tekun", "subsidy_type": None},
                                      {"id_number": T1, "program": "disability", "subsidy_type": "护理补贴"}])


# --- int_exclusions ----------------------------------------------------------------------------

def test_exclusive_programs_follow_exclusions_csv_and_pay_a_only_wins_over_flag(mt):
    """Shipped exclusions.csv. T1: tekun and the nursing subsidy (pay_a_only on the subsidy row).
    T2: tekun and a dibao member (pay_a_only). O1: orphan and dibao (flag), orphan and the
    nursing subsidy (only the living subsidy is excluded: nothing). T3: tekun, orphan and dibao:
    the dibao row is decided once, pay_a_only (tekun) over flag (orphan)."""
    mt.payroll("2020-01")
    mt.reference(exclusions=EXCLUSIONS)
    mt.given("int_person_programs", [
        programs_row(T1, "tekun", 1), programs_row(T1, "disability", 1, "护理补贴"),
        programs_row(T2, "tekun", 2), programs_row(T2, "dibao", 1, household="H1", relation="配偶"),
        programs_row(O1, "orphan", 1), programs_row(O1, "dibao", 2, household="H2", relation="子女"),
        programs_row(O1, "disability", 2, "护理补贴"),
        programs_row(T3, "tekun", 3), programs_row(T3, "orphan", 2), programs_row(T3, "dibao", 3, household="H3"),
    ])
    mt.expect("int_exclusions", [
        {"id_number": T1, "program": "disability", "program_a": "tekun", "subsidy_b": "护理补贴", "action": "pay_a_only"},
        {"id_number": T2, "program": "dibao", "program_a": "tekun", "subsidy_b": None, "action": "pay_a_only"},
        {"id_number": O1, "program": "dibao", "program_a": "orphan", "subsidy_b": None, "action": "flag"},
        {"id_number": T3, "program": "dibao", "program_a": "tekun", "subsidy_b": None, "action": "pay_a_only"}])


# --- int_death_register ------------------------------------------------------------------------

def test_the_death_register_keeps_the_earliest_valid_death_of_each_person(mt):
    """T1 reported twice: the earliest valid death. T2's death is dated after the month it was
    reported in: not valid, not applied. T3 (lowercase x, full-width digits, spaces) is found under
    its normalised ID; a death in the month it is reported is valid. A1 is reported twice in one
    extract, by two sources, dated in the same month: the earlier date, whatever the rows' order."""
    mt.payroll("2020-03")
    odd = T3[:-1] + "x" if T3.endswith("X") else T3
    mt.given("raw_deaths", [
        {"id_number": T1, "death_date": "2020-02-10", "reported_month": "2020-03", "source": "民政"},
        {"id_number": T1, "death_date": "2020-01-05", "reported_month": "2020-02", "source": "公安"},
        {"id_number": T2, "death_date": "2020-04-01", "reported_month": "2020-03", "source": "公安"},
        {"id_number": " " + odd.replace("2", "２") + " ", "death_date": "2020年3月9日", "reported_month": "2020-03"},
        {"id_number": "  ", "death_date": "2020-01-01", "reported_month": "2020-03"},
        {"id_number": A1, "death_date": "2020-02-20", "reported_month": "2020-03", "source": "民政"},
        {"id_number": A1, "death_date": "2020-02-03", "reported_month": "2020-03", "source": "公安"},
    ])
    mt.expect("int_death_register", [
        {"id_number": T1, "death_month": "2020-01", "reported_month": "2020-02", "registry_source": "公安",
         "death_date_valid": True},
        {"id_number": T2, "death_month": "2020-04", "reported_month": "2020-03", "registry_source": "公安",
         "death_date_valid": False},
        {"id_number": T3, "death_month": "2020-03", "reported_month": "2020-03", "registry_source": None,
         "death_date_valid": True},
        {"id_number": A1, "death_month": "2020-02", "reported_month": "2020-03", "registry_source": "公安",
         "death_date_valid": True}])


# --- int_deaths --------------------------------------------------------------------------------

def test_a_death_touches_the_rows_of_later_months_and_an_invalid_one_is_only_reported(mt):
    """Payroll 2020-03. T1 died in February: each of T1's rows. T2 died in March, the payroll month:
    March is paid (the month of death), so no row. T3's date is invalid: a row with no death month,
    for the finding."""
    mt.payroll("2020-03")
    mt.given("int_person_programs", [programs_row(T1, "tekun", 1), programs_row(T1, "disability", 1, "护理补贴"),
                                     programs_row(T2, "tekun", 2), programs_row(T3, "tekun", 3)])
    mt.given("int_death_register", [
        {"id_number": T1, "death_month": "2020-02", "reported_month": "2020-03", "death_date_valid": True},
        {"id_number": T2, "death_month": "2020-03", "reported_month": "2020-03", "death_date_valid": True},
        {"id_number": T3, "death_month": "2020-05", "reported_month": "2020-03", "death_date": "2020-05-01",
         "death_date_valid": False}])
    mt.expect("int_deaths", [
        {"id_number": T1, "program": "tekun", "death_month": "2020-02", "death_date_valid": True},
        {"id_number": T1, "program": "disability", "death_month": "2020-02", "death_date_valid": True},
        {"id_number": T3, "program": "tekun", "death_month": None, "death_date_valid": False}])


def test_only_deaths_whose_date_can_be_true_are_handed_to_the_engine(mt):
    """int_deaths_known (_work/integrity/deaths_known.parquet): T3's death after its report is not."""
    mt.payroll("2020-03")
    mt.given("int_death_register", [
        {"id_number": T1, "death_month": "2020-02", "reported_month": "2020-03", "registry_source": "公安",
         "death_date_valid": True},
        {"id_number": T3, "death_month": "2020-05", "reported_month": "2020-03", "death_date_valid": False}])
    mt.expect("int_deaths_known", [{"id_number": T1, "death_month": "2020-02", "reported_month": "2020-03",
                                    "source": "公安"}])

# --- int_registry_matches ----------------------------------------------------------------------

def test_registry_entries_concern_the_programs_registry_checks_names(mt):
    """Shipped registry_checks.csv: the public payroll and vehicles concern dibao and tekun; a
    registry it does not list (businesses here) concerns every program."""
    mt.payroll("2020-01")
    mt.reference(registry_checks="""
        registry,programs,note
        public_payroll,dibao;tekun,
        vehicles,dibao;tekun,
    """)
    mt.given("int_person_programs", [programs_row(T1, "tekun", 1), programs_row(O1, "orphan", 1)])
    mt.given("raw_registry", [{"registry": "public_payroll", "id_number": T1, "evidence": '{"单位": "某局"}'},
                              {"registry": "vehicles", "id_number": O1, "evidence": '{"车牌": "辽A"}'},
                              {"registry": "businesses", "id_number": " " + O1.lower() + " ", "evidence": "{}"}])
    mt.expect("int_registry_matches", [{"id_number": T1, "program": "tekun", "registry": "public_payroll"},
                                       {"id_number": O1, "program": "orphan", "registry": "businesses"}])


# --- int_account_changes -----------------------------------------------------------------------

def test_an_account_changed_together_with_the_name_on_it_is_for_review(mt):
    """T1: new account and new holder (review). T2: a new card in the own name (routine). T3: same
    account (nothing). A1: no earlier payroll (nothing). A quarantined row is not judged."""
    mt.payroll("2020-02")
    mt.given("int_roster_all", [
        roster_row("tekun", T1, 1, bank_account="6222000000000011", account_holder="李四"),
        roster_row("tekun", T2, 2, bank_account="6222000000000022", account_holder="王五"),
        roster_row("tekun", T3, 3, bank_account="6222000000000003", account_holder="赵六"),
        roster_row("tekun", A1, 4, bank_account="6222000000000004", account_holder="孙七"),
        roster_row("tekun", A2, 5, bank_account="6222000000000055", account_holder="某人", disposition="quarantined")])
    mt.given("hist_accounts", [
        {"program": "tekun", "id_number": T1, "payroll_month": "2020-01", "bank_account": "6222000000000001",
         "account_holder": "张三"},
        {"program": "tekun", "id_number": T2, "payroll_month": "2020-01", "bank_account": "6222000000000002",
         "account_holder": "王五"},
        {"program": "tekun", "id_number": T3, "payroll_month": "2020-01", "bank_account": "6222000000000003",
         "account_holder": "钱八"},
        {"program": "tekun", "id_number": A2, "payroll_month": "2020-01", "bank_account": "6222000000000005",
         "account_holder": "张三"}])
    mt.expect("int_account_changes", [{"id_number": T1, "previous_account": "6222000000000001",
                                       "previous_holder": "张三", "bank_account": "6222000000000011"}])


# --- int_temporary_cases -----------------------------------------------------------------------

TEMPORARY = """
    region_code,event_type,standard_months,township_cap,county_cap,case_by_case_threshold,max_per_12_months,version,valid_from
    21,因病,2,2000,8000,5000,1,v1,2020-01
    2101,因病,2,2500,8000,5000,1,v2,2020-01
    2101,因病,2,3000,8000,5000,1,v3,2020-03
    2101,因灾,2,2000,8000,5000,2,v1,2020-01
"""


def case(no, amount, row, level="乡镇", event="因病", household=None, p=T1, county=C, **values):
    return roster_row("temporary", p, row, approval_no=no, approved_amount=D(amount), approval_level=level,
                      event_type=event, event_date=values.pop("event_date", datetime.date(2020, 2, 10)),
                      case_household=household or f"P:{p}", region_code=county, **values)


def _cases(mt, rows, one_off=(), earlier=(), deaths=()):
    mt.payroll("2020-02")
    mt.reference(temporary_assistance=TEMPORARY)
    mt.given("int_roster_all", rows)
    mt.empty("int_cross_county_duplicates")
    mt.given("hist_one_off", [{"approval_no": n, "status": s} for n, s in one_off])
    mt.given("hist_temporary_cases", [{"payroll_month": m, "case_household": h, "event_type": e, "approval_no": n}
                                      for m, h, e, n in earlier])
    mt.given("int_death_register", [{"id_number": p, "death_month": d[:7], "death_date": d, "death_date_valid": True}
                                    for p, d in deaths])


def test_a_case_is_judged_by_the_policy_of_its_county_in_force_this_payroll(mt):
    """和平区 (2101) by v2 (v3 is valid from March, after the payroll); 211302 by the province's v1;
    an event no row covers keeps no policy (integrity stops the run on it)."""
    _cases(mt, [case("LS-1", "1000", 1), case("LS-2", "1000", 2, county="211302"),
                case("LS-3", "1000", 3, event="其他")])
    mt.expect("int_temporary_cases", [{"approval_no": "LS-1", "policy_version": "temporary_assistance/2101/因病@2020-01#v2"},
                                      {"approval_no": "LS-2", "policy_version": "temporary_assistance/21/因病@2020-01#v1"},
                                      {"approval_no": "LS-3", "policy_version": None}])


def test_caps_and_the_case_by_case_threshold_hold_a_case_without_its_number(mt):
    """v2: a township approves up to 2500.00, a county up to 8000.00; above 5000.00 a 一事一议
    number is needed. 2500.00 is within; 2500.01 is above the cap; a number lifts both; a county's
    6000.00 without one lacks its case-by-case number."""
    _cases(mt, [case("LS-1", "2500.00", 1, p=T1), case("LS-2", "2500.01", 2, p=T2),
                case("LS-3", "2500.01", 3, p=T3, case_by_case_no="YSYY-1"),
                case("LS-4", "6000.00", 4, level="县级", p=A1), case("LS-5", "6000.00", 5, level="县级", p=A2,
                                                                       case_by_case_no="YSYY-2")])
    mt.expect("int_temporary_cases", [{"approval_no": n, "not_paid_reason": None, "hold_reason": h} for n, h in [
        ("LS-1", None), ("LS-2", "temporary_above_cap"), ("LS-3", None), ("LS-4", "temporary_case_by_case_missing"),
        ("LS-5", None)]])


def test_a_case_is_paid_once_ever_and_a_household_so_often_in_twelve_months(mt):
    """LS-1 already has a payable line (not paid again); LS-2 was only held before (judged again).
    因灾 allows 2 cases a household in 12 payroll months: H1 had one in 2019-03 (11 months back,
    counted) and has two now: the later one by event date is held. H2's earlier case is from 2019-02
    (12 months back, outside the window)."""
    _cases(mt, [case("LS-1", "1000", 1, p=T1), case("LS-2", "1000", 2, p=T2),
                case("LS-3", "1000", 3, event="因灾", household="H1", p=A1, event_date=datetime.date(2020, 2, 1)),
                case("LS-4", "1000", 4, event="因灾", household="H1", p=A2, event_date=datetime.date(2020, 2, 2)),
                case("LS-5", "1000", 5, event="因灾", household="H2", p=T3),
                case("LS-6", "1000", 6, event="因灾", household="H2", p=A3)],
           one_off=[("LS-1", "payable"), ("LS-2", "held")],
           earlier=[("2019-03", "H1", "因灾", "LS-0"), ("2019-02", "H2", "因灾", "LS-9")])
    mt.expect("int_temporary_cases", [{"approval_no": n, "not_paid_reason": r, "hold_reason": h} for n, r, h in [
        ("LS-1", "temporary_already_paid", None), ("LS-2", None, None), ("LS-3", None, None),
        ("LS-4", None, "temporary_repeat_within_12_months"), ("LS-5", None, None), ("LS-6", None, None)]])


def test_the_repeat_window_is_twelve_payroll_months_not_event_dates(mt):
    """因病 (v2 for 2101) allows one case a household in 12 payroll months: the window of payroll
    2020-02 is the payrolls 2019-03 to 2020-02. Each household had one earlier case and has one now:
    H11 in payroll 2019-03 (11 months apart: inside, held), H12 in 2019-02 (exactly 12 apart: outside,
    paid), H13 in 2019-01 (13 apart: paid). The earlier cases are counted by the payroll that decided
    them (hist_temporary_cases carries no event date), this month's by the payroll 2020-02."""
    _cases(mt, [case("LS-11", "1000", 1, household="H11", p=T1), case("LS-12", "1000", 2, household="H12", p=T2),
                case("LS-13", "1000", 3, household="H13", p=T3)],
           earlier=[("2019-03", "H11", "因病", "LS-01"), ("2019-02", "H12", "因病", "LS-02"),
                    ("2019-01", "H13", "因病", "LS-03")])
    mt.expect("int_temporary_cases", [{"approval_no": n, "case_in_window": w, "hold_reason": h} for n, w, h in [
        ("LS-11", 2, "temporary_repeat_within_12_months"), ("LS-12", 1, None), ("LS-13", 1, None)]])


def test_a_recipient_dead_before_the_event_is_not_paid_and_one_dead_since_is_held(mt):
    """Event on 2020-02-10: T1 died on the 9th (not paid), T2 on the 10th itself (held: whose account
    is paid is for a caseworker)."""
    _cases(mt, [case("LS-1", "1000", 1, p=T1), case("LS-2", "1000", 2, p=T2), case("LS-3", "1000", 3, p=T3)],
           deaths=[(T1, "2020-02-09"), (T2, "2020-02-10")])
    mt.expect("int_temporary_cases", [{"approval_no": n, "not_paid_reason": r, "hold_reason": h} for n, r, h in [
        ("LS-1", "temporary_deceased_before_event", None), ("LS-2", None, "temporary_recipient_deceased"),
        ("LS-3", None, None)]])


# --- int_roster_decisions ----------------------------------------------------------------------

def _decide(mt, rows, payroll="2020-03", duplicates=(), exclusions=(), deaths=(), register=(), temporary=(),
            clearances=()):
    """int_roster_decisions' inputs; int_person_programs is the accepted rows (none duplicates here)."""
    mt.payroll(payroll)
    mt.given("int_roster_all", rows)
    mt.given("int_person_programs", [programs_row(r["id_number"], r["program"], r["source_row"], r.get("subsidy_type"),
                                                  r.get("household_id"), r.get("relation"), r["region_code"])
                                     | {"source_file": r["source_file"]}
                                     for r in rows if r["disposition"] == "accepted"])
    mt.given("int_cross_county_duplicates", list(duplicates))
    mt.given("int_exclusions", list(exclusions))
    mt.given("int_deaths", list(deaths))
    mt.given("int_death_register", list(register))
    mt.given("int_temporary_cases", list(temporary))
    mt.given("hold_clearances", list(clearances))


def own(program, p, row, **values):
    """An accepted row paid to the person's own account, in their name."""
    return roster_row(program, p, row, **({"bank_account": "6222" + p[6:14] + "0001", "account_holder": f"name-{p[-4:]}"}
                                          | values))


def decided(p, program, **values):
    out = {"id_number": p, "program": program, "not_paid_reason": None, "hold_reason": None, "excluded_member": False,
           "no_price_subsidy": False}
    return out | values


def _decisions(mt, expected):
    """int_roster_decisions, its rows named by the person and program of the row they decide."""
    mt.run("int_roster_decisions")
    mt.con.execute("""CREATE OR REPLACE TEMP VIEW decisions_by_person AS
                      SELECT r.id_number, r.program, d.* EXCLUDE (source_file, source_row)
                      FROM int_roster_decisions d JOIN int_roster_all r USING (source_file, source_row)""")
    mt.check("decisions_by_person", expected)


def test_exclusions_the_living_subsidy_outside_dibao_and_a_household_in_two_counties(mt):
    """T1's nursing subsidy: pay_a_only (tekun): not paid. T2 (tekun) is an excluded dibao member:
    counted out of the household, the row stays. O1's flag: paid, no decision. A3 has the living
    subsidy and no dibao household: not paid. H9 is delivered by two counties: not paid."""
    rows = [own("disability", T1, 1, subsidy_type="护理补贴", ledger_program="disability_nursing"),
            own("dibao", A1, 1, household_id="H1", relation="户主"),
            roster_row("dibao", T2, 2, household_id="H1", relation="配偶"),
            roster_row("dibao", O1, 3, household_id="H1", relation="子女"),
            own("disability", A3, 2, subsidy_type="生活补贴"),
            own("dibao", A2, 4, household_id="H9", relation="户主"),
            own("dibao", T3, 1, household_id="H9", relation="户主", region_code=SHENHE,
                source_file=file_of("dibao", SHENHE))]
    exclusion = lambda r, action: {"source_file": r["source_file"], "source_row": r["source_row"],  # noqa: E731
                                   "id_number": r["id_number"], "program": r["program"], "action": action}
    _decide(mt, rows, exclusions=[exclusion(rows[0], "pay_a_only"), exclusion(rows[2], "pay_a_only"),
                                  exclusion(rows[3], "flag")])
    _decisions(mt, [decided(T1, "disability", not_paid_reason="exclusive_programs"),
                    decided(T2, "dibao", excluded_member=True),
                    decided(A3, "disability", not_paid_reason="living_subsidy_not_in_dibao"),
                    decided(A2, "dibao", not_paid_reason="household_in_two_counties"),
                    decided(T3, "dibao", not_paid_reason="household_in_two_counties")])


def _death(r, month):
    return {"source_file": r["source_file"], "source_row": r["source_row"], "id_number": r["id_number"],
            "program": r["program"], "household_id": r.get("household_id"), "relation": r.get("relation"),
            "death_month": month, "death_date_valid": True}


def test_deaths_stop_a_persons_own_lines_hold_a_household_and_cut_a_members_price_subsidy(mt):
    """Payroll 2020-03. T1 (tekun) died in January: not paid (months up to the death are owed).
    H1's head A1 died in February: every row of the household held. H2's member A3 died: the
    household is paid, the member gets no price subsidy. O1's guardian G1 died: held."""
    rows = [own("tekun", T1, 1), own("dibao", A1, 1, household_id="H1", relation="户主"),
            roster_row("dibao", A2, 2, household_id="H1", relation="配偶"),
            own("dibao", T2, 3, household_id="H2", relation="户主", name=f"name-{T2[-4:]}"),
            roster_row("dibao", A3, 4, household_id="H2", relation="子女"),
            roster_row("orphan", O1, 1, bank_account="6222000000000041", account_holder="监护人", guardian_name="监护人",
                       guardian_id_number=G1, placement="社会散居")]
    _decide(mt, rows, deaths=[_death(rows[0], "2020-01"), _death(rows[1], "2020-02"), _death(rows[4], "2020-02")],
            register=[{"id_number": G1, "death_month": "2020-01", "death_date_valid": True}])
    _decisions(mt, [decided(T1, "tekun", not_paid_reason="deceased_listed", no_price_subsidy=True),
                    decided(A1, "dibao", hold_reason="household_head_deceased", no_price_subsidy=True),
                    decided(A2, "dibao", hold_reason="household_head_deceased"),
                    decided(A3, "dibao", no_price_subsidy=True),
                    decided(O1, "orphan", hold_reason="guardian_deceased")])


def test_a_household_whose_head_died_in_the_payroll_month_is_paid_that_month(mt):
    """Payroll 2020-03; the head died on 2020-03-05, reported in March's extract. The month of death
    is paid, the hold starts with the next service month (tests/model/BRIEF.md, deaths: "a person is
    not paid for service months after the month of death"; the head's hold applies when the death
    month < service month, as the contract's section 3 reads). The next test holds April."""
    rows = [own("dibao", A1, 1, household_id="H1", relation="户主"),
            roster_row("dibao", A2, 2, household_id="H1", relation="配偶")]
    _decide(mt, rows, register=[{"id_number": A1, "death_month": "2020-03", "reported_month": "2020-03",
                                 "death_date_valid": True}])  # int_deaths: no row (not before the payroll month)
    _decisions(mt, [])


def test_the_account_is_held_when_it_is_not_in_the_name_the_contract_says_is_paid(mt):
    """The beneficiary, or the guardian of a child at home; an institution's account is not checked
    by name (集中供养 with an institution code, 机构养育). The same person twice in one file with two
    accounts: the surviving row is held."""
    twin = own("tekun", T3, 4)
    rows = [own("tekun", T1, 1, account_holder="别人"), own("tekun", T2, 2),
            own("tekun", A1, 3, account_holder="和平区福利院", institution_code="INST01", placement="集中供养"),
            twin, own("tekun", T3, 5, bank_account="6222000000000999", disposition="duplicate",
                      duplicate_rule="same_person_same_file", duplicate_of_row=4),
            roster_row("orphan", O1, 1, bank_account="6222000000000041", account_holder="别人", guardian_name="监护人",
                       placement="社会散居"),
            roster_row("orphan", A3, 2, bank_account="6222000000000042", account_holder="和平区儿童福利院",
                       placement="机构养育")]
    _decide(mt, rows)
    _decisions(mt, [decided(T1, "tekun", hold_reason="account_holder_mismatch"),
                    decided(T3, "tekun", hold_reason="account_conflict_in_file"),
                    decided(O1, "orphan", hold_reason="account_holder_mismatch")])


def test_a_clearance_lifts_a_hold_by_the_person_or_by_any_member_of_the_household(mt):
    """T1's mismatch is cleared by T1's clearance; H1's head-death hold by a clearance naming the
    spouse. A clearance of another hold reason lifts nothing."""
    rows = [own("tekun", T1, 1, account_holder="别人"), own("tekun", T2, 2, account_holder="别人"),
            own("dibao", A1, 1, household_id="H1", relation="户主"),
            roster_row("dibao", A2, 2, household_id="H1", relation="配偶")]
    clear = lambda cid, program, p, reason: {"clearance_id": cid, "program": program, "id_number": p,  # noqa: E731
                                             "hold_reason": reason, "cleared_by": "核查员", "cleared_at": "2020-03-02"}
    _decide(mt, rows, deaths=[_death(rows[2], "2020-01")],
            clearances=[clear("C1", "tekun", T1, "account_holder_mismatch"), clear("C2", "dibao", A2,
                                                                                  "household_head_deceased"),
                        clear("C3", "tekun", T2, "guardian_deceased")])
    _decisions(mt, [decided(T1, "tekun", cleared_hold_reason="account_holder_mismatch", clearance_id="C1"),
                    decided(T2, "tekun", hold_reason="account_holder_mismatch", cleared_hold_reason=None,
                            clearance_id=None),
                    decided(A1, "dibao", cleared_hold_reason="household_head_deceased", clearance_id="C2",
                            no_price_subsidy=True),
                    decided(A2, "dibao", cleared_hold_reason="household_head_deceased", clearance_id="C2")])


def test_duplicates_and_temporary_cases_carry_their_own_decisions(mt):
    rows = [own("tekun", T1, 1, region_code=SHENHE, source_file=file_of("tekun", SHENHE)),
            own("temporary", T2, 1, approval_no="LS-1"), own("temporary", T3, 2, approval_no="LS-2")]
    _decide(mt, rows, duplicates=[{"source_file": rows[0]["source_file"], "source_row": 1, "survivor_file": file_of("tekun"),
                                   "survivor_row": 7, "duplicate_rule": "earliest_enrolment"}],
            temporary=[{"source_file": file_of("temporary"), "source_row": 1, "not_paid_reason": "temporary_already_paid"},
                       {"source_file": file_of("temporary"), "source_row": 2, "hold_reason": "temporary_above_cap"}])
    mt.expect("int_roster_decisions", [
        {"source_row": 1, "duplicate_across_counties": True, "survivor_row": 7, "not_paid_reason": None,
         "hold_reason": None},
        {"source_row": 1, "duplicate_across_counties": False, "survivor_row": None,
         "not_paid_reason": "temporary_already_paid", "hold_reason": None},
        {"source_row": 2, "duplicate_across_counties": False, "survivor_row": None, "not_paid_reason": None,
         "hold_reason": "temporary_above_cap"}])


# --- int_roster_final --------------------------------------------------------------------------

def test_the_final_roster_is_every_delivered_row_with_what_integrity_decided(mt):
    """Row conservation: a duplicate across counties becomes disposition `duplicate` naming its
    survivor; a row no rule touched keeps its own; a temporary case carries its policy version."""
    mt.payroll("2020-01")
    dup = roster_row("tekun", T1, 1, region_code=SHENHE, source_file=file_of("tekun", SHENHE))
    mt.given("int_roster_all", [dup, roster_row("tekun", T1, 1), roster_row("tekun", T2, 2, disposition="quarantined"),
                                roster_row("temporary", T3, 1, approval_no="LS-1")])
    mt.given("int_roster_decisions", [{"source_file": dup["source_file"], "source_row": 1,
                                       "duplicate_across_counties": True, "survivor_file": file_of("tekun"),
                                       "survivor_row": 1, "duplicate_rule": "earliest_enrolment",
                                       "excluded_member": False, "no_price_subsidy": False}])
    mt.given("int_temporary_cases", [{"source_file": file_of("temporary"), "source_row": 1, "policy_version": "v1"}])
    mt.expect("int_roster_final", [
        {"region_code": SHENHE, "id_number": T1, "disposition": "duplicate", "duplicate_of_file": file_of("tekun"),
         "excluded_member": False, "temporary_policy_version": None},
        {"region_code": C, "id_number": T1, "disposition": "accepted", "duplicate_of_file": None,
         "excluded_member": False, "temporary_policy_version": None},
        {"region_code": C, "id_number": T2, "disposition": "quarantined", "duplicate_of_file": None,
         "excluded_member": False, "temporary_policy_version": None},
        {"region_code": C, "id_number": T3, "disposition": "accepted", "duplicate_of_file": None,
         "excluded_member": False, "temporary_policy_version": "v1"}])


# --- int_integrity_findings --------------------------------------------------------------------

INTEGRITY_INPUTS = ("int_cross_county_duplicates", "int_temporary_cases", "int_exclusions", "ingest_files",
                    "int_near_duplicate_pairs", "int_registry_matches", "int_account_changes", "int_deaths")


def _report(mt, final, **given):
    mt.payroll("2020-03")
    mt.given("int_roster_final", final)
    for table in INTEGRITY_INPUTS:
        mt.given(table, given.get(table, []))


def finding(kind, p, action, program="tekun"):
    return {"finding_type": kind, "id_number": p, "program": program, "action": action}


def test_each_decision_not_to_pay_or_to_hold_is_a_finding(mt):
    rows = [final_row("tekun", T1, 1, not_paid_reason="deceased_listed", death_month="2020-01"),
            final_row("tekun", T2, 2, hold_reason="account_holder_mismatch", account_holder="别人"),
            final_row("dibao", A1, 1, household_id="H1", relation="户主"),
            final_row("dibao", A2, 2, household_id="H1", relation="配偶", death_month="2020-02",
                      no_price_subsidy=True),
            final_row("tekun", T3, 3, disposition="duplicate"),
            final_row("tekun", A3, 4, cleared_hold_reason="account_holder_mismatch", clearance_id="C1",
                      cleared_by="核查员", cleared_at="2020-03-02")]
    _report(mt, rows, int_cross_county_duplicates=[{"source_file": file_of("tekun"), "source_row": 3, "program": "tekun",
                                                    "id_number": T3, "survivor_file": file_of("tekun", SHENHE),
                                                    "survivor_row": 3, "duplicate_rule": "earliest_enrolment"}])
    mt.expect("int_integrity_findings", [
        finding("deceased_listed", T1, "not_paid"), finding("account_holder_mismatch", T2, "held"),
        finding("deceased_listed", A2, "paid_and_flagged", "dibao"), finding("duplicate_across_counties", T3, "not_paid"),
        finding("hold_cleared", A3, "recorded")], cols=["finding_type", "id_number", "program", "action"])


def test_accounts_shared_by_unrelated_payees_and_one_id_under_two_names_are_flagged(mt):
    """One account for T1 and T2 (unrelated): both flagged. A household's head and a member's own
    disability subsidy to one account: one payee, nothing. T3 under two names: flagged."""
    shared = "6222000000000777"
    rows = [final_row("tekun", T1, 1, bank_account=shared), final_row("tekun", T2, 2, bank_account=shared),
            final_row("dibao", A1, 1, household_id="H1", relation="户主", bank_account="6222000000000001"),
            final_row("dibao", A2, 2, household_id="H1", relation="配偶"),
            final_row("disability", A2, 1, bank_account="6222000000000001"),
            final_row("tekun", T3, 3, name="张三"), final_row("disability", T3, 2, name="张叁")]
    _report(mt, rows)
    mt.expect("int_integrity_findings", [finding("account_shared", T1, "paid_and_flagged"),
                                         finding("account_shared", T2, "paid_and_flagged"),
                                         finding("id_name_conflict", T3, "paid_and_flagged"),
                                         finding("id_name_conflict", T3, "paid_and_flagged", "disability")])


def test_evidence_from_files_registries_linkage_and_history_is_reported(mt):
    """A rejected file, two files of one county read together, a near-duplicate pair (a finding on
    each side), a registry hit (its evidence masked), an account changed with its holder, a death
    date the registry must correct, a temporary case beside a monthly program."""
    rows = [final_row("tekun", T1, 1), final_row("orphan", O1, 1), final_row("temporary", T1, 1, approval_no="LS-1"),
            final_row("tekun", T2, 2), final_row("tekun", T3, 3)]
    _report(mt, rows,
            ingest_files=[{"program": "tekun", "source_file": "rosters/tekun/x.xlsx", "status": "rejected",
                           "reason_detail": "无法读取", "county": C},
                          {"program": "dibao", "source_file": "rosters/dibao/a.csv", "status": "loaded", "county": C},
                          {"program": "dibao", "source_file": "rosters/dibao/b.csv", "status": "loaded", "county": C}],
            int_near_duplicate_pairs=[{"id_number_l": T1, "id_number_r": O1, "match_weight": 12.5, "agreed": ["name"],
                                       "source_file_l": file_of("tekun"), "source_row_l": 1,
                                       "source_file_r": file_of("orphan"), "source_row_r": 1,
                                       "programs_l": "tekun", "programs_r": "orphan"}],
            int_registry_matches=[{"source_file": file_of("tekun"), "source_row": 2, "id_number": T2, "program": "tekun",
                                   "registry": "vehicles", "evidence": '{"车主账号": "6222020200112233001"}'}],
            int_account_changes=[{"source_file": file_of("tekun"), "source_row": 3, "id_number": T3, "program": "tekun",
                                  "previous_month": "2020-02", "previous_account": "6222000000000001",
                                  "previous_holder": "张三", "bank_account": "6222000000000002", "account_holder": "李四"}],
            int_deaths=[{"source_file": file_of("tekun"), "source_row": 2, "id_number": T2, "program": "tekun",
                         "death_date_valid": False, "reported_death_date": "2020-05-01", "reported_month": "2020-03"}])
    mt.expect("int_integrity_findings", [
        {"finding_type": "file_rejected", "id_number": None}, {"finding_type": "county_files_read_together",
                                                              "id_number": None},
        {"finding_type": "near_duplicate", "id_number": T1}, {"finding_type": "near_duplicate", "id_number": O1},
        {"finding_type": "registry_vehicle", "id_number": T2}, {"finding_type": "account_changed_with_holder",
                                                                "id_number": T3},
        {"finding_type": "death_date_invalid", "id_number": T2},
        {"finding_type": "temporary_also_on_monthly_program", "id_number": T1}])
    [also] = mt.rows("int_integrity_findings", ["detail"], where="finding_type = 'temporary_also_on_monthly_program'")
    assert also["detail"] == "临时救助对象本月同时享受特困人员供养金：照发，备查"  # the program as caseworkers name it
    [vehicle] = mt.rows("int_integrity_findings", ["detail"], where="finding_type = 'registry_vehicle'")
    assert "6222020200112233001" not in vehicle["detail"] and "3001" in vehicle["detail"]
