"""Given/expect tests of the month's payment lines (contract sections 3 to 5): failed payments owed
again (int_reissue_due), what is paid to whom and what is held (int_payment_lines), every fen
attributed to a fund (int_fund_split), the engine's findings (int_compute_findings), what a death
learnt later makes overpaid (int_receivables) and the ledger lines (payment_ledger).
"""

from __future__ import annotations

import json
import textwrap
from decimal import Decimal as D

import pytest

from tests.modeltest import (  # noqa: F401  (fixtures)
    FUND_SHARES,
    C,
    connection_fixture,
    final_row,
    ledger_line,
    mt_fixture,
    person_id,
    unit_row,
)

pytestmark = pytest.mark.unit

A1, A2 = person_id(1, "19700101"), person_id(2, "19720202")
B1 = person_id(4, "19650101")
T1, T2, T3 = person_id(21, "19400101"), person_id(22, "19410101"), person_id(23, "19420101")
T4 = person_id(24, "19430101")
O2, G1 = person_id(32, "20100505"), person_id(41, "19800101")


def owed(unit, service, amount, line_type="regular", program="tekun", **values):
    """A row of int_program_due (or of the price subsidy, a reissue, a temporary case): due and payable."""
    return {"unit_key": unit, "line_program": program, "service_month": service, "line_type": line_type,
            "id_number": unit, "region_code": C, "has_standard": True, "eligible": True, "due": D(amount)} | values


def account(p):
    return "6222" + p[6:14] + "0001"


def on_roster(program, p, month, row=1, **values):
    """A unit row with its own account, in its own name."""
    return unit_row(program, p, month, row, **({"bank_account": account(p), "account_holder": f"name-{p[-4:]}",
                                                "bank_code": "ICBC"} | values))


def _lines(mt, payroll, due=(), price=(), reissue=(), temporary=(), units=(), hist_units=(), paid=(), ledger=(),
           closed=(), roster=(), held=(), **variables):
    mt.payroll(payroll, **variables)
    mt.given("cur_roster", list(roster))
    mt.given("int_program_due", list(due))
    mt.given("int_reference_held_due", list(held))
    mt.given("int_price_subsidy", list(price))
    mt.given("int_reissue_due", list(reissue))
    mt.given("int_temporary_due", list(temporary))
    mt.given("int_units", list(units))
    mt.given("hist_units", list(hist_units))
    mt.given("int_paid_history", [{"unit_key": u, "line_program": p, "service_month": s, "paid_amount": D(a),
                                   "was_paid": True, "was_held": False} for u, p, s, a in paid])
    mt.given("hist_ledger", list(ledger))
    mt.given("hist_closed_accounts", [{"payee_account": a, "reported_month": "2020-02", "payment_ref": "R1",
                                       "reason": "账户已销户"} for a in closed])


def line(unit, service, amount, line_type="regular", status="payable", hold=None, payee=None, **values):
    return {"unit_key": unit, "service_month": service, "line_type": line_type, "amount": D(amount),
            "status": status, "hold_reason": hold, "payee_account": payee} | values


# --- int_reissue_due ---------------------------------------------------------------------------

def _failed(payroll, p, amount, line_type="regular", **values):
    """A payable line of an earlier payroll that the bank returned as failed."""
    return ledger_line(payroll, "2020-02", "tekun", p, amount, line_type, payment_state="failed",
                       payee_account=account(p), line_id=f"{p[-4:]}-{line_type}-{payroll}", **values)


def test_a_failed_payment_is_owed_again_once_per_person_program_and_month(mt):
    """T1's February regular and price subsidy lines failed: one reissue of 952.00 + 29.48 =
    981.48 naming both, and the rule versions of both, sorted. T2's failed line was reissued by a
    payment that did not fail: nothing."""
    mt.payroll("2020-04")
    mt.given("hist_ledger", [
        _failed("2020-02", T1, "952.00", rule_versions=["tekun-basic-2020", "care-2020"]),
        _failed("2020-02", T1, "29.48", "price_subsidy", rule_versions=["price-2020", "tekun-basic-2020"]),
        _failed("2020-02", T2, "952.00"),
        ledger_line("2020-03", "2020-02", "tekun", T2, "952.00", "reissue", payment_state="paid",
                    reissue_of=[f"{T2[-4:]}-regular-2020-02"]),
    ])
    mt.expect("int_reissue_due", [
        {"id_number": T1, "service_month": "2020-02", "due": D("981.48"), "failed_account": account(T1),
         "reissue_of": [f"{T1[-4:]}-price_subsidy-2020-02", f"{T1[-4:]}-regular-2020-02"],
         "first_failed_payroll": "2020-02", "rule_versions": ["care-2020", "price-2020", "tekun-basic-2020"]}])


def test_a_failed_reissue_is_owed_again_once(mt):
    """T3's February payment (952.00) failed, and so did its reissue in March: 952.00 is owed,
    once, replacing the original line (its failed reissue carried the same money)."""
    mt.payroll("2020-04")
    mt.given("hist_ledger", [_failed("2020-02", T3, "952.00"),
                             _failed("2020-03", T3, "952.00", "reissue", reissue_of=[f"{T3[-4:]}-regular-2020-02"])])
    # once, naming the failed reissue that carries the debt; escalation counts from the first failure
    mt.expect("int_reissue_due", [{"id_number": T3, "service_month": "2020-02", "due": D("952.00"),
                                   "reissue_of": [f"{T3[-4:]}-reissue-2020-03"], "first_failed_payroll": "2020-02"}])


def test_a_payment_that_failed_three_times_is_owed_once_from_its_first_failure(mt):
    """February's 952.00 failed, and so did its reissues in March and April: in May it is owed once."""
    mt.payroll("2020-05")
    mt.given("hist_ledger", [
        _failed("2020-02", T3, "952.00"),
        _failed("2020-03", T3, "952.00", "reissue", reissue_of=[f"{T3[-4:]}-regular-2020-02"]),
        _failed("2020-04", T3, "952.00", "reissue", reissue_of=[f"{T3[-4:]}-reissue-2020-03"])])
    mt.expect("int_reissue_due", [{"id_number": T3, "service_month": "2020-02", "due": D("952.00"),
                                   "reissue_of": [f"{T3[-4:]}-reissue-2020-04"], "first_failed_payroll": "2020-02"}])


