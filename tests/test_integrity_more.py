"""Integrity beyond exact duplicates: clearing held payments (who, when, released once), external
registries as review findings, an account changed together with its holder, and the
never-pay-twice invariant over the four generated months."""

from __future__ import annotations

from decimal import Decimal as D

from pipelines.cli import main as doudi
from tests.helpers import query, roster_path, run, write_csv
from tests.test_engine_golden import DIBAO, ORPHAN, TEKUN, C, acct, common, person


def _month(inbox, month, program, header, rows):
    write_csv(roster_path(inbox, month, program, f"{C}_{program}_{month.replace('-', '')}.csv"), header, rows)


def _ledger(wh, month, pid):
    return query(wh, "SELECT service_month, line_type, amount, status, hold_reason, arrears_cause FROM payment_ledger "
                     "WHERE payroll_month = ? AND id_number = ? AND line_type <> 'price_subsidy' "
                     "ORDER BY service_month, line_type", [month, pid])


def test_cleared_hold_is_paid_with_the_held_months_once_and_who_cleared_it_is_recorded(tmp_path, capsys):
    """The head's account is in the spouse's name: January and February are held. Before the March
    payroll a caseworker confirms the spouse's card and clears the hold, for March only: March pays
    January and February as arrears once; April, with the same card, is held again."""
    head = person(71, "19700101")
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    spouse_card = common(head, holder="配偶某") + ["HC", "户主", 1, "0", ""]
    for month in ("2020-01", "2020-02"):
        _month(inbox, month, "dibao", DIBAO, [spouse_card])
        run(tmp_path, month)
    # February holds its own month and, still owed, January's
    assert {r[3:5] for r in _ledger(wh, "2020-02", head["id"])} == {("held", "account_holder_mismatch")}

    args = ["clear", "--month", "2020-03", "--warehouse", str(wh), "--by", "王科长", "--program", "dibao"]
    # a hold that never happened cannot be cleared, and nothing is recorded
    assert doudi([*args, "--id", person(72, "19700101")["id"], "--hold-reason", "account_holder_mismatch"]) == 1
    assert "nothing recorded" in capsys.readouterr().err
    assert doudi([*args, "--id", head["id"], "--hold-reason", "account_holder_mismatch", "--note", "配偶账户经核实"]) == 0
    recorded = query(wh, "SELECT program, hold_reason, effective_payroll, through_payroll, cleared_by, note, cleared_at "
                         "FROM hold_clearance")
    assert [r[:6] for r in recorded] == [("dibao", "account_holder_mismatch", "2020-03", "2020-03", "王科长",
                                          "配偶账户经核实")]
    assert recorded[0][6][:2] == "20" and "T" in recorded[0][6]

    _month(inbox, "2020-03", "dibao", DIBAO, [spouse_card])
    run(tmp_path, "2020-03")
    assert _ledger(wh, "2020-03", head["id"]) == [
        ("2020-01", "arrears", D("655.00"), "payable", None, "held_released"),
        ("2020-02", "arrears", D("655.00"), "payable", None, "held_released"),
        ("2020-03", "regular", D("655.00"), "payable", None, "regular"),
    ]
    cleared = query(wh, "SELECT action, detail FROM finding WHERE payroll_month = '2020-03' "
                        "AND finding_type = 'hold_cleared'")
    assert len(cleared) == 1 and cleared[0][0] == "recorded" and "王科长" in cleared[0][1]
    assert not query(wh, "SELECT 1 FROM finding WHERE payroll_month = '2020-03' "
                         "AND finding_type = 'account_holder_mismatch'")

    _month(inbox, "2020-04", "dibao", DIBAO, [spouse_card])
    run(tmp_path, "2020-04")
    april = _ledger(wh, "2020-04", head["id"])
    assert ("2020-04", "regular", D("688.00"), "held", "account_holder_mismatch", "regular") in april
    # January to March were paid once each; none of them is owed or paid again
    assert not [r for r in april if r[0] < "2020-04" and r[1] != "arrears"]
    assert query(wh, "SELECT service_month, count(*) FROM payment_ledger WHERE id_number = ? AND status = 'payable' "
                     "AND line_type IN ('regular', 'arrears') AND service_month <= '2020-02' GROUP BY 1 ORDER BY 1",
                 [head["id"]]) == [("2020-01", 1), ("2020-02", 1)]


