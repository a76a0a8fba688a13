"""The assurance holes of issue 16, each on a small hand-made inbox that follows the contract.

Figures (shipped reference, 和平区 210102, see tests/test_engine_golden.py): urban dibao standard
655.00 until the 2020-04 payroll (688.00 effective 2020-01, first paid 2020-04); tekun basic 852.00,
care 半护理 300.00; the price subsidy of payroll M uses the CPI of M−1.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.helpers import query, roster_path, run, write_csv
from tests.test_engine_golden import DIBAO, TEKUN, C, common, person

DEATHS = ["id_number", "name", "death_date", "source"]


def _tekun(p):
    return common(p) + ["分散供养", "半护理", ""]


def _ledger(wh, month, pid):
    return query(wh, "SELECT service_month, program, line_type, status, amount FROM payment_ledger "
                     "WHERE payroll_month = ? AND id_number = ? ORDER BY ALL", [month, pid])


def test_a_death_reported_once_stops_payment_in_every_later_month(tmp_path):
    """Case 1: January's extract reports a December death; the county keeps the person on its roster
    in February to April and the registry does not repeat itself. Nothing is paid after January's
    payroll... and January itself pays nothing for January (death month 2019-12 < 2020-01)."""
    dead, alive = person(51, "19400101"), person(52, "19410101")
    inbox = tmp_path / "inbox"
    for m in ("2020-01", "2020-02", "2020-03", "2020-04"):
        write_csv(roster_path(inbox, m, "tekun", f"{C}_tekun_{m.replace('-', '')}.csv"), TEKUN,
                  [_tekun(dead), _tekun(alive)])
    write_csv(inbox / "2020-01" / "registry" / "deaths.csv", DEATHS,
              [[dead["id"], dead["name"], "2019-12-20", "公安"]])
    for m in ("2020-01", "2020-02", "2020-03", "2020-04"):
        run(tmp_path, m)
        wh = tmp_path / "warehouse.duckdb"
        assert _ledger(wh, m, dead["id"]) == [], m
        assert [r[2] for r in _ledger(wh, m, alive["id"])].count("regular") == 1, m
        finding = query(wh, "SELECT action FROM finding WHERE payroll_month = ? AND id_number = ? "
                            "AND finding_type = 'deceased_listed'", [m, dead["id"]])
        assert finding == [("not_paid",)], m
    # what the registry reported is kept, with its month
    assert query(wh, "SELECT payroll_month, registry, id_number FROM registry_entry") == [
        ("2020-01", "deaths", dead["id"])]


def test_a_death_dated_after_its_report_is_a_finding_not_applied(tmp_path):
    p = person(53, "19400101")
    inbox = tmp_path / "inbox"
    write_csv(roster_path(inbox, "2020-02", "tekun", f"{C}_tekun_202002.csv"), TEKUN, [_tekun(p)])
    write_csv(inbox / "2020-02" / "registry" / "deaths.csv", DEATHS, [[p["id"], p["name"], "2020-05-01", "公安"]])
    run(tmp_path, "2020-02")
    wh = tmp_path / "warehouse.duckdb"
    assert [(r[2], r[4]) for r in _ledger(wh, "2020-02", p["id"]) if r[2] == "regular"] == [
        ("regular", D("1152.00"))]
    assert query(wh, "SELECT severity FROM finding WHERE finding_type = 'death_date_invalid' AND id_number = ?",
                 [p["id"]]) == [("error",)]


def _dibao_month(inbox, month, rows):
    write_csv(roster_path(inbox, month, "dibao", f"{C}_dibao_{month.replace('-', '')}.csv"), DIBAO, rows)


def test_an_ineligible_dibao_household_gets_no_price_subsidy(tmp_path):
    """Case 3: 655 × 1 − 655 = 0: no dibao line, so no dibao household, so no price subsidy."""
    poor, not_poor = person(54, "19700101"), person(55, "19710101")
    _dibao_month(tmp_path / "inbox", "2020-01", [common(poor) + ["H54", "户主", 1, "0", ""],
                                                 common(not_poor) + ["H55", "户主", 1, "655", ""]])
    run(tmp_path, "2020-01")
    wh = tmp_path / "warehouse.duckdb"
    assert _ledger(wh, "2020-01", not_poor["id"]) == []
    # 655 × 4.5% = 29.475 → 29.48 for the eligible one
    assert ("2020-01", "dibao", "price_subsidy", "payable", D("29.48")) in _ledger(wh, "2020-01", poor["id"])
    assert query(wh, "SELECT count(*) FROM finding WHERE finding_type = 'dibao_not_eligible' AND id_number = ?",
                 [not_poor["id"]]) == [(1,)]


def test_a_household_whose_head_died_is_held_every_month_and_a_clearance_pays_what_was_held(tmp_path):
    """Case 4: the head's death (2019-12) comes in January's extract. The household (head and spouse,
    no income) is computed every month and held: 655 × 2 = 1310.00, and the spouse's price subsidy
    (655 × 4.5% = 29.48 in January; 5.4% = 35.37 in February) is held with it. A clearance recorded
    for the March payroll pays March and the held January and February, exactly as held."""
    from pipelines.clearance import record_clearances

    head, spouse = person(56, "19500101"), person(57, "19520101", False)
    inbox = tmp_path / "inbox"
    for m in ("2020-01", "2020-02", "2020-03"):
        _dibao_month(inbox, m, [common(head) + ["H56", "户主", 2, "0", ""],
                                common(spouse, account=False) + ["H56", "配偶", 2, "0", ""]])
    write_csv(inbox / "2020-01" / "registry" / "deaths.csv", DEATHS, [[head["id"], head["name"], "2019-12-05", "公安"]])
    wh = tmp_path / "warehouse.duckdb"
    for m in ("2020-01", "2020-02"):
        run(tmp_path, m)
        assert [r for r in _ledger(wh, m, head["id"]) if r[2] == "regular"] == [
            (m, "dibao", "regular", "held", D("1310.00"))], m
        # (February records January's held subsidy again, as held: held lines are owed until cleared)
        assert [r[3] for r in _ledger(wh, m, spouse["id"]) if r[2] == "price_subsidy" and r[0] == m] == ["held"], m
    record_clearances(wh, "2020-03", [{"program": "dibao", "id_number": head["id"],
                                       "hold_reason": "household_head_deceased", "note": "配偶继续享受"}], "王科长")
    run(tmp_path, "2020-03")
    march = _ledger(wh, "2020-03", head["id"])
    assert ("2020-03", "dibao", "regular", "payable", D("1310.00")) in march
    assert ("2020-01", "dibao", "arrears", "payable", D("1310.00")) in march
    assert ("2020-02", "dibao", "arrears", "payable", D("1310.00")) in march
    paid_spouse = [r for r in _ledger(wh, "2020-03", spouse["id"]) if r[3] == "payable"]
    # March's own price subsidy (CPI 2020-02 5.2%, doubled: 655 × 5.2% × 2 = 68.12) and the held ones
    assert ("2020-01", "dibao", "price_subsidy", "payable", D("29.48")) in paid_spouse
    assert ("2020-02", "dibao", "price_subsidy", "payable", D("35.37")) in paid_spouse


def test_an_account_the_bank_said_is_closed_gets_nothing_more_until_it_changes(tmp_path):
    """Case 6: January's payment fails with 账户已销户. February's roster still carries the account:
    February is held (account_closed), with a finding. March brings a new card: March is paid, and
    February's held month with it (852 + 300 = 1152.00 each); January's failed transfer is reissued."""
    from pipelines.bank_returns import load_bank_returns
    from pipelines.payout import release
    from tests.helpers import context

    p = person(58, "19400101")
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    for m in ("2020-01", "2020-02"):
        write_csv(roster_path(inbox, m, "tekun", f"{C}_tekun_{m.replace('-', '')}.csv"), TEKUN, [_tekun(p)])
    run(tmp_path, "2020-01")
    release(context(tmp_path, "2020-01"), "财政局")  # a bank answers only what it was sent
    ref = query(wh, "SELECT DISTINCT payment_ref FROM payment_ledger WHERE id_number = ?", [p["id"]])[0][0]
    write_csv(inbox / "2020-02" / "bank_returns" / "ICBC_202001.csv", ["payment_ref", "status", "reason"],
              [[ref, "失败", "账户已销户"]])
    load_bank_returns(context(tmp_path, "2020-02"))
    run(tmp_path, "2020-02")
    feb = _ledger(wh, "2020-02", p["id"])
    assert ("2020-02", "tekun", "regular", "held", D("1152.00")) in feb
    assert all(r[3] == "held" for r in feb), feb
    assert query(wh, "SELECT count(*) FROM finding WHERE payroll_month = '2020-02' AND finding_type = 'account_closed' "
                     "AND id_number = ?", [p["id"]])[0][0] >= 1
    moved = common(p)
    moved[6] = "6222777766665555"
    write_csv(roster_path(inbox, "2020-03", "tekun", f"{C}_tekun_202003.csv"), TEKUN,
              [moved + ["分散供养", "半护理", ""]])
    run(tmp_path, "2020-03")
    march = {(r[0], r[2]): (r[3], r[4]) for r in _ledger(wh, "2020-03", p["id"])}
    assert march[("2020-03", "regular")] == ("payable", D("1152.00"))
    assert march[("2020-02", "arrears")] == ("payable", D("1152.00"))
    # the failed transfer carried January's 1152.00 and its price subsidy 655 × 4.5% = 29.48
    assert march[("2020-01", "reissue")] == ("payable", D("1181.48"))
    # February's held price subsidy (655 × 5.4% = 35.37) goes with the held month
    assert march[("2020-02", "price_subsidy")] == ("payable", D("35.37"))
    assert query(wh, "SELECT DISTINCT payee_account FROM payment_ledger WHERE payroll_month = '2020-03' "
                     "AND id_number = ? AND status = 'payable'", [p["id"]]) == [("6222777766665555",)]


def test_a_death_learnt_late_makes_the_paid_months_receivables_and_a_withdrawal_pays_again(tmp_path):
    """A tekun person (852 + 300 = 1152.00 a month, price subsidy 29.48 in January) is paid in
    January and February; March's extract reports a death on 2019-12-31. March pays nothing and
    recognises January's and February's payable lines as receivables (应追缴), once; April does not
    recognise them again. A refund is recorded against one. The death was an error: withdrawn from
    May, May pays May, and March and April (withheld because of it) as arrears, at the standards the
    May payroll applies."""
    from pipelines.receivables import record_recovery, record_withdrawal

    p = person(59, "19400101")
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    for m in ("2020-01", "2020-02", "2020-03", "2020-04", "2020-05"):
        write_csv(roster_path(inbox, m, "tekun", f"{C}_tekun_{m.replace('-', '')}.csv"), TEKUN, [_tekun(p)])
    write_csv(inbox / "2020-03" / "registry" / "deaths.csv", DEATHS, [[p["id"], p["name"], "2019-12-31", "民政"]])
    for m in ("2020-01", "2020-02", "2020-03", "2020-04"):
        run(tmp_path, m)
    receivables = query(wh, "SELECT payroll_month, paid_payroll, service_month, line_type, amount FROM receivable "
                            "ORDER BY ALL")
    jan_price = query(wh, "SELECT amount FROM payment_ledger WHERE payroll_month = '2020-01' AND id_number = ? "
                          "AND line_type = 'price_subsidy'", [p["id"]])[0][0]
    feb_price = query(wh, "SELECT amount FROM payment_ledger WHERE payroll_month = '2020-02' AND id_number = ? "
                          "AND line_type = 'price_subsidy'", [p["id"]])[0][0]
    assert jan_price == D("29.48")
    assert receivables == [("2020-03", "2020-01", "2020-01", "price_subsidy", D("29.48")),
                           ("2020-03", "2020-01", "2020-01", "regular", D("1152.00")),
                           ("2020-03", "2020-02", "2020-02", "price_subsidy", feb_price),
                           ("2020-03", "2020-02", "2020-02", "regular", D("1152.00"))]
    assert _ledger(wh, "2020-03", p["id"]) == [] and _ledger(wh, "2020-04", p["id"]) == []
    assert query(wh, "SELECT count(*) FROM finding WHERE finding_type = 'receivable_recognised'") == [(4,)]
    # the auditors' exception list shows them by county: 1152.00 + 29.48 + 1152.00 + 35.37 = 2368.85
    page = (tmp_path / "out" / "2020-04" / "reports" / "exceptions.html").read_text(encoding="utf-8")
    assert "待追缴合计 2368.85 元" in page and "和平区" in page and p["id"] not in page
    rid = query(wh, "SELECT receivable_id FROM receivable WHERE service_month = '2020-01' AND line_type = 'regular'")[0][0]
    record_recovery(wh, rid, "refund", "1152.00", "财务科", "家属退回 凭证 2020-017")
    assert query(wh, "SELECT status, outstanding FROM receivable_status WHERE receivable_id = ?", [rid]) == [
        ("settled", D("0.00"))]

    record_withdrawal(wh, "2020-05", "deaths", p["id"], "2020-03", "王科长", "公安误报，更正单 2020-5-3")
    run(tmp_path, "2020-05")
    may = {(r[0], r[2]): (r[3], r[4]) for r in _ledger(wh, "2020-05", p["id"])}
    # from the 2020-04 payroll on, tekun basic is 895.00 (effective 2020-01): 895 + 300 = 1195.00
    assert may[("2020-05", "regular")] == ("payable", D("1195.00"))
    assert may[("2020-03", "arrears")] == ("payable", D("1195.00"))
    assert may[("2020-04", "arrears")] == ("payable", D("1195.00"))
    assert query(wh, "SELECT DISTINCT status FROM receivable_status") == [("withdrawn",)]


def test_raise_back_pay_reaches_people_who_left_or_died_before_the_raise(tmp_path):
    """Case 5: the 2020 raise (tekun basic 852 → 895 from 2020-01, first paid in the 2020-04 payroll)
    owes 43.00 for every month a person was paid, on the roster or not. L leaves after March (not on
    April's roster); D dies in March (reported in April's extract: March, the death month, is owed;
    nothing after); E dies in January, reported in April (February and March were paid after the death:
    receivables, and no back pay for them). April pays L and D 43.00 for January to March, to their
    last account; E 43.00 for January only."""
    leaver, dies, early = person(60, "19400101"), person(61, "19410101"), person(62, "19420101")
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    for m in ("2020-01", "2020-02", "2020-03"):
        write_csv(roster_path(inbox, m, "tekun", f"{C}_tekun_{m.replace('-', '')}.csv"), TEKUN,
                  [_tekun(leaver), _tekun(dies), _tekun(early)])
    write_csv(roster_path(inbox, "2020-04", "tekun", f"{C}_tekun_202004.csv"), TEKUN, [_tekun(dies), _tekun(early)])
    write_csv(inbox / "2020-04" / "registry" / "deaths.csv", DEATHS,
              [[dies["id"], dies["name"], "2020-03-15", "民政"], [early["id"], early["name"], "2020-01-10", "民政"]])
    for m in ("2020-01", "2020-02", "2020-03", "2020-04"):
        run(tmp_path, m)

    def back_pay(p):
        return query(wh, "SELECT service_month, amount, status, arrears_cause, payee_account FROM payment_ledger "
                         "WHERE payroll_month = '2020-04' AND id_number = ? AND line_type = 'arrears' ORDER BY 1",
                     [p["id"]])

    for p in (leaver, dies):
        assert back_pay(p) == [(m, D("43.00"), "payable", "raise_back_pay", common(p)[6])
                               for m in ("2020-01", "2020-02", "2020-03")], p
    assert back_pay(early) == [("2020-01", D("43.00"), "payable", "raise_back_pay", common(early)[6])]
    assert query(wh, "SELECT service_month, line_type FROM receivable WHERE id_number = ? ORDER BY ALL",
                 [early["id"]]) == [("2020-02", "price_subsidy"), ("2020-02", "regular"),
                                    ("2020-03", "price_subsidy"), ("2020-03", "regular")]
    # and nothing regular for April for anyone of them
    assert query(wh, "SELECT count(*) FROM payment_ledger WHERE payroll_month = '2020-04' AND line_type = 'regular' "
                     "AND id_number IN (?, ?, ?)", [leaver["id"], dies["id"], early["id"]]) == [(0,)]


def test_an_orphans_money_is_not_paid_to_a_guardian_the_registry_reports_dead(tmp_path):
    """社会散居 1273.00 a month, to the guardian's account. The guardian's death (2019-10) comes in
    January's extract: January and February are held (guardian_deceased, with a finding); March's
    roster names a new guardian with her own account: March and the two held months are paid to her."""
    from tests.test_engine_golden import ORPHAN

    child, guardian, aunt = person(63, "20120101"), person(64, "19600101"), person(65, "19700101", False)

    def row(g):
        return [C, child["name"], child["id"], child["sex"], "城市", "中国工商银行", "6222" + g["id"][6:14] + "0001",
                g["name"], "2019-06", "", "", "社会散居", g["name"], g["id"]]

    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    for m, g in (("2020-01", guardian), ("2020-02", guardian), ("2020-03", aunt)):
        write_csv(roster_path(inbox, m, "orphan", f"{C}_orphan_{m.replace('-', '')}.csv"), ORPHAN, [row(g)])
    write_csv(inbox / "2020-01" / "registry" / "deaths.csv", DEATHS,
              [[guardian["id"], guardian["name"], "2019-10-02", "公安"]])
    for m in ("2020-01", "2020-02"):
        run(tmp_path, m)
        assert [(r[2], r[3], r[4]) for r in _ledger(wh, m, child["id"]) if r[0] == m and r[2] == "regular"] == [
            ("regular", "held", D("1273.00"))], m
        assert query(wh, "SELECT action FROM finding WHERE payroll_month = ? AND finding_type = 'guardian_deceased'",
                     [m]) == [("held",)]
    run(tmp_path, "2020-03")
    paid = query(wh, "SELECT service_month, line_type, amount, payee_account FROM payment_ledger "
                     "WHERE payroll_month = '2020-03' AND id_number = ? AND status = 'payable' "
                     "AND line_type IN ('regular', 'arrears') ORDER BY 1", [child["id"]])
    aunt_account = "6222" + aunt["id"][6:14] + "0001"
    assert paid == [("2020-01", "arrears", D("1273.00"), aunt_account),
                    ("2020-02", "arrears", D("1273.00"), aunt_account),
                    ("2020-03", "regular", D("1273.00"), aunt_account)]


@pytest.mark.unit  # the engine's check alone, on tables written by hand
def test_a_unit_with_neither_a_line_nor_a_finding_stops_the_run(tmp_path):
    """The engine's own invariant, given a roster row that nothing answers: the run stops and says so."""
    import duckdb
    import pytest

    from pipelines.compute import _every_unit_accounted_for
    from pipelines.settings import RunError
    from tests.helpers import context

    ctx = context(tmp_path, "2020-01")
    w = ctx.work_dir / "integrity"
    w.mkdir(parents=True)
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT 'rosters/tekun/a.csv' AS source_file, 1 AS source_row, 'tekun' AS program,
                        '{person(66, "19400101")["id"]}' AS id_number, NULL::VARCHAR AS household_id,
                        NULL::VARCHAR AS ledger_program, NULL::VARCHAR AS approval_no, 'accepted' AS disposition)
                   TO '{w / "roster.parquet"}'""")
    con.execute(f"""COPY (SELECT NULL::VARCHAR AS source_file, NULL::BIGINT AS source_row, NULL::VARCHAR AS id_number,
                        NULL::VARCHAR AS program LIMIT 0) TO '{w / "findings.parquet"}'""")
    con.execute("CREATE TABLE month_ledger (unit_key VARCHAR, program VARCHAR)")
    con.execute("CREATE TABLE int_compute_findings (source_file VARCHAR, source_row BIGINT, id_number VARCHAR, "
                "program VARCHAR)")
    with pytest.raises(RunError, match="1 units accepted on the roster end with neither a line nor a finding"):
        _every_unit_accounted_for(ctx, con)
    # a finding that names the row answers it
    con.execute("INSERT INTO int_compute_findings VALUES ('rosters/tekun/a.csv', 1, NULL, 'tekun')")
    _every_unit_accounted_for(ctx, con)


def test_a_person_outside_the_entitlement_the_roster_states_gets_a_finding(tmp_path):
    """Delivered on January's roster with 终止年月 2019-12: no line, and a finding that says why."""
    p = person(67, "19400101")
    row = _tekun(p)
    row[9] = "2019-12"
    write_csv(roster_path(tmp_path / "inbox", "2020-01", "tekun", f"{C}_tekun_202001.csv"), TEKUN, [row])
    run(tmp_path, "2020-01")
    wh = tmp_path / "warehouse.duckdb"
    assert _ledger(wh, "2020-01", p["id"]) == []
    assert query(wh, "SELECT action FROM finding WHERE finding_type = 'not_entitled_this_month' AND id_number = ?",
                 [p["id"]]) == [("not_paid",)]