# --- int_payment_lines -------------------------------------------------------------------------

def test_golden_arrears_pay_the_difference_to_what_was_paid(mt):
    """April: HH1's January recomputed at 688 × 3 − 600 = 1464.00, 1365.00 paid: 99.00 arrears.
    HH2 on the floor: max(688 × 2 − 1280 = 96, 100) = 100.00 = what was paid: no line. HH1's April
    regular line 1464.00. Every line stands on the head and is paid to the head's account."""
    _lines(mt, "2020-04",
           due=[owed("H1", "2020-01", "1464.00", "arrears", "dibao", id_number=A1),
                owed("H1", "2020-04", "1464.00", "regular", "dibao", id_number=A1),
                owed("H2", "2020-01", "100.00", "arrears", "dibao", id_number=B1)],
           units=[on_roster("dibao", A1, "2020-04", 1, household_id="H1", relation="户主"),
                  unit_row("dibao", A2, "2020-04", 2, household_id="H1", relation="配偶"),
                  on_roster("dibao", B1, "2020-04", 3, household_id="H2", relation="户主")],
           paid=[("H1", "dibao", "2020-01", "1365.00"), ("H2", "dibao", "2020-01", "100.00")])
    mt.expect("int_payment_lines", [
        line("H1", "2020-01", "99.00", "arrears", payee=account(A1), previously_paid=D("1365.00"), id_number=A1),
        line("H1", "2020-04", "1464.00", payee=account(A1), previously_paid=D("0"), id_number=A1)])


def test_golden_a_members_price_subsidy_is_paid_to_the_household(mt):
    _lines(mt, "2020-01",
           price=[owed("H1", "2020-01", "29.48", "price_subsidy", "dibao", id_number=p) for p in (A1, A2)],
           units=[on_roster("dibao", A1, "2020-01", 1, household_id="H1", relation="户主"),
                  unit_row("dibao", A2, "2020-01", 2, household_id="H1", relation="配偶")])
    mt.expect("int_payment_lines", [line("H1", "2020-01", "29.48", "price_subsidy", payee=account(A1), id_number=p)
                                    for p in (A1, A2)])


def test_golden_institution_and_guardian_accounts_are_paid_as_on_the_roster(mt):
    """集中供养: the institution's account; an orphan 社会散居: the guardian's."""
    _lines(mt, "2020-01", due=[owed(T1, "2020-01", "952.00"), owed(O2, "2020-01", "1273.00", program="orphan")],
           units=[on_roster("tekun", T1, "2020-01", bank_account="6222000099990001", account_holder="和平区福利院",
                            institution_code="INST01", placement="集中供养"),
                  on_roster("orphan", O2, "2020-01", bank_account=account(G1), account_holder="监护人",
                            placement="社会散居", guardian_id_number=G1)])
    mt.expect("int_payment_lines", [
        line(T1, "2020-01", "952.00", payee="6222000099990001", payee_name="和平区福利院", institution_code="INST01"),
        line(O2, "2020-01", "1273.00", payee=account(G1), payee_name="监护人", institution_code=None)])


def test_back_pay_to_someone_on_no_roster_now_goes_to_their_last_account(mt):
    _lines(mt, "2020-04", due=[owed(T1, "2020-02", "995.00", "arrears", arrears_cause="raise_back_pay")],
           hist_units=[on_roster("tekun", T1, "2020-02", bank_account="6222000000000002"),
                       on_roster("tekun", T1, "2020-03", bank_account="6222000000000003")],
           paid=[(T1, "tekun", "2020-02", "952.00")])
    mt.expect("int_payment_lines", [line(T1, "2020-02", "43.00", "arrears", payee="6222000000000003")])  # 995 − 952


def test_nothing_is_a_line_that_is_not_owed(mt):
    """Not eligible, no standard, arrears that would be negative (never recovered this way), zero."""
    _lines(mt, "2020-02", due=[owed(T1, "2020-02", "952.00", eligible=False), owed(T2, "2020-02", "952.00",
                                                                                   has_standard=False),
                               owed(T3, "2020-01", "900.00", "arrears"), owed(B1, "2020-02", "0.00")],
           units=[on_roster("tekun", p, "2020-02", i) for i, p in enumerate((T1, T2, T3, B1), 1)],
           paid=[(T3, "tekun", "2020-01", "952.00")])
    mt.expect("int_payment_lines", [])


def test_lines_are_held_never_dropped_when_something_stops_them(mt):
    """Integrity's hold (a household whose head died), no account to pay, an account a bank said is
    closed, a second arrears line for a month that already has a payable one: each line is held
    with its reason; the others are payable."""
    _lines(mt, "2020-03",
           due=[owed("H1", "2020-03", "655.00", program="dibao", id_number=A1), owed(T1, "2020-03", "952.00"),
                owed(T2, "2020-03", "952.00"), owed(T3, "2020-01", "1000.00", "arrears"),
                owed(B1, "2020-03", "952.00")],
           units=[on_roster("dibao", A1, "2020-03", 1, household_id="H1", relation="户主",
                            hold_reason="household_head_deceased"),
                  on_roster("tekun", T1, "2020-03", 1, bank_account=None),
                  on_roster("tekun", T2, "2020-03", 2), on_roster("tekun", T3, "2020-03", 3),
                  on_roster("tekun", B1, "2020-03", 4)],
           paid=[(T3, "tekun", "2020-01", "995.00")],
           ledger=[ledger_line("2020-02", "2020-01", "tekun", T3, "43.00", "arrears")],
           closed=[account(T2)])
    mt.expect("int_payment_lines", [
        line("H1", "2020-03", "655.00", "regular", "held", "household_head_deceased", account(A1)),
        line(T1, "2020-03", "952.00", "regular", "held", "no_payee_account", None),
        line(T2, "2020-03", "952.00", "regular", "held", "account_closed", account(T2)),
        line(T3, "2020-01", "5.00", "arrears", "held", "arrears_top_up_review", account(T3)),
        line(B1, "2020-03", "952.00", "regular", "payable", None, account(B1))])


