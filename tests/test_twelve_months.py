"""A year of one county's tekun roster, month by month, through the real stages (issue 16's
scenario): a death reported late and then withdrawn as an error, a death reported late that stands
(its receivable recovered), a raise with back pay to a person who left before it, and a closed account.
After every month: the payout files verify against the manifest and the ledger, nobody is payable
twice, nobody is paid for a month after a death known by then, and the receivables are as expected.

Figures (shipped reference, 和平区 210102): tekun 852 + 半护理 300 = 1152.00 until the 2020-04 payroll,
895 + 300 = 1195.00 from it (effective 2020-01: back pay 43.00 a month paid before).
"""

from __future__ import annotations

from decimal import Decimal as D

from pipelines.cli import main as doudi
from tests.helpers import query, roster_path, run, write_csv
from tests.test_assurance import DEATHS, _tekun
from tests.test_engine_golden import TEKUN, C, common, person

MONTHS = [f"2020-{m:02d}" for m in range(1, 13)]
WRONG = person(70, "19400101")     # reported dead in March (2019-12), withdrawn in June
DEAD = person(71, "19410101")      # dies 2020-02-10, reported in April
LEAVER = person(72, "19420101")    # on the roster January to March only
CLOSED = person(73, "19430101")    # account closed (January's payment fails), new card in April
STEADY = person(74, "19440101")


def _roster(month):
    rows = [_tekun(WRONG), _tekun(STEADY)]
    if month <= "2020-03":
        rows.append(_tekun(LEAVER))
    if month <= "2020-05":  # the county takes the dead man off in June
        rows.append(_tekun(DEAD))
    card = common(CLOSED)
    if month >= "2020-04":
        card[6] = "6222555544443333"
    rows.append(card + ["分散供养", "半护理", ""])
    return rows


def _lines(wh, month, p, line_type=None, status="payable"):
    sql = ("SELECT service_month, line_type, amount FROM payment_ledger WHERE payroll_month = ? AND id_number = ? "
           "AND status = ?")
    args = [month, p["id"], status]
    if line_type:
        sql += " AND line_type = ?"
        args.append(line_type)
    return query(wh, sql + " ORDER BY 1, 2", args)