def test_late_enrolment_reaches_back_to_the_first_month_doudi_ran(tmp_path):
    """A person entitled from 2020-01 (the first payroll the warehouse holds) and first delivered in
    February is owed January as arrears: 852 + 300 = 1152.00 (engine-versus-model disagreement D5)."""
    first, late = person(75, "19400101"), person(76, "19410101")
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    write_csv(roster_path(inbox, "2020-01", "tekun", f"{C}_tekun_202001.csv"), TEKUN, [_tekun(first)])
    late_row = _tekun(late)
    late_row[8] = "2020-01"
    write_csv(roster_path(inbox, "2020-02", "tekun", f"{C}_tekun_202002.csv"), TEKUN, [_tekun(first), late_row])
    run(tmp_path, "2020-01")
    run(tmp_path, "2020-02")
    assert [r for r in _ledger(wh, "2020-02", late["id"]) if r[2] == "arrears"] == [
        ("2020-01", "tekun", "arrears", "payable", D("1152.00"))]


def test_late_enrolment_reaches_back_to_a_first_month_that_paid_nobody(tmp_path):
    """January ran with an empty roster folder's month (no one delivered); February's roster brings a
    person entitled from January: January is owed (D5 of the engine-versus-model disagreements)."""
    late, other = person(77, "19400101"), person(78, "19410101")
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    orphan_free = _tekun(other)
    orphan_free[8] = "2020-02"  # January's roster: someone entitled only from February
    write_csv(roster_path(inbox, "2020-01", "tekun", f"{C}_tekun_202001.csv"), TEKUN, [orphan_free])
    late_row = _tekun(late)
    late_row[8] = "2020-01"
    write_csv(roster_path(inbox, "2020-02", "tekun", f"{C}_tekun_202002.csv"), TEKUN, [late_row])
    run(tmp_path, "2020-01")
    assert query(wh, "SELECT count(*) FROM payment_ledger") == [(0,)]
    run(tmp_path, "2020-02")
    assert [r for r in _ledger(wh, "2020-02", late["id"]) if r[2] == "arrears"] == [
        ("2020-01", "tekun", "arrears", "payable", D("1152.00"))]