def test_a_reissue_waits_for_an_account_other_than_the_one_that_failed(mt):
    reissue = lambda p, failed: owed(p, "2020-01", "952.00", "reissue", failed_account=failed,  # noqa: E731
                                     reissue_of=["L1"], program="tekun")
    _lines(mt, "2020-03", reissue=[reissue(T1, account(T1)), reissue(T2, "6222000000000009")],
           units=[on_roster("tekun", T1, "2020-03", 1), on_roster("tekun", T2, "2020-03", 2)])
    mt.expect("int_payment_lines", [
        line(T1, "2020-01", "952.00", "reissue", "held", "awaiting_account_correction", account(T1)),
        line(T2, "2020-01", "952.00", "reissue", "payable", None, account(T2))])


def test_pay_amount_source_approved_pays_the_countys_amount_on_regular_lines_only(mt):
    _lines(mt, "2020-04", pay_amount_source="approved",
           due=[owed(T1, "2020-04", "995.00", approved_amount=D("990.00")), owed(T2, "2020-04", "995.00"),
                owed(T1, "2020-01", "995.00", "arrears", approved_amount=D("990.00"))],
           units=[on_roster("tekun", T1, "2020-04", 1), on_roster("tekun", T2, "2020-04", 2)],
           paid=[(T1, "tekun", "2020-01", "952.00")])
    mt.expect("int_payment_lines", [line(T1, "2020-04", "990.00", payee=account(T1)),
                                    line(T2, "2020-04", "995.00", payee=account(T2)),  # no approved amount
                                    line(T1, "2020-01", "43.00", "arrears", payee=account(T1))])


def test_each_temporary_case_is_its_own_line(mt):
    """One person, two approved cases: two one_off lines, keyed apart by their approval numbers."""
    case = lambda no, amount: owed(no, "2020-02", amount, "one_off", "temporary", id_number=T1,  # noqa: E731
                                   approval_no=no)
    _lines(mt, "2020-02", temporary=[case("LS-1", "1310.00"), case("LS-2", "500.00")],
           units=[on_roster("temporary", T1, "2020-02", 1, approval_no="LS-1"),
                  on_roster("temporary", T1, "2020-02", 2, approval_no="LS-2")])
    rows = mt.expect("int_payment_lines", [line("LS-1", "2020-02", "1310.00", "one_off", payee=account(T1)),
                                           line("LS-2", "2020-02", "500.00", "one_off", payee=account(T1))])
    assert len({r["line_key"] for r in mt.rows("int_payment_lines", ["line_key"])}) == len(rows) == 2


def test_two_failed_cases_of_one_person_are_reissued_case_by_case(mt):
    """T1's two temporary cases of February (900.00 and 400.00) both failed: two reissues, one per
    approval, each naming its own failed line."""
    mt.payroll("2020-03")
    case = lambda no, amount: ledger_line("2020-02", "2020-02", "temporary", no, amount, "one_off",  # noqa: E731
                                          payment_state="failed", id_number=T1, approval_no=no,
                                          payee_account=account(T1), line_id=f"one_off-{no}")
    mt.given("hist_ledger", [case("LS-1", "900.00"), case("LS-2", "400.00")])
    mt.expect("int_reissue_due", [
        {"unit_key": "LS-1", "approval_no": "LS-1", "due": D("900.00"), "reissue_of": ["one_off-LS-1"]},
        {"unit_key": "LS-2", "approval_no": "LS-2", "due": D("400.00"), "reissue_of": ["one_off-LS-2"]}])


def test_a_failed_case_is_reissued_to_the_account_its_county_delivers_again(mt):
    """LS-1 (900.00) failed at T1's account. In March the county delivers the case again with a new card
    (integrity: temporary_already_paid, not paid again): the reissue goes there. LS-2 (T2) is not delivered
    again: its reissue waits on the account that failed."""
    new_card = "6217000000000099"
    reissue = lambda no, p: owed(no, "2020-02", "900.00", "reissue", "temporary", id_number=p,  # noqa: E731
                                 approval_no=no, failed_account=account(p))
    _lines(mt, "2020-03", reissue=[reissue("LS-1", T1), reissue("LS-2", T2)],
           hist_units=[on_roster("temporary", T1, "2020-02", 1, approval_no="LS-1", unit_key="LS-1"),
                       on_roster("temporary", T2, "2020-02", 2, approval_no="LS-2", unit_key="LS-2")],
           roster=[final_row("temporary", T1, 1, approval_no="LS-1", bank_account=new_card, account_holder="name",
                             disposition="accepted", not_paid_reason="temporary_already_paid")])
    mt.expect("int_payment_lines", [
        line("LS-1", "2020-02", "900.00", "reissue", payee=new_card),
        line("LS-2", "2020-02", "900.00", "reissue", "held", "awaiting_account_correction", payee=account(T2))])


# --- int_fund_split ----------------------------------------------------------------------------

def _split(mt, lines, shares=FUND_SHARES, payroll="2020-04"):
    mt.payroll(payroll)
    mt.reference(fund_shares=shares)
    mt.given("int_payment_lines", [{"line_key": k, "line_program": p, "line_type": t, "region_code": r,
                                    "service_month": s, "amount": D(a)} for k, p, t, r, s, a in lines])
    mt.empty("hist_ledger")


def test_a_line_paid_forward_in_a_held_county_keeps_the_parts_of_the_line_it_repeats(mt):
    """A held county's fund_shares.csv row may be what is broken (here 0.4 / 0.1 / 0.3 / 0.3 = 1.1): the
    line paid forward (basis reference_held) keeps January's parts and version; a line of the same
    county not paid forward is split by the table."""
    broken = textwrap.dedent(FUND_SHARES).strip() + "\ndibao,210102,0.40,0.10,0.30,0.30,2020-02\n"
    mt.payroll("2020-02")
    mt.reference(fund_shares=broken)
    january = ledger_line("2020-01", "2020-01", "dibao", "HS1", "600.00", fund_central=D("240.00"),
                          fund_provincial=D("60.00"), fund_city=D("180.00"), fund_county=D("120.00"),
                          fund_version="dibao/2101/2019-01")
    mt.given("hist_ledger", [january])
    mt.given("int_payment_lines", [
        {"line_key": "F", "line_program": "dibao", "line_type": "regular", "region_code": "210102",
         "service_month": "2020-02", "amount": D("600.00"), "basis": "reference_held",
         "inputs": json.dumps({"paid_forward_line": january["line_id"]})},
        {"line_key": "N", "line_program": "dibao", "line_type": "regular", "region_code": "210102",
         "service_month": "2020-02", "amount": D("100.00")}])
    mt.expect("int_fund_split", [parts("F", "240.00", "60.00", "180.00", "120.00"),
                                 parts("N", "40.00", "10.00", "30.00", "30.00")])
    assert [(r["line_key"], r["fund_version"]) for r in mt.rows("int_fund_split", ["line_key", "fund_version"])
            if r["line_key"] == "F"] == [("F", "dibao/2101/2019-01")]


