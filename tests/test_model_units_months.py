"""Given/expect tests of the engine's first models: who is a unit this month (int_units), what
earlier payrolls did (int_paid_history), which service months this payroll settles
(int_service_months) and the roster rows each is computed from (int_basis_roster).

Contract section 3: a person is not paid for service months after the month of death; a raise
decided in April but effective from January pays the difference for January to March as arrears,
for the months each person was paid; orphans are paid through the month of the 18th birthday.
Reference: the shipped figures for 和平区 (tests/modeltest.py STANDARDS): the 688.00 dibao standard
is effective 2020-01 and first paid in the 2020-04 payroll.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.modeltest import STANDARDS, connection_fixture, final_row, ledger_line, mt_fixture, person_id, unit_row  # noqa: F401  (fixtures)

pytestmark = pytest.mark.unit

T1, T2, O1, HEAD, SPOUSE = person_id(21, "19400101"), person_id(22, "19410101"), person_id(31, "20020215"), \
    person_id(1, "19700101"), person_id(2, "19720202")


# --- int_units --------------------------------------------------------------------------------

def test_units_are_households_people_and_cases(mt):
    """A dibao household is one unit (its household_id) on every member's row; a tekun person, each
    disability subsidy and a temporary-assistance case (its approval number) are units of their own."""
    mt.payroll("2020-01")
    mt.given("cur_roster", [
        final_row("dibao", HEAD, 1, household_id="H1", relation="户主"),
        final_row("dibao", SPOUSE, 2, household_id="H1", relation="配偶"),
        final_row("tekun", T1, 1),
        final_row("disability", SPOUSE, 1, subsidy_type="护理补贴"),
        final_row("temporary", T2, 1, approval_no="LS-2020-001"),
    ])
    mt.expect("int_units", [
        {"program": "dibao", "id_number": HEAD, "unit_key": "H1", "line_program": "dibao", "basis_month": "2020-01"},
        {"program": "dibao", "id_number": SPOUSE, "unit_key": "H1", "line_program": "dibao", "basis_month": "2020-01"},
        {"program": "tekun", "id_number": T1, "unit_key": T1, "line_program": "tekun", "basis_month": "2020-01"},
        {"program": "disability", "id_number": SPOUSE, "unit_key": SPOUSE, "line_program": "disability_nursing",
         "basis_month": "2020-01"},
        {"program": "temporary", "id_number": T2, "unit_key": "LS-2020-001", "line_program": "temporary",
         "basis_month": "2020-01"},
    ])


def test_only_accepted_rows_paid_at_all_are_units_and_the_dead_stay_units(mt):
    """Quarantined and duplicate rows, and rows integrity decided not to pay, are no units; a person
    the registry reports dead stays one (owed the months up to the death)."""
    mt.payroll("2020-01")
    mt.given("cur_roster", [
        final_row("tekun", person_id(1), 1),
        final_row("tekun", person_id(2), 2, disposition="quarantined"),
        final_row("tekun", person_id(3), 3, disposition="duplicate"),
        final_row("tekun", person_id(4), 4, not_paid_reason="exclusive_programs"),
        final_row("tekun", person_id(5), 5, not_paid_reason="deceased_listed", death_month="2019-12"),
    ])
    mt.expect("int_units", [{"source_row": 1}, {"source_row": 5}])


# --- int_paid_history -------------------------------------------------------------------------

def test_paid_history_sums_program_lines_per_service_month(mt):
    """Regular and arrears lines of earlier payrolls add up per unit and service month; price
    subsidies and reissues are settled on their own; a payment the bank returned as failed still
    counts as paid (it is owed through a reissue, never again through arrears)."""
    mt.payroll("2020-05")
    mt.given("hist_ledger", [
        ledger_line("2020-01", "2020-01", "dibao", "H1", "1365.00", id_number=HEAD),
        ledger_line("2020-04", "2020-01", "dibao", "H1", "99.00", "arrears", id_number=HEAD),  # (688 − 655) × 3
        ledger_line("2020-01", "2020-01", "dibao", "H1", "29.48", "price_subsidy", id_number=HEAD),
        ledger_line("2020-02", "2020-02", "tekun", T1, "952.00", payment_state="failed"),
        ledger_line("2020-03", "2020-02", "tekun", T1, "952.00", "reissue"),
        ledger_line("2020-03", "2020-03", "tekun", T1, "952.00", status="held"),
        ledger_line("2020-04", "2020-03", "tekun", T1, "952.00", status="held"),
    ])
    mt.expect("int_paid_history", [
        {"unit_key": "H1", "service_month": "2020-01", "paid_amount": D("1464.00"), "was_paid": True,
         "was_held": False, "first_paid_payroll": "2020-01", "first_held_payroll": None},
        {"unit_key": T1, "service_month": "2020-02", "paid_amount": D("952.00"), "was_paid": True,
         "was_held": False, "first_paid_payroll": "2020-02", "first_held_payroll": None},
        {"unit_key": T1, "service_month": "2020-03", "paid_amount": D("0.00"), "was_paid": False,
         "was_held": True, "first_paid_payroll": None, "first_held_payroll": "2020-03"},
    ])


# --- int_service_months -----------------------------------------------------------------------

def _settle(mt, payroll, units, start, paid=(), decided=(), withdrawn=(), hist_units=(), deaths=()):
    """The inputs of int_service_months: this month's units, the ledger's history (paid: (unit,
    service month, 'paid' or 'held'), by the payroll of that month), the months decided before."""
    mt.payroll(payroll, history_start=start)
    mt.reference(standards=STANDARDS)
    mt.given("int_units", units)
    mt.given("int_paid_history", [
        {"unit_key": u, "line_program": p, "service_month": s, "paid_amount": D("1.00") if how == "paid" else D("0"),
         "was_paid": how == "paid", "was_held": how == "held",
         "first_paid_payroll": s if how == "paid" else None, "first_held_payroll": s if how == "held" else None}
        for u, p, s, how in paid])
    mt.given("hist_decided", [{"unit_key": u, "line_program": p, "basis_month": s} for u, p, s in decided])
    mt.given("hist_withdrawn", [{"unit_key": u, "line_program": p, "service_month": s} for u, p, s in withdrawn])
    mt.given("hist_units", list(hist_units))
    mt.given("known_deaths", [{"id_number": i, "death_month": m} for i, m in deaths])


def month(unit, service, cause, basis="current", history=None):
    """An expected row of int_service_months."""
    return {"unit_key": unit, "service_month": service, "line_type": "regular" if cause == "regular" else "arrears",
            "arrears_cause": cause, "basis": basis, "history_month": history}


def test_a_unit_on_the_roster_is_settled_for_the_payroll_month(mt):
    _settle(mt, "2020-01", [unit_row("tekun", T1, "2020-01")], start="2020-01")
    mt.expect("int_service_months", [month(T1, "2020-01", "regular")])


def test_late_enrolment_pays_the_months_not_yet_decided_from_enrolled_from(mt):
    """Golden HH6: on the roster first in April, entitled from February: February and March are
    owed as arrears, computed from this month's roster (basis current), plus April."""
    _settle(mt, "2020-04", [unit_row("dibao", HEAD, "2020-04", household_id="H6", relation="户主",
                                     enrolled_from="2020-02")], start="2020-01")
    mt.expect("int_service_months", [month("H6", "2020-02", "late_enrolment"), month("H6", "2020-03", "late_enrolment"),
                                     month("H6", "2020-04", "regular")])