def test_a_raise_reaches_a_month_paid_as_late_enrolment_arrears(tmp_path):
    """Entitled from February, first delivered in March: February is paid as arrears in March
    (852 + 300 = 1152.00). The April payroll's raise (895, effective January) owes 43.00 for February
    and March. March's is payable; February already carries a payable arrears line, so its top-up is
    held for review (arrears_top_up_review), never dropped (disagreement D7)."""
    p = person(79, "19400101")
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    other = person(80, "19410101")
    row = _tekun(p)
    row[8] = "2020-02"
    for m in ("2020-02", "2020-03", "2020-04"):
        rows = [_tekun(other)] + ([row] if m >= "2020-03" else [])
        write_csv(roster_path(inbox, m, "tekun", f"{C}_tekun_{m.replace('-', '')}.csv"), TEKUN, rows)
    for m in ("2020-02", "2020-03", "2020-04"):
        run(tmp_path, m)
    assert [r for r in _ledger(wh, "2020-03", p["id"]) if r[2] == "arrears"] == [
        ("2020-02", "tekun", "arrears", "payable", D("1152.00"))]
    assert [r for r in _ledger(wh, "2020-04", p["id"]) if r[2] == "arrears"] == [
        ("2020-02", "tekun", "arrears", "held", D("43.00")), ("2020-03", "tekun", "arrears", "payable", D("43.00"))]