def parts(key, central, provincial, city, county):
    return {"line_key": key, "fund_central": D(central), "fund_provincial": D(provincial), "fund_city": D(city),
            "fund_county": D(county)}


def test_golden_fund_split_adds_up_to_the_fen(mt):
    """Rural price subsidy 450 × 4.5% = 20.25 = 2025 fen, price_subsidy shares 0 / .5 / .25 / .25:
    0 / 1012.5 / 506.25 / 506.25, floors 0 + 1012 + 506 + 506 = 2024: the spare fen to the largest
    remainder (provincial, .5) → 0.00 / 10.13 / 5.06 / 5.06. Shenyang dibao 0.40 / 0.10 / 0.30 / 0.20
    of 1365.00 → 546.00 / 136.50 / 409.50 / 273.00 (2101 over 21). Orphans 0.5 / 0.25 / 0.125 /
    0.125 of 1273.00: 636.50 / 318.25 / 159.125 / 159.125, the spare fen to the first of the tied
    remainders, city: 159.13 / 159.12. Disability living 70.00 by the disability shares."""
    _split(mt, [("P", "dibao", "price_subsidy", C, "2020-01", "20.25"), ("D", "dibao", "regular", C, "2020-01", "1365.00"),
                ("O", "orphan", "regular", C, "2020-01", "1273.00"),
                ("L", "disability_living", "regular", C, "2020-01", "70.00")])
    mt.expect("int_fund_split", [parts("P", "0.00", "10.13", "5.06", "5.06"),
                                 parts("D", "546.00", "136.50", "409.50", "273.00"),
                                 parts("O", "636.50", "318.25", "159.13", "159.12"),
                                 parts("L", "0.00", "21.00", "24.50", "24.50")])
    assert [r for r in mt.rows("int_fund_split", ["line_key", "parts_fen", "amount_fen"])
            if r["parts_fen"] != r["amount_fen"]] == []


def test_without_a_price_subsidy_row_the_carrying_program_funds_the_price_subsidy(mt):
    """Contract section 3: a price-subsidy line is funded by the shares of the program that carries
    it unless a price_subsidy row matches. Only tekun rows here, 0.1 / 0.2 / 0.3 / 0.4: a tekun
    price subsidy of 20.00 → 2.00 / 4.00 / 6.00 / 8.00, like the tekun line beside it."""
    _split(mt, [("P", "tekun", "price_subsidy", C, "2020-01", "20.00"), ("T", "tekun", "regular", C, "2020-01", "10.00")],
           shares="program,region_code,central,provincial,city,county,effective_from\ntekun,21,0.1,0.2,0.3,0.4,2019-01")
    mt.expect("int_fund_split", [parts("P", "2.00", "4.00", "6.00", "8.00"), parts("T", "1.00", "2.00", "3.00", "4.00")])


def test_the_parts_of_every_line_add_up_exactly(mt):
    """Shares 0.1 / 0.2 / 0.3 / 0.4: 0.01 = 1 fen goes whole to the largest remainder (county, .4);
    0.03 → 0.3 / 0.6 / 0.9 / 1.2 fen: floors 0 + 0 + 0 + 1, two spare fen to city (.9) and
    provincial (.6); 999.99 → 99999 fen: 9999.9 / 19999.8 / 29999.7 / 39999.6, three spare fen."""
    _split(mt, [("A", "tekun", "regular", C, "2020-01", "0.01"), ("B", "tekun", "regular", C, "2020-01", "0.03"),
                ("C", "tekun", "regular", C, "2020-01", "999.99")],
           shares="program,region_code,central,provincial,city,county,effective_from\ntekun,21,0.1,0.2,0.3,0.4,2019-01")
    mt.expect("int_fund_split", [parts("A", "0.00", "0.00", "0.00", "0.01"), parts("B", "0.00", "0.01", "0.01", "0.01"),
                                 parts("C", "100.00", "200.00", "300.00", "399.99")])


def test_the_share_version_is_the_latest_in_force_for_the_service_month(mt):
    _split(mt, [("JAN", "tekun", "arrears", C, "2020-01", "100.00"), ("APR", "tekun", "regular", C, "2020-04", "100.00")],
           shares="""
               program,region_code,central,provincial,city,county,effective_from
               tekun,21,0.50,0.20,0.15,0.15,2019-01
               tekun,21,0.40,0.30,0.15,0.15,2020-03
           """)
    mt.expect("int_fund_split", [parts("JAN", "50.00", "20.00", "15.00", "15.00"),
                                 parts("APR", "40.00", "30.00", "15.00", "15.00")])


def test_a_line_that_no_share_funds_gets_no_split(mt):
    """No row for 220102 (another province): no split row, so compute's LINE_AUDITS stop the run;
    the line is never dropped quietly."""
    _split(mt, [("X", "tekun", "regular", "220102", "2020-04", "952.00")])
    mt.expect("int_fund_split", [])


# --- int_compute_findings ----------------------------------------------------------------------

def escalation(months="3"):
    """stg_policy_parameters as staged for the payroll: the one parameter these findings read."""
    return [{"parameter": "reissue_escalate_after_months", "value": D(months), "value_text": months,
             "effective_from": "2019-01"}]