def test_no_arrears_reach_before_the_first_month_doudi_ran(mt):
    """Enrolled since 2019-06, but the history starts in 2020-01: the months of 2019 were the old
    system's; January was decided and paid, and is not paid again."""
    _settle(mt, "2020-02", [unit_row("tekun", T1, "2020-02")], start="2020-01",
            paid=[(T1, "tekun", "2020-01", "paid")], decided=[(T1, "tekun", "2020-01")])
    mt.expect("int_service_months", [month(T1, "2020-02", "regular")])


def test_a_month_decided_but_not_paid_is_not_paid_later(mt):
    """Accepted on January's roster and deliberately not paid (not eligible, say): no arrears."""
    _settle(mt, "2020-02", [unit_row("tekun", T1, "2020-02")], start="2020-01", decided=[(T1, "tekun", "2020-01")])
    mt.expect("int_service_months", [month(T1, "2020-02", "regular")])


def test_a_raise_pays_back_pay_for_the_months_each_unit_was_paid(mt):
    """Golden: HH1 paid January to March at 655, HH5 (enrolled in March) paid March only. The
    688.00 version (effective 2020-01, first paid 2020-04) reaches exactly those months, each
    recomputed from its own month's roster (basis history)."""
    _settle(mt, "2020-04", [
        unit_row("dibao", HEAD, "2020-04", household_id="H1", relation="户主"),
        unit_row("dibao", SPOUSE, "2020-04", household_id="H5", relation="户主", enrolled_from="2020-03"),
    ], start="2020-01",
        paid=[("H1", "dibao", m, "paid") for m in ("2020-01", "2020-02", "2020-03")] + [("H5", "dibao", "2020-03", "paid")],
        decided=[("H1", "dibao", m) for m in ("2020-01", "2020-02", "2020-03")] + [("H5", "dibao", "2020-03")])
    mt.expect("int_service_months", [
        month("H1", "2020-01", "raise_back_pay", "history", "2020-01"),
        month("H1", "2020-02", "raise_back_pay", "history", "2020-02"),
        month("H1", "2020-03", "raise_back_pay", "history", "2020-03"),
        month("H1", "2020-04", "regular"),
        month("H5", "2020-03", "raise_back_pay", "history", "2020-03"),
        month("H5", "2020-04", "regular"),
    ])