def test_a_person_first_delivered_after_their_death_is_owed_the_months_up_to_it(tmp_path):
    """Engine-versus-model D11/D12: a tekun person entitled from January, first delivered on March's
    roster, whose death on 2020-02-10 March's extract reports. January and February are owed as
    late-enrolment arrears (852 + 300 半护理 = 1152.00 each, to the person's account); March and
    later are not paid. Before, a person known dead was no unit at all, and what was owed vanished."""
    late, steady = person(91, "19400101"), person(92, "19410101")
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    late_row = common(late, enrolled="2020-01") + ["分散供养", "半护理", ""]
    for m in ("2020-01", "2020-02", "2020-03", "2020-04"):
        rows = [_tekun(steady)] + ([late_row] if m >= "2020-03" else [])
        write_csv(roster_path(inbox, m, "tekun", f"{C}_tekun_{m.replace('-', '')}.csv"), TEKUN, rows)
    write_csv(inbox / "2020-03" / "registry" / "deaths.csv", DEATHS, [[late["id"], late["name"], "2020-02-10", "民政"]])
    for m in ("2020-01", "2020-02", "2020-03", "2020-04"):
        run(tmp_path, m)
    tekun = [r for r in _ledger(wh, "2020-03", late["id"]) if r[1] == "tekun"]
    assert tekun == [("2020-01", "tekun", "arrears", "payable", D("1152.00")),
                     ("2020-02", "tekun", "arrears", "payable", D("1152.00"))]
    # April's raise (895 from January) tops both up by 43.00, held for review as any top-up of a month
    # paid as arrears (BRIEF decision D7); nothing for March or April
    assert [r for r in _ledger(wh, "2020-04", late["id"]) if r[1] == "tekun"] == [
        ("2020-01", "tekun", "arrears", "held", D("43.00")), ("2020-02", "tekun", "arrears", "held", D("43.00"))]
    assert query(wh, "SELECT count(*) FROM receivable WHERE id_number = ?", [late["id"]]) == [(0,)]