def _findings(mt, payroll, due=(), lines=(), units=(), paid=(), closed=(), tolerance="0.00", held=(), serving=(),
              **variables):
    mt.payroll(payroll, approved_tolerance=tolerance, **variables)
    mt.given("int_service_months", list(serving))
    mt.given("stg_policy_parameters", escalation())
    mt.given("int_program_due", list(due))
    mt.given("int_reference_held_due", list(held))
    mt.given("int_payment_lines", list(lines))
    mt.given("int_units", list(units))
    mt.given("int_paid_history", [{"unit_key": u, "line_program": p, "service_month": s, "paid_amount": D(a),
                                   "was_paid": True} for u, p, s, a in paid])
    mt.given("hist_closed_accounts", list(closed))


def finding(kind, who, action):
    return {"finding_type": kind, "id_number": who, "action": action}


def test_what_the_engine_does_not_pay_it_says_why(mt):
    """An ineligible household, a unit without a standard, a month of nothing due, arrears that
    would be negative (recorded, never recovered this way)."""
    _findings(mt, "2020-02", due=[
        owed("H4", "2020-02", "0.00", program="dibao", id_number=A1, eligible=False, formula="…"),
        owed(T1, "2020-02", "0.00", has_standard=False),
        owed(T2, "2020-02", "0.00", formula="…"),
        owed(T3, "2020-01", "900.00", "arrears")], paid=[(T3, "tekun", "2020-01", "952.00")])
    mt.expect("int_compute_findings", [finding("dibao_not_eligible", A1, "not_paid"), finding("no_standard", T1, "not_paid"),
                                       finding("nothing_due", T2, "not_paid"), finding("arrears_negative", T3, "recorded")])


def test_an_approved_amount_is_flagged_only_beyond_the_tolerance(mt):
    """Tolerance 5.00: 952.00 computed against 947.00 approved is within it (|5.00| is not more);
    against 946.99 it is flagged, and paid as computed."""
    _findings(mt, "2020-02", tolerance="5.00", due=[owed(T1, "2020-02", "952.00", approved_amount=D("947.00")),
                                                    owed(T2, "2020-02", "952.00", approved_amount=D("946.99"))])
    mt.expect("int_compute_findings", [finding("approved_amount_differs", T2, "paid_and_flagged")])


def test_a_unit_outside_its_entitlement_gets_a_finding(mt):
    """Every unit ends with a line or a finding: the roster's own window excludes the month (ended,
    not begun, aged out). One finding per household (its head), none for a temporary case."""
    _findings(mt, "2020-03", units=[
        unit_row("tekun", T1, "2020-03", 1, enrolled_to="2020-02"),
        unit_row("tekun", T2, "2020-03", 2, enrolled_from="2020-04"),
        unit_row("tekun", T3, "2020-03", 3, enrolled_to="2020-03"),  # its last month: entitled
        unit_row("orphan", O2, "2020-03", 1, age_out_month="2020-02"),
        unit_row("dibao", A1, "2020-03", 1, household_id="H1", relation="户主", enrolled_to="2020-01"),
        unit_row("dibao", A2, "2020-03", 2, household_id="H1", relation="配偶", enrolled_to="2020-01"),
        unit_row("temporary", B1, "2020-03", 1, approval_no="LS-1", enrolled_from=None)])
    mt.expect("int_compute_findings", [finding("not_entitled_this_month", p, "not_paid") for p in (T1, T2, O2, A1)])


def test_held_lines_and_failed_payments_awaiting_an_account_are_findings_escalated_after_three_months(mt):
    """A reissue held since a failure in the 2020-01 payroll is awaiting a corrected account in the
    2020-03 payroll (2 months) and in 2020-04 (3 months: reissue_escalate_after_months is 3, and the
    note of policy_parameters.csv says 超过, more than), and overdue in 2020-05 (4 months)."""
    held = lambda p, reason, line_type="regular", **kw: {  # noqa: E731
        "line_key": p, "line_program": "tekun", "id_number": p, "service_month": "2020-01", "line_type": line_type,
        "amount": D("952.00"), "hold_reason": reason, "status": "held", "payee_account": account(p)} | kw
    lines = [held(T1, "no_payee_account"), held(T2, "arrears_top_up_review", "arrears"),
             held(T3, "awaiting_account_correction", "reissue", first_failed_payroll="2020-01",
                  failed_account=account(T3)),
             held(B1, "account_closed")]
    closed = [{"payee_account": account(B1), "reported_month": "2020-02", "payment_ref": "R9", "reason": "账户已销户"}]
    _findings(mt, "2020-03", lines=lines, closed=closed)
    mt.expect("int_compute_findings", [finding("no_payee_account", T1, "held"), finding("arrears_top_up_review", T2, "held"),
                                       finding("awaiting_account_correction", T3, "held"),
                                       finding("account_closed", B1, "held")])
    _findings(mt, "2020-04", lines=lines[2:3])
    mt.expect("int_compute_findings", [finding("awaiting_account_correction", T3, "held")])
    _findings(mt, "2020-05", lines=lines[2:3])
    mt.expect("int_compute_findings", [finding("reissue_overdue", T3, "held")])


def test_findings_need_the_escalation_parameter_in_force(mt):
    """A parameter that is not in force for the payroll (staged from policy_parameters.csv: valid
    from 2020-03, payroll 2020-02) stops the model rather than defaulting."""
    mt.payroll("2020-02")
    mt.reference(policy_parameters="parameter,value,effective_from,effective_to,note\n"
                                   "reissue_escalate_after_months,3,2020-03,,")
    mt.empty("int_program_due", "int_units", "int_paid_history", "hist_closed_accounts",
             "int_reference_held_due", "int_service_months")
    # a failed payment waiting for a corrected account: the escalation needs the parameter
    mt.given("int_payment_lines", [{"line_key": T3, "line_program": "tekun", "id_number": T3, "service_month": "2020-01",
                                    "line_type": "reissue", "amount": D("952.00"), "status": "held",
                                    "hold_reason": "awaiting_account_correction", "first_failed_payroll": "2020-01",
                                    "failed_account": account(T3)}])
    mt.fails("int_compute_findings", "no reissue_escalate_after_months row in force for payroll 2020-02")


# --- int_receivables ---------------------------------------------------------------------------