def test_no_back_pay_before_the_payroll_that_first_pays_the_raise(mt):
    """Golden: January to March payrolls pay the old standard; nothing is topped up in March."""
    _settle(mt, "2020-03", [unit_row("dibao", HEAD, "2020-03", household_id="H1", relation="户主")], start="2020-01",
            paid=[("H1", "dibao", m, "paid") for m in ("2020-01", "2020-02")],
            decided=[("H1", "dibao", m) for m in ("2020-01", "2020-02")])
    mt.expect("int_service_months", [month("H1", "2020-03", "regular")])


def test_a_held_month_is_released_from_its_own_roster(mt):
    _settle(mt, "2020-03", [unit_row("tekun", T1, "2020-03")], start="2020-01",
            paid=[(T1, "tekun", "2020-01", "paid"), (T1, "tekun", "2020-02", "held")],
            decided=[(T1, "tekun", "2020-01"), (T1, "tekun", "2020-02")])
    mt.expect("int_service_months", [month(T1, "2020-02", "held_released", "history", "2020-02"),
                                     month(T1, "2020-03", "regular")])


def test_entitlement_ends_with_the_month_of_enrolled_to(mt):
    _settle(mt, "2020-03", [unit_row("tekun", T1, "2020-03", enrolled_to="2020-03"),
                            unit_row("tekun", T2, "2020-03", 2, enrolled_to="2020-02")], start="2020-01",
            paid=[(u, "tekun", m, "paid") for u in (T1, T2) for m in ("2020-01", "2020-02")],
            decided=[(u, "tekun", m) for u in (T1, T2) for m in ("2020-01", "2020-02")])
    mt.expect("int_service_months", [month(T1, "2020-03", "regular")])


def test_an_orphan_is_paid_through_the_month_of_the_18th_birthday(mt):
    """Golden O4, born 2002-02-15: February 2020 (the birthday month) is paid, March is not."""
    o = unit_row("orphan", O1, "-", age_out_month="2020-02", placement="社会散居")
    _settle(mt, "2020-02", [o | {"basis_month": "2020-02"}], start="2020-02")
    mt.expect("int_service_months", [month(O1, "2020-02", "regular")])
    _settle(mt, "2020-03", [o | {"basis_month": "2020-03"}], start="2020-02",
            paid=[(O1, "orphan", "2020-02", "paid")], decided=[(O1, "orphan", "2020-02")])
    mt.expect("int_service_months", [])


def test_a_dead_person_is_owed_the_months_up_to_the_death_and_none_after(mt):
    """Enrolled in January, first delivered in March, died in February: January and February are
    owed (the month of death is paid), March is not (D12)."""
    _settle(mt, "2020-03", [unit_row("tekun", T1, "2020-03", enrolled_from="2020-01", death_month="2020-02",
                                     not_paid_reason="deceased_listed")], start="2020-01")
    mt.expect("int_service_months", [month(T1, "2020-01", "late_enrolment"), month(T1, "2020-02", "late_enrolment")])


def test_a_dibao_household_outlives_its_head(mt):
    """The head died in January: the household is still settled in February (integrity holds it
    for review, household_head_deceased); it is not cut like a person's own entitlement."""
    _settle(mt, "2020-02", [unit_row("dibao", HEAD, "2020-02", household_id="H1", relation="户主",
                                     death_month="2020-01", hold_reason="household_head_deceased")],
            start="2020-02")
    mt.expect("int_service_months", [month("H1", "2020-02", "regular")])