def test_no_raise_tops_up_a_month_that_became_a_receivable(tmp_path):
    """A one-person urban dibao household (no income) paid January to March; April's extract reports
    the head dead on 2020-01-20. February and March become receivables (655.00 each); the April raise
    (688 from January) tops up January only, held with the household (688 − 655 = 33.00); before,
    it topped up February and March too, money owed on months that are being recovered."""
    head = person(93, "19500101")
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    for m in ("2020-01", "2020-02", "2020-03", "2020-04"):
        write_csv(roster_path(inbox, m, "dibao", f"{C}_dibao_{m.replace('-', '')}.csv"), DIBAO,
                  [common(head) + ["H93", "户主", 1, "0", ""]])
    write_csv(inbox / "2020-04" / "registry" / "deaths.csv", DEATHS, [[head["id"], head["name"], "2020-01-20", "公安"]])
    for m in ("2020-01", "2020-02", "2020-03", "2020-04"):
        run(tmp_path, m)
    arrears = [r for r in _ledger(wh, "2020-04", head["id"]) if r[1] == "dibao" and r[2] == "arrears"]
    assert arrears == [("2020-01", "dibao", "arrears", "held", D("33.00"))]
    assert query(wh, "SELECT service_month, amount FROM receivable WHERE id_number = ? AND line_type = 'regular' "
                     "ORDER BY 1", [head["id"]]) == [("2020-02", D("655.00")), ("2020-03", D("655.00"))]