def test_payments_for_months_after_a_death_learnt_later_are_receivables_once(mt):
    """Golden (test_mutation_killers): T2 died on 2020-01-20, reported in March. February's regular
    952.00 and price subsidy 35.37 were paid: receivables. January (the month of death) was owed.
    A payment the bank returned as failed was not paid; a held line was not paid; a receivable
    already recognised is not recognised again. A dead head's household lines stand on the head."""
    mt.payroll("2020-03")
    mt.given("hist_ledger", [
        ledger_line("2020-01", "2020-01", "tekun", T2, "952.00"),
        ledger_line("2020-02", "2020-02", "tekun", T2, "952.00"),
        ledger_line("2020-02", "2020-02", "tekun", T2, "35.37", "price_subsidy"),
        ledger_line("2020-02", "2020-02", "orphan", T2, "100.00", payment_state="failed"),
        ledger_line("2020-02", "2020-02", "disability_living", T2, "70.00", status="held"),
        ledger_line("2020-01", "2020-01", "dibao", "H1", "655.00", id_number=A1, line_id="RECOGNISED"),
        ledger_line("2020-02", "2020-02", "dibao", "H1", "655.00", id_number=A1),
    ])
    mt.given("known_deaths", [{"id_number": T2, "death_month": "2020-01", "reported_month": "2020-03"},
                              {"id_number": A1, "death_month": "2019-12", "reported_month": "2020-02"}])
    mt.given("hist_receivables", [{"receivable_id": "RECOGNISED"}])
    mt.expect("int_receivables", [
        {"paid_payroll": "2020-02", "service_month": "2020-02", "program": "tekun", "line_type": "regular",
         "id_number": T2, "amount": D("952.00"), "death_month": "2020-01"},
        {"paid_payroll": "2020-02", "service_month": "2020-02", "program": "tekun", "line_type": "price_subsidy",
         "id_number": T2, "amount": D("35.37"), "death_month": "2020-01"},
        {"paid_payroll": "2020-02", "service_month": "2020-02", "program": "dibao", "line_type": "regular",
         "id_number": A1, "amount": D("655.00"), "death_month": "2019-12"}])


def test_each_receivable_is_reported_as_a_finding_never_deducted(mt):
    """int_receivable_findings (moved from pipelines/compute.py): one error finding per receivable,
    saying what was paid and the death that makes it owed back."""
    mt.payroll("2020-03")
    mt.given("hist_ledger", [ledger_line("2020-02", "2020-02", "tekun", T2, "952.00") | {"payment_ref": "R1"}])
    mt.given("known_deaths", [{"id_number": T2, "death_month": "2020-01", "reported_month": "2020-03"}])
    mt.empty("hist_receivables")
    mt.run("int_receivables")
    mt.expect("int_receivable_findings", [
        {"finding_type": "receivable_recognised", "severity": "error", "action": "recorded", "id_number": T2,
         "detail": "2020-02 已发放 2020-02 952.00 元（regular，R1），但此人已于 2020-01 死亡（2020-03 报送）："
                   "列为应追缴，不自动扣回"}])

# --- payment_ledger ----------------------------------------------------------------------------

def test_the_ledger_line_carries_its_fund_parts_and_explains_its_arrears(mt):
    mt.payroll("2020-04")
    mt.given("int_payment_lines", [
        {"line_key": "K1", "line_program": "dibao", "line_type": "arrears", "service_month": "2020-01",
         "id_number": A1, "unit_key": "H1", "amount": D("99.00"), "due": D("1464.00"), "previously_paid": D("1365.00"),
         "status": "payable", "formula": "max(688.00×3−600.00, 50.00×3) + 附加0.00 = 1464.00"},
        {"line_key": "K2", "line_program": "tekun", "line_type": "regular", "service_month": "2020-04",
         "id_number": T1, "unit_key": T1, "amount": D("995.00"), "due": D("995.00"), "previously_paid": D("0"),
         "status": "held", "hold_reason": "no_payee_account", "formula": "基本生活 895.00 + 照料护理(全自理) 100.00 = 995.00"}])
    mt.given("int_fund_split", [parts("K1", "39.60", "9.90", "29.70", "19.80") | {"fund_version": "v"}])
    mt.expect("payment_ledger", [
        {"line_id": "K1", "payroll_month": "2020-04", "program": "dibao", "amount": D("99.00"), "fund_central": D("39.60"),
         "fund_county": D("19.80"), "payment_state": "sent",
         "formula": "max(688.00×3−600.00, 50.00×3) + 附加0.00 = 1464.00；应发 1464.00 − 已发 1365.00 = 补发 99.00"},
        {"line_id": "K2", "payroll_month": "2020-04", "program": "tekun", "amount": D("995.00"), "fund_central": None,
         "fund_county": None, "payment_state": None, "formula": "基本生活 895.00 + 照料护理(全自理) 100.00 = 995.00"}])


# --- a county held for its reference data (issue 20: 不断) -----------------------------------------

DALIAN = "210202"