def test_no_raise_tops_up_a_dibao_month_paid_after_the_heads_death(mt):
    """D14: the head died in January; February and March were paid (they are receivables now), so
    the raise tops up January only."""
    _settle(mt, "2020-04", [unit_row("dibao", HEAD, "2020-04", household_id="H1", relation="户主",
                                     death_month="2020-01")], start="2020-01",
            paid=[("H1", "dibao", m, "paid") for m in ("2020-01", "2020-02", "2020-03")],
            decided=[("H1", "dibao", m) for m in ("2020-01", "2020-02", "2020-03")])
    mt.expect("int_service_months", [month("H1", "2020-01", "raise_back_pay", "history", "2020-01"),
                                     month("H1", "2020-04", "regular")])


def test_raise_back_pay_reaches_units_that_left_up_to_a_death(mt):
    """D1: T1 and T2 were paid January to March and are on no roster in April. Both get the
    raise's back pay for the months they were paid, from those months' rosters; T2 died in
    February, so March (a receivable) gets none."""
    _settle(mt, "2020-04", [], start="2020-01",
            paid=[(u, "tekun", m, "paid") for u in (T1, T2) for m in ("2020-01", "2020-02", "2020-03")],
            decided=[(u, "tekun", m) for u in (T1, T2) for m in ("2020-01", "2020-02", "2020-03")],
            deaths=[(T2, "2020-02")])
    mt.expect("int_service_months", [
        month(u, m, "raise_back_pay", "history", m) for u in (T1, T2) for m in ("2020-01", "2020-02", "2020-03")
        if not (u == T2 and m == "2020-03")])


def test_a_month_withheld_for_a_death_since_withdrawn_is_owed_from_its_own_roster(mt):
    """February was not paid because the registry had T1 dead; the entry was withdrawn as an error.
    On the roster now (T1) or not (T2, from the February roster row): February is owed (D13, D15)."""
    _settle(mt, "2020-03", [unit_row("tekun", T1, "2020-03")], start="2020-01",
            paid=[(u, "tekun", "2020-01", "paid") for u in (T1, T2)],
            decided=[(u, "tekun", "2020-01") for u in (T1, T2)],
            withdrawn=[(T1, "tekun", "2020-02"), (T2, "tekun", "2020-02")],
            hist_units=[unit_row("tekun", T2, "2020-02")])
    mt.expect("int_service_months", [month(T1, "2020-02", "death_withdrawn", "history", "2020-02"),
                                     month(T1, "2020-03", "regular"),
                                     month(T2, "2020-02", "death_withdrawn", "history", "2020-02")])


# --- int_basis_roster -------------------------------------------------------------------------

def test_each_service_month_is_computed_from_the_roster_its_basis_names(mt):
    """April (current) from April's roster, January (history) from January's: the household had
    two members in January and three in April."""
    mt.payroll("2020-04")
    april = [unit_row("dibao", HEAD, "2020-04", 1, household_id="H1", relation="户主", household_size=3),
             unit_row("dibao", SPOUSE, "2020-04", 2, household_id="H1", relation="配偶", household_size=3),
             unit_row("dibao", T1, "2020-04", 3, household_id="H1", relation="子女", household_size=3)]
    january = [unit_row("dibao", HEAD, "2020-01", 1, household_id="H1", relation="户主", household_size=2),
               unit_row("dibao", SPOUSE, "2020-01", 2, household_id="H1", relation="配偶", household_size=2)]
    february = [r | {"basis_month": "2020-02"} for r in january]
    mt.given("int_units", april)
    mt.given("hist_units", january + february)
    mt.given("int_service_months", [month("H1", "2020-01", "raise_back_pay", "history", "2020-01") | {"line_program": "dibao"},
                                    month("H1", "2020-04", "regular") | {"line_program": "dibao"}])
    mt.expect("int_basis_roster", [
        {"service_month": s, "line_type": t, "basis": b, "basis_month": bm, "id_number": i, "household_size": n}
        for s, t, b, bm, n, ids in [("2020-01", "arrears", "history", "2020-01", 2, (HEAD, SPOUSE)),
                                    ("2020-04", "regular", "current", "2020-04", 3, (HEAD, SPOUSE, T1))]
        for i in ids])
