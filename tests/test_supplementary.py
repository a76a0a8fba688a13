"""A month already released to the banks, then corrected by a county: the released batches are never
rewritten; a supplementary run pays only what they lack (a person added, a higher amount), in a new
batch, reports what they paid too much, and the next month builds on both."""

from __future__ import annotations

from decimal import Decimal as D

from pipelines.cli import main as doudi
from pipelines.io import sha256_file
from tests.helpers import query, roster_path, run, write_csv
from tests.test_engine_golden import DIBAO, TEKUN, C, common, person


def _write(inbox, month, program, header, rows, suffix=""):
    write_csv(roster_path(inbox, month, program, f"{C}_{program}_{month.replace('-', '')}{suffix}.csv"), header, rows)


def test_corrections_to_a_released_month_go_out_as_a_supplementary_batch(tmp_path, capsys):
    head, spouse = person(91, "19700101"), person(92, "19720101", False)
    t_kept, t_dropped, t_added = person(93, "19400101"), person(94, "19410101"), person(95, "19420101")
    inbox, wh, out = tmp_path / "inbox", tmp_path / "warehouse.duckdb", tmp_path / "out"
    household = lambda income: [common(head) + ["HS", "户主", 2, income, ""],  # noqa: E731
                                common(spouse, account=False) + ["HS", "配偶", 2, income, ""]]
    tekun = lambda *people: [common(p) + ["分散供养", "全自理", ""] for p in people]  # noqa: E731
    _write(inbox, "2020-01", "dibao", DIBAO, household("600"))
    _write(inbox, "2020-01", "tekun", TEKUN, tekun(t_kept, t_dropped))
    run(tmp_path, "2020-01")
    args = ["--month", "2020-01", "--inbox", str(inbox), "--out", str(out), "--warehouse", str(wh)]
    assert doudi(["release", "--month", "2020-01", "--out", str(out), "--warehouse", str(wh), "--by", "财政局张三"]) == 0
    payouts = out / "2020-01" / "payouts"
    released = {p.name: sha256_file(p) for p in payouts.glob("2020-01_*")}
    released_ledger = query(wh, "SELECT line_id, payment_ref, amount FROM payment_ledger "
                                "WHERE payroll_month = '2020-01' ORDER BY line_id")

    # the county corrects January: the household's income was 400, not 600; one tekun person was
    # missing and one should not have been listed
    _write(inbox, "2020-01", "dibao", DIBAO, household("400"), suffix="_v2")
    _write(inbox, "2020-01", "tekun", TEKUN, tekun(t_kept, t_added), suffix="_v2")
    # a plain rerun is refused and says what to do; nothing changes
    assert doudi(["run", *args]) == 1
    assert "--supplementary" in capsys.readouterr().err
    assert {p.name: sha256_file(p) for p in payouts.glob("2020-01_*")} == released

    assert doudi(["run", *args, "--supplementary"]) == 0
    # the released files are untouched; the supplementary batch S1 is new
    now = {p.name: sha256_file(p) for p in payouts.glob("2020-01_*")}
    assert {k: v for k, v in now.items() if k in released} == released
    assert sorted(set(now) - set(released)) == ["2020-01_ICBC_S1_01.csv", "2020-01_ICBC_S1_01.pain001.xml",
                                                "2020-01_ICBC_S1_01.xlsx"]
    # the released lines stand as sent
    assert query(wh, "SELECT line_id, payment_ref, amount FROM payment_ledger WHERE payroll_month = '2020-01' "
                     "AND batch_id = 'R' ORDER BY line_id") == released_ledger
    supplementary = query(wh, "SELECT id_number, line_type, service_month, amount, arrears_cause FROM payment_ledger "
                              "WHERE payroll_month = '2020-01' AND batch_id = 'S1' ORDER BY id_number, line_type")
    # household: 655 × 2 − 400 = 910 instead of 655 × 2 − 600 = 710 → a top-up of 200.00
    assert (head["id"], "arrears", "2020-01", D("200.00"), "supplementary_correction") in supplementary
    added = [r for r in supplementary if r[0] == t_added["id"]]
    assert [r[1] for r in added] == ["price_subsidy", "regular"]
    assert len(supplementary) == 3
    refs = query(wh, "SELECT DISTINCT payment_ref FROM payment_ledger WHERE batch_id = 'S1'")
    assert all(r[0].startswith("202001ICBCS1") for r in refs)
    over = query(wh, "SELECT id_number, action FROM finding WHERE payroll_month = '2020-01' "
                     "AND finding_type = 'overpaid_after_release'")
    assert {r[0] for r in over} == {t_dropped["id"]} and {r[1] for r in over} == {"recorded"}
    assert doudi(["verify", "--month", "2020-01", "--out", str(out), "--warehouse", str(wh)]) == 0

    # rerunning the supplementary run gives the same bytes; releasing it records the supplement
    assert doudi(["run", *args, "--supplementary"]) == 0
    assert {p.name: sha256_file(p) for p in payouts.glob("2020-01_*")} == now
    assert doudi(["release", "--month", "2020-01", "--out", str(out), "--warehouse", str(wh), "--by", "财政局张三"]) == 0
    assert doudi(["release", "--month", "2020-01", "--out", str(out), "--warehouse", str(wh), "--by", "财政局张三"]) == 1

    # February builds on both: nobody's January is paid again
    _write(inbox, "2020-02", "dibao", DIBAO, household("400"))
    _write(inbox, "2020-02", "tekun", TEKUN, tekun(t_kept, t_added))
    run(tmp_path, "2020-02")
    assert query(wh, "SELECT count(*) FROM payment_ledger WHERE payroll_month = '2020-02' "
                     "AND service_month = '2020-01'") == [(0,)]
    assert query(wh, "SELECT id_number, program, service_month, line_type FROM payment_ledger "
                     "WHERE status = 'payable' GROUP BY ALL HAVING count(*) > 1") == []