def test_a_held_county_is_paid_last_months_lines_forward_within_the_policys_months(mt):
    """County C is held in the 2020-03 payroll. T1 (tekun) was paid 952.00 in February: paid forward,
    held line included (this month's holds decide again). T2's last line is from 2019-12, more than
    carry_forward_max_months (2) back: nothing. T3 has ended (enrolled_to 2020-02: no service month
    2020-03): nothing. A1's household was paid 655.00 + 29.48 price subsidy: both forward. H2's member
    O2 died in February: a death changes the amount, nothing is paid forward. B1 lives in Dalian."""
    mt.payroll("2020-03", held_counties=[C])
    mt.given("int_units", [
        unit_row("tekun", T1, "2020-03", 1), unit_row("tekun", T2, "2020-03", 2),
        unit_row("tekun", T3, "2020-03", 3, enrolled_to="2020-02"),
        unit_row("dibao", A1, "2020-03", 4, household_id="H1", relation="户主"),
        unit_row("dibao", A2, "2020-03", 5, household_id="H1", relation="配偶"),
        unit_row("dibao", G1, "2020-03", 6, household_id="H2", relation="户主"),
        unit_row("dibao", O2, "2020-03", 7, household_id="H2", relation="子女", death_month="2020-02"),
        unit_row("tekun", B1, "2020-03", 1, region_code=DALIAN)])
    mt.given("int_service_months", [_serving(u, p) for u, p in ((T1, "tekun"), (T2, "tekun"), ("H1", "dibao"),
                                                                 ("H2", "dibao"), (B1, "tekun"))])
    mt.given("hist_ledger", [
        ledger_line("2020-01", "2020-01", "tekun", T1, "900.00"),
        ledger_line("2020-02", "2020-02", "tekun", T1, "952.00", status="held", inputs='{"placement": "分散"}'),
        ledger_line("2020-02", "2020-01", "tekun", T1, "52.00", "arrears"),  # back pay: never paid forward
        ledger_line("2019-12", "2019-12", "tekun", T2, "900.00"),
        ledger_line("2020-02", "2020-02", "tekun", T3, "900.00"),
        ledger_line("2020-02", "2020-02", "dibao", "H1", "655.00", id_number=A1),
        ledger_line("2020-02", "2020-02", "dibao", "H1", "29.48", "price_subsidy", id_number=A1),
        ledger_line("2020-02", "2020-02", "dibao", "H2", "900.00", id_number=G1),
        ledger_line("2020-02", "2020-02", "tekun", B1, "900.00", region_code=DALIAN)])
    mt.expect("int_reference_held_due", [
        {"unit_key": T1, "line_type": "regular", "service_month": "2020-03", "due": D("952.00"),
         "provisional_from": "2020-02", "id_number": T1},
        {"unit_key": "H1", "line_type": "regular", "service_month": "2020-03", "due": D("655.00"),
         "provisional_from": "2020-02", "id_number": A1},
        {"unit_key": "H1", "line_type": "price_subsidy", "service_month": "2020-03", "due": D("29.48"),
         "provisional_from": "2020-02", "id_number": A1}])
    (t1,) = mt.rows("int_reference_held_due", ["inputs", "formula"], f"unit_key = '{T1}'")
    # the paid-forward line's inputs stay (reports read them), with where it comes from
    assert '"placement":"分散"' in t1["inputs"] and '"provisional_from":"2020-02"' in t1["inputs"]
    assert "按 2020-02 已核定的 952.00 元临时发放" in t1["formula"]


def _serving(unit, program, month="2020-03"):
    return {"unit_key": unit, "line_program": program, "service_month": month, "basis": "current",
            "line_type": "regular"}


def test_a_held_county_pays_only_the_programs_the_policy_carries(mt):
    """carry_forward_programs lists dibao alone: T1's tekun line is not paid forward."""
    mt.payroll("2020-03", held_counties=[C], carry_forward_programs="dibao")
    mt.given("int_units", [unit_row("tekun", T1, "2020-03", 1)])
    mt.given("int_service_months", [_serving(T1, "tekun")])
    mt.given("hist_ledger", [ledger_line("2020-02", "2020-02", "tekun", T1, "952.00")])
    mt.expect("int_reference_held_due", [])


@pytest.mark.parametrize("payroll,expected", [("2020-03", ["900.00"]), ("2020-04", [])])
def test_months_paid_forward_in_a_row_stop_at_the_policys_months(mt, payroll, expected):
    """T1 was paid 900.00 on its own data in January, then 950.00 forward (provisional) in February.
    March pays January's 900.00 again (a line paid forward is never the source); April is three months
    after January, more than carry_forward_max_months (2): nothing, and the finding says why."""
    mt.payroll(payroll, held_counties=[C])
    mt.given("int_units", [unit_row("tekun", T1, payroll, 1)])
    mt.given("int_service_months", [_serving(T1, "tekun", payroll)])
    mt.given("hist_ledger", [ledger_line("2020-01", "2020-01", "tekun", T1, "900.00"),
                             ledger_line("2020-02", "2020-02", "tekun", T1, "950.00", provisional_from="2020-01")])
    mt.expect("int_reference_held_due", [{"unit_key": T1, "due": D(a), "provisional_from": "2020-01"}
                                         for a in expected])


def test_a_held_countys_computed_lines_give_way_to_the_lines_paid_forward(mt):
    """Held county C: its computed due (from the broken tables) pays nothing; the line paid forward is
    paid, provisional, to the unit's account. Dalian's B1 is computed as ever."""
    _lines(mt, "2020-03", held_counties=[C],
           due=[owed(T1, "2020-03", "1500.00"), owed(B1, "2020-03", "952.00", region_code=DALIAN)],
           held=[owed(T1, "2020-03", "952.00", provisional_from="2020-02")],
           units=[on_roster("tekun", T1, "2020-03", 1), on_roster("tekun", B1, "2020-03", 2, region_code=DALIAN)])
    mt.expect("int_payment_lines", [
        line(T1, "2020-03", "952.00", payee=account(T1), provisional_from="2020-02"),
        line(B1, "2020-03", "952.00", payee=account(B1), provisional_from=None)])


def test_a_held_countys_unit_with_nothing_to_pay_forward_is_told_why(mt):
    """T1 is paid forward; T2 (new), the temporary case LS-1 and the household whose member died have
    nothing to pay forward: a finding each, saying why. T3 has ended (no service month now): the
    roster's own finding says so (not_entitled_this_month). The no_standard the broken tables give T2
    is not reported (nothing is judged from them)."""
    _findings(mt, "2020-03", held_counties=[C], carry_forward_max_months="2",
              due=[owed(T2, "2020-03", "0.00", has_standard=False)],
              held=[owed(T1, "2020-03", "952.00", provisional_from="2020-02")],
              serving=[_serving(T1, "tekun"), _serving(T2, "tekun"), _serving("H2", "dibao")],
              units=[unit_row("tekun", T1, "2020-03", 1), unit_row("tekun", T2, "2020-03", 2),
                     unit_row("temporary", B1, "2020-03", 3, approval_no="LS-1", enrolled_from=None),
                     unit_row("dibao", G1, "2020-03", 4, household_id="H2", relation="户主"),
                     unit_row("dibao", O2, "2020-03", 5, household_id="H2", relation="子女", death_month="2020-02"),
                     unit_row("tekun", T3, "2020-03", 6, enrolled_to="2020-02")])
    mt.expect("int_compute_findings", [finding("county_reference_held_unpaid", T2, "not_paid"),
                                       finding("county_reference_held_unpaid", B1, "not_paid"),
                                       finding("county_reference_held_unpaid", G1, "not_paid"),
                                       finding("not_entitled_this_month", T3, "not_paid")])
    why = dict(mt.con.execute("SELECT id_number, detail FROM int_compute_findings").fetchall())
    assert "死亡登记" in why[G1] and "最近 2 个月内没有可沿用的发放记录" in why[T2]