def test_registry_matches_are_review_findings_and_never_stop_a_payment(tmp_path):
    dibao_head, tekun_person, stranger = person(73, "19700101"), person(74, "19400101"), person(75, "19800101")
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    _month(inbox, "2020-01", "dibao", DIBAO, [common(dibao_head) + ["HD", "户主", 1, "0", ""]])
    _month(inbox, "2020-01", "tekun", TEKUN, [common(tekun_person) + ["分散供养", "全自理", ""]])
    registry = inbox / "2020-01" / "registry"
    write_csv(registry / "vehicles.csv", ["id_number", "name", "plate", "vehicle_type"],
              [[tekun_person["id"], tekun_person["name"], "辽A12345", "小型轿车"],
               [stranger["id"], stranger["name"], "辽A00001", "轻型货车"]])
    # GBK, as a public-security export would come, with a lowercase x typed nowhere but spaces around
    write_csv(registry / "public_payroll.csv", ["id_number", "name", "employer"],
              [[f" {dibao_head['id']} ", dibao_head["name"], "和平区教育局"]], encoding="gbk")
    run(tmp_path, "2020-01")
    found = query(wh, "SELECT finding_type, program, id_number, action, detail FROM finding "
                      "WHERE finding_type LIKE 'registry_%' ORDER BY finding_type")
    assert [f[:4] for f in found] == [
        ("registry_public_payroll", "dibao", dibao_head["id"], "paid_and_flagged"),
        ("registry_vehicle", "tekun", tekun_person["id"], "paid_and_flagged"),
    ]
    assert "和平区教育局" in found[0][4] and "辽A12345" in found[1][4]
    assert query(wh, "SELECT DISTINCT status FROM payment_ledger WHERE id_number IN (?, ?)",
                 [dibao_head["id"], tekun_person["id"]]) == [("payable",)]


def test_registry_without_id_column_stops_the_month_with_a_clear_message(tmp_path):
    inbox = tmp_path / "inbox"
    _month(inbox, "2020-01", "tekun", TEKUN, [common(person(76, "19400101")) + ["分散供养", "全自理", ""]])
    write_csv(inbox / "2020-01" / "registry" / "businesses.csv", ["身份证", "name"], [["x", "y"]])
    assert doudi(["run", "--month", "2020-01", "--inbox", str(inbox), "--out", str(tmp_path / "out"),
                  "--warehouse", str(tmp_path / "warehouse.duckdb")]) == 1


def test_account_changed_together_with_its_holder_is_flagged_and_paid(tmp_path):
    """An orphan's guardian changes: new guardian, new card in the new guardian's name. Paid (the
    guardian is who the contract says holds the account), and flagged for review."""
    orphan, g_old, g_new = person(77, "20120101"), person(78, "19800101"), person(79, "19850101", False)
    own_card = person(80, "19400101")
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"

    def orphan_row(g, card):
        return [C, orphan["name"], orphan["id"], orphan["sex"], "城市", "中国工商银行", card, g["name"], "2019-06", "",
                ""] + ["社会散居", g["name"], g["id"]]

    _month(inbox, "2020-01", "orphan", ORPHAN, [orphan_row(g_old, acct(g_old))])
    _month(inbox, "2020-01", "tekun", TEKUN, [common(own_card) + ["分散供养", "全自理", ""]])
    run(tmp_path, "2020-01")
    new_own_card = common(own_card)
    new_own_card[6] = "6222999988887777"  # a new card in the person's own name: routine, no finding
    _month(inbox, "2020-02", "orphan", ORPHAN, [orphan_row(g_new, acct(g_new))])
    _month(inbox, "2020-02", "tekun", TEKUN, [new_own_card + ["分散供养", "全自理", ""]])
    run(tmp_path, "2020-02")
    found = query(wh, "SELECT program, id_number, action, detail FROM finding "
                      "WHERE finding_type = 'account_changed_with_holder'")
    assert [f[:3] for f in found] == [("orphan", orphan["id"], "paid_and_flagged")]
    assert "2020-01" in found[0][3] and acct(g_new) not in found[0][3]  # masked
    assert query(wh, "SELECT status FROM payment_ledger WHERE payroll_month = '2020-02' AND id_number = ? "
                     "AND line_type = 'regular'", [orphan["id"]]) == [("payable",)]