def test_a_month_withheld_for_a_death_since_withdrawn_is_paid_from_its_own_roster(tmp_path):
    """Engine-versus-model D12: February's extract reports a tekun person of 和平区 dead (in error);
    February is withheld. In March the person is on 大连 中山区's (210202) roster, and the report is
    withdrawn. February is paid as it would have been, from February's 和平区 row: 852 + 300 =
    1152.00 (not 大连's 936 + 300 = 1236.00, March's own amount)."""
    from pipelines.receivables import record_withdrawal

    p = person(94, "19400101")
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    for m in ("2020-01", "2020-02"):
        write_csv(roster_path(inbox, m, "tekun", f"{C}_tekun_{m.replace('-', '')}.csv"), TEKUN, [_tekun(p)])
    moved = _tekun(p)
    moved[0] = "210202"
    write_csv(roster_path(inbox, "2020-03", "tekun", "210202_tekun_202003.csv"), TEKUN, [moved])
    # 和平区 has nobody left on tekun and says so with the header alone (no file would be a late file,
    # paid forward from February's: issue 20)
    write_csv(roster_path(inbox, "2020-03", "tekun", f"{C}_tekun_202003.csv"), TEKUN, [])
    write_csv(inbox / "2020-02" / "registry" / "deaths.csv", DEATHS, [[p["id"], p["name"], "2020-01-05", "公安"]])
    run(tmp_path, "2020-01")
    run(tmp_path, "2020-02")
    assert [r for r in _ledger(wh, "2020-02", p["id"]) if r[1] == "tekun"] == []
    record_withdrawal(wh, "2020-03", "deaths", p["id"], "2020-02", "王科长", "公安误报，更正单 2020-3-1")
    run(tmp_path, "2020-03")
    assert [r for r in _ledger(wh, "2020-03", p["id"]) if r[2] != "price_subsidy"] == [
        ("2020-02", "tekun", "arrears", "payable", D("1152.00")), ("2020-03", "tekun", "regular", "payable", D("1236.00"))]