def test_with_held_counties_unset_the_engine_stops(mt):
    """held_counties is set by compute from check_reference: unset, no model guesses 'none held'."""
    mt.payroll("2020-03")
    mt.given("int_units", [unit_row("tekun", T1, "2020-03", 1)])
    mt.given("int_service_months", [_serving(T1, "tekun")])
    mt.given("hist_ledger", [ledger_line("2020-02", "2020-02", "tekun", T1, "952.00")])
    mt.con.execute("RESET VARIABLE held_counties")
    mt.fails("int_reference_held_due", "held_counties is not set")


# --- a supplementary run: a released month rerun on corrected rosters ---------------------------

def _month_line(service, person, amount, line_type="regular", **values):
    """A line of January's corrected computation (month_ledger) or of its released batch B1."""
    return ledger_line("2020-01", service, "tekun", person, amount, line_type, batch_id="B1",
                       line_id=f"J-{line_type}-{person}", formula="f", fund_central=D(amount),
                       fund_provincial=D("0"), fund_city=D("0"), fund_county=D("0")) | values


def test_a_supplement_adds_and_tops_up_only_what_no_payroll_paid(mt):
    """January released (B1), February published; the county corrects January. T1 unchanged: as
    released. T3's allowance corrected up by 100.00: a top-up in S1. T4, first listed in February
    (which paid his January as arrears): his January price subsidy goes out in S1, his January
    allowance does not (paid_by_later_payroll). T2's correction up by 100.00 finds February already
    paid January for him: no top-up, the same finding (not also supplementary_review)."""
    from tests.modeltest import SCHEMAS

    mt.payroll("2020-01", supplement_batch="S1")
    ledger_schema = SCHEMAS["released_lines"]
    released = [_month_line("2020-01", T1, "952.00"), _month_line("2020-01", T2, "852.00"),
                _month_line("2020-01", T3, "852.00")]
    mt.given("released_lines", released)
    mt.given("month_ledger", [
        _month_line("2020-01", T1, "952.00"), _month_line("2020-01", T2, "952.00"),
        _month_line("2020-01", T3, "952.00"), _month_line("2020-01", T4, "952.00"),
        _month_line("2020-01", T4, "29.48", "price_subsidy")], schema=ledger_schema)
    mt.given("later_paid", [
        {"service_month": "2020-01", "program": "tekun", "id_number": T4, "payroll_month": "2020-02",
         "payroll_months": ["2020-02"], "amount": D("952.00")},
        {"service_month": "2020-01", "program": "tekun", "id_number": T2, "payroll_month": "2020-02",
         "payroll_months": ["2020-02", "2020-03"], "amount": D("100.00")}])
    mt.expect("payment_ledger_supplementary", [
        {"id_number": T1, "line_type": "regular", "amount": D("952.00"), "batch_id": "B1"},
        {"id_number": T2, "line_type": "regular", "amount": D("852.00"), "batch_id": "B1"},
        {"id_number": T3, "line_type": "regular", "amount": D("852.00"), "batch_id": "B1"},
        {"id_number": T3, "line_type": "arrears", "amount": D("100.00"), "batch_id": "S1"},
        {"id_number": T4, "line_type": "price_subsidy", "amount": D("29.48"), "batch_id": "S1"}])
    mt.con.execute("CREATE TABLE supplementary_ledger AS SELECT * FROM payment_ledger_supplementary")
    mt.expect("int_supplementary_findings", [
        {"finding_type": "paid_by_later_payroll", "id_number": T2,
         "detail": "更正后 2020-01 regular 应发 952.00 元，本月已发 852.00 元；2020-02 月已为 2020-01 发放 100.00 元："
                   "补充发放不再支付，如有差额请人工核定", "evidence": '{"paid_by":["2020-02","2020-03"]}'},
        {"finding_type": "paid_by_later_payroll", "id_number": T4,
         "detail": "更正后 2020-01 regular 应发 952.00 元，本月已发 0.00 元；2020-02 月已为 2020-01 发放 952.00 元："
                   "补充发放不再支付，如有差额请人工核定", "evidence": '{"paid_by":["2020-02"]}'}])


def test_a_supplement_reports_what_it_cannot_recover_or_settle(mt):
    """Without later payrolls: T1's allowance corrected down is reported, not recovered
    (overpaid_after_release); T2's correction up, where January already carries an arrears line
    for the month (a standard raise), waits for a person (supplementary_review); T3 is topped up."""
    from tests.modeltest import SCHEMAS

    mt.payroll("2020-01", supplement_batch="S1")
    mt.given("released_lines", [_month_line("2020-01", T1, "952.00"), _month_line("2020-01", T2, "852.00"),
                                _month_line("2020-01", T2, "50.00", "arrears", arrears_cause="standard_raise"),
                                _month_line("2020-01", T3, "852.00")])
    mt.given("month_ledger", [_month_line("2020-01", T1, "852.00"), _month_line("2020-01", T2, "952.00"),
                              _month_line("2020-01", T2, "50.00", "arrears", arrears_cause="standard_raise"),
                              _month_line("2020-01", T3, "952.00")], schema=SCHEMAS["released_lines"])
    mt.empty("later_paid")
    mt.expect("payment_ledger_supplementary", [{"id_number": T3, "line_type": "arrears", "amount": D("100.00")}],
              where="batch_id = 'S1'")
    mt.con.execute("CREATE TABLE supplementary_ledger AS SELECT * FROM payment_ledger_supplementary")
    mt.expect("int_supplementary_findings", [{"finding_type": "overpaid_after_release", "id_number": T1},
                                             {"finding_type": "supplementary_review", "id_number": T2}])