def test_a_year_of_late_deaths_a_withdrawal_a_leaver_and_a_closed_account(tmp_path):
    from pipelines.bank_returns import load_bank_returns
    from pipelines.payout import release
    from pipelines.receivables import record_recovery, record_withdrawal
    from tests.helpers import context

    inbox, wh, out = tmp_path / "inbox", tmp_path / "warehouse.duckdb", tmp_path / "out"
    for m in MONTHS:
        write_csv(roster_path(inbox, m, "tekun", f"{C}_tekun_{m.replace('-', '')}.csv"), TEKUN, _roster(m))
    write_csv(inbox / "2020-03" / "registry" / "deaths.csv", DEATHS, [[WRONG["id"], WRONG["name"], "2019-12-31", "公安"]])
    write_csv(inbox / "2020-04" / "registry" / "deaths.csv", DEATHS, [[DEAD["id"], DEAD["name"], "2020-02-10", "民政"]])

    for m in MONTHS:
        if m == "2020-02":  # the bank answers January: the card is closed
            ref = query(wh, "SELECT DISTINCT payment_ref FROM payment_ledger WHERE payroll_month = '2020-01' "
                            "AND id_number = ?", [CLOSED["id"]])[0][0]
            write_csv(inbox / m / "bank_returns" / "ICBC_202001.csv", ["payment_ref", "status", "reason"],
                      [[ref, "失败", "账户已销户"]])
            release(context(tmp_path, "2020-01"), "财政局")  # a bank answers only what it was sent
            load_bank_returns(context(tmp_path, m))
        if m == "2020-05":  # the family refunds March's payment to the dead man
            rid = query(wh, "SELECT receivable_id FROM receivable WHERE id_number = ? AND service_month = '2020-03' "
                            "AND line_type = 'regular'", [DEAD["id"]])[0][0]
            record_recovery(wh, rid, "refund", "1152.00", "财务科", "家属退回，凭证 2020-031")
        if m == "2020-06":
            record_withdrawal(wh, m, "deaths", WRONG["id"], "2020-03", "王科长", "公安误报，更正单 2020-6-1")
        run(tmp_path, m)

        # the books, after every month
        assert doudi(["verify", "--month", m, "--out", str(out), "--warehouse", str(wh)]) == 0, m
        assert query(wh, "SELECT id_number, program, service_month, line_type FROM payment_ledger "
                         "WHERE status = 'payable' AND payment_state IS DISTINCT FROM 'failed' "
                         "GROUP BY ALL HAVING count(*) > 1") == [], m
        if m >= "2020-04":  # once his death (2020-02) is known, nothing for a month after it
            assert all(s <= "2020-02" for s, _t, _a in _lines(wh, m, DEAD)), m
        # what the ledger shows this month, for the record of the test run
        print(m, query(wh, "SELECT status, line_type, count(*), sum(amount) FROM payment_ledger "
                           "WHERE payroll_month = ? GROUP BY ALL ORDER BY ALL", [m]))

        if m == "2020-03":  # the wrong death: January and February become receivables; March pays nothing
            assert _lines(wh, m, WRONG) == []
            assert query(wh, "SELECT service_month, line_type FROM receivable WHERE id_number = ? ORDER BY ALL",
                         [WRONG["id"]]) == [("2020-01", "price_subsidy"), ("2020-01", "regular"),
                                            ("2020-02", "price_subsidy"), ("2020-02", "regular")]
            assert [r[1] for r in _lines(wh, m, CLOSED, status="held")].count("regular") == 1
        if m == "2020-04":
            # the true death (2020-02): March's payment is a receivable; back pay only for January and February
            assert query(wh, "SELECT service_month, line_type, amount FROM receivable WHERE id_number = ? "
                             "AND line_type = 'regular'", [DEAD["id"]]) == [("2020-03", "regular", D("1152.00"))]
            assert _lines(wh, m, DEAD, "arrears") == [("2020-01", "arrears", D("43.00")),
                                                      ("2020-02", "arrears", D("43.00"))]
            # the leaver gets the raise for the three months he was paid
            assert _lines(wh, m, LEAVER, "arrears") == [(s, "arrears", D("43.00"))
                                                        for s in ("2020-01", "2020-02", "2020-03")]
            # the new card: April, and the held February and March, at the new standard; January reissued
            closed = {(s, t): a for s, t, a in _lines(wh, m, CLOSED)}
            assert closed[("2020-04", "regular")] == D("1195.00")
            assert closed[("2020-02", "arrears")] == D("1195.00") and closed[("2020-03", "arrears")] == D("1195.00")
            assert ("2020-01", "reissue") in closed
            assert query(wh, "SELECT DISTINCT payee_account FROM payment_ledger WHERE payroll_month = ? "
                             "AND id_number = ? AND status = 'payable'", [m, CLOSED["id"]]) == [("6222555544443333",)]
        if m == "2020-05":
            assert query(wh, "SELECT status, outstanding FROM receivable_status WHERE receivable_id = ?",
                         [rid]) == [("settled", D("0.00"))]
        if m == "2020-06":  # withdrawn: June, and March to May withheld because of it, at 1195.00; and
            # January and February, paid at 1152.00 (receivables no more), get the raise's 43.00
            assert _lines(wh, m, WRONG, "arrears") == [("2020-01", "arrears", D("43.00")),
                                                       ("2020-02", "arrears", D("43.00"))] + [
                (s, "arrears", D("1195.00")) for s in ("2020-03", "2020-04", "2020-05")]
            assert query(wh, "SELECT DISTINCT status FROM receivable_status WHERE id_number = ?",
                         [WRONG["id"]]) == [("withdrawn",)]
        if m >= "2020-06":
            assert _lines(wh, m, WRONG, "regular") == [(m, "regular", D("1195.00"))], m
        if m >= "2020-04":
            assert _lines(wh, m, STEADY, "regular") == [(m, "regular", D("1195.00"))], m

    # the year's receivables: only the two deaths, each line once
    assert query(wh, "SELECT id_number, count(*), count(DISTINCT receivable_id) FROM receivable GROUP BY 1 ORDER BY 1") \
        == sorted([(WRONG["id"], 4, 4), (DEAD["id"], 2, 2)])
    # the steady person was paid every month of the year exactly once, and the raise's back pay once
    assert query(wh, "SELECT count(*) FROM payment_ledger WHERE id_number = ? AND status = 'payable' "
                     "AND line_type = 'regular'", [STEADY["id"]]) == [(12,)]
    assert query(wh, "SELECT sum(amount) FROM payment_ledger WHERE id_number = ? AND status = 'payable' "
                     "AND line_type = 'arrears'", [STEADY["id"]]) == [(D("129.00"),)]  # 43.00 × 3