def test_nobody_is_payable_twice_across_the_generated_months(four_months):
    wh = four_months["warehouse"]
    months = query(wh, "SELECT DISTINCT payroll_month FROM payment_ledger ORDER BY 1")
    assert len(months) == 4
    # a one_off line (the sample's temporary assistance) is one case: its approval joins the key
    twice = query(wh, "SELECT id_number, program, service_month, line_type, approval_no, count(*) FROM payment_ledger "
                      "WHERE status = 'payable' GROUP BY ALL HAVING count(*) > 1")
    assert twice == []
    # and no service month is paid as a regular line by two payrolls, or both held and paid later
    # without the release saying so
    assert query(wh, "SELECT id_number, program, service_month FROM payment_ledger WHERE status = 'payable' "
                     "AND line_type = 'regular' AND service_month <> payroll_month") == []
    released = query(wh, "SELECT count(*) FROM payment_ledger p JOIN payment_ledger h USING (id_number, program, "
                          "service_month) WHERE h.status = 'held' AND p.status = 'payable' AND p.line_type = 'arrears' "
                          "AND p.arrears_cause <> 'held_released' AND h.line_type = 'regular' "
                          "AND p.payroll_month > h.payroll_month")[0][0]
    assert released == 0


def test_one_household_number_in_two_counties_is_reported_as_such_not_as_a_broken_household(tmp_path):
    """Attack finding 8: 和平区 (210102) and 沈河区 (210103) both number a one-person household 0001.
    Each county's file is right on its own: no "several heads" or "size mismatch" reason; both rows
    are accepted and not paid (merged, they would be paid as one household), with a finding that
    names the number and both counties. Another household of 210102 is paid as usual: urban, one
    person, no income, 655.00."""
    from tests.helpers import make_id

    a, b, other = person(81, "19700101"), dict(person(82, "19710101")), person(83, "19720101")
    b["id"] = make_id("210103", "19710101", 82)
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    _month(inbox, "2020-01", "dibao", DIBAO, [common(a) + ["0001", "户主", 1, "0", ""],
                                              common(other) + ["0002", "户主", 1, "0", ""]])
    row_b = common(b) + ["0001", "户主", 1, "0", ""]
    row_b[0] = "210103"
    write_csv(roster_path(inbox, "2020-01", "dibao", "210103_dibao_202001.csv"), DIBAO, [row_b])
    run(tmp_path, "2020-01")
    assert query(wh, "SELECT id_number, disposition, reason_codes FROM row_disposition WHERE program = 'dibao' "
                     "ORDER BY id_number") == sorted([(a["id"], "accepted", []), (b["id"], "accepted", []),
                                                      (other["id"], "accepted", [])])
    findings = query(wh, "SELECT id_number, action, detail FROM finding WHERE finding_type = 'household_in_two_counties' "
                         "ORDER BY id_number")
    assert [(f[0], f[1]) for f in findings] == sorted([(a["id"], "not_paid"), (b["id"], "not_paid")])
    assert all("0001" in f[2] and "210102、210103" in f[2] for f in findings), findings
    assert query(wh, "SELECT id_number, amount FROM payment_ledger WHERE program = 'dibao' AND line_type = 'regular'") == [
        (other["id"], D("655.00"))]