def test_a_withdrawn_death_pays_the_withheld_month_even_to_someone_off_the_roster(tmp_path):
    """Engine-versus-model D15: February is withheld for a death reported in error; in March the
    person is on no roster when the report is withdrawn. February is owed now, as it would be to
    someone on a roster: 852 + 300 = 1152.00, from February's row, to the last account; before, it
    waited until (if ever) the person came back."""
    from pipelines.receivables import record_withdrawal

    p, steady = person(95, "19400101"), person(96, "19410101")
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    for m in ("2020-01", "2020-02", "2020-03"):
        rows = [_tekun(steady)] + ([_tekun(p)] if m <= "2020-02" else [])
        write_csv(roster_path(inbox, m, "tekun", f"{C}_tekun_{m.replace('-', '')}.csv"), TEKUN, rows)
    write_csv(inbox / "2020-02" / "registry" / "deaths.csv", DEATHS, [[p["id"], p["name"], "2020-01-05", "公安"]])
    run(tmp_path, "2020-01")
    run(tmp_path, "2020-02")
    record_withdrawal(wh, "2020-03", "deaths", p["id"], "2020-02", "王科长", "公安误报")
    run(tmp_path, "2020-03")
    assert query(wh, "SELECT service_month, line_type, status, amount, arrears_cause, payee_account FROM payment_ledger "
                     "WHERE payroll_month = '2020-03' AND id_number = ? AND program = 'tekun' "
                     "AND line_type <> 'price_subsidy'", [p["id"]]) == [
        ("2020-02", "arrears", "payable", D("1152.00"), "death_withdrawn", "6222" + p["id"][6:14] + "0001")]
