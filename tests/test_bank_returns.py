"""Bank returns and reissues (issue 6): a month is paid, the bank returns some payments as failed
(CSV and pain.002), the failed payments stay owed, the next payroll reissues exactly the ones whose
account was corrected, once, pointing at the lines they replace; the rest wait, visibly. The
bank_returns DAG runs for real under `airflow dags test`."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

from pipelines.cli import main as doudi
from tests.helpers import query, roster_path, run, write_csv
from tests.test_engine_golden import DIBAO, TEKUN, C, common, person

PAIN002 = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10">
 <CstmrPmtStsRpt>
  <GrpHdr><MsgId>RET-1</MsgId><CreDtTm>2020-02-03T10:00:00</CreDtTm></GrpHdr>
  <OrgnlGrpInfAndSts><OrgnlMsgId>x</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId></OrgnlGrpInfAndSts>
  <OrgnlPmtInfAndSts><OrgnlPmtInfId>x</OrgnlPmtInfId>
   <TxInfAndSts><OrgnlEndToEndId>{ref}</OrgnlEndToEndId><TxSts>RJCT</TxSts>
    <StsRsnInf><Rsn><Cd>AC04</Cd></Rsn><AddtlInf>账户已销户</AddtlInf></StsRsnInf>
    <OrgnlTxRef><Amt><InstdAmt Ccy="CNY">{amount}</InstdAmt></Amt></OrgnlTxRef>
   </TxInfAndSts>
  </OrgnlPmtInfAndSts>
 </CstmrPmtStsRpt>
</Document>
"""


def _months(inbox, month, dibao, tekun):
    write_csv(roster_path(inbox, month, "dibao", f"{C}_dibao_{month.replace('-', '')}.csv"), DIBAO, dibao)
    write_csv(roster_path(inbox, month, "tekun", f"{C}_tekun_{month.replace('-', '')}.csv"), TEKUN, tekun)


def _release(tmp_path, month="2020-01"):
    """Returns answer released batches only (issue 17): the month goes to the banks first."""
    assert doudi(["release", "--month", month, "--out", str(tmp_path / "out"), "--warehouse",
                  str(tmp_path / "warehouse.duckdb"), "--by", "财政局"]) == 0


def _ref(wh, pid, month="2020-01"):
    return query(wh, "SELECT DISTINCT payment_ref FROM payment_ledger WHERE payroll_month = ? AND id_number = ? "
                     "AND line_type = 'regular'", [month, pid])[0][0]


def test_failed_payments_are_reissued_once_after_the_account_is_corrected(tmp_path):
    head, t_paid, t_failed = person(81, "19700101"), person(82, "19400101"), person(83, "19410101")
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    tekun = [common(t_paid) + ["分散供养", "全自理", ""], common(t_failed) + ["分散供养", "全自理", ""]]
    _months(inbox, "2020-01", [common(head) + ["HR", "户主", 1, "0", ""]], tekun)
    run(tmp_path, "2020-01")
    _release(tmp_path)
    head_ref, paid_ref, failed_ref = _ref(wh, head["id"]), _ref(wh, t_paid["id"]), _ref(wh, t_failed["id"])
    head_jan = query(wh, "SELECT sum(amount) FROM payment_ledger WHERE payroll_month = '2020-01' AND payment_ref = ?",
                     [head_ref])[0][0]
    t_failed_jan = query(wh, "SELECT amount FROM payout_record WHERE payment_ref = ?", [failed_ref])[0][0]

    # the banks answer in February: a CSV (the household failed, one tekun paid, one unknown ref)
    # and a pain.002 (the other tekun person rejected)
    returns = inbox / "2020-02" / "bank_returns"
    write_csv(returns / "ICBC_202001_回盘.csv", ["payment_ref", "status", "reason"],
              [[head_ref, "失败", "账户已销户"], [paid_ref, "成功", ""], ["202001ICBCR999999", "失败", "?"]])
    (returns / "ICBC_202001_pain002.xml").write_text(PAIN002.format(ref=failed_ref, amount=t_failed_jan),
                                                     encoding="utf-8")
    assert doudi(["returns", "--month", "2020-02", "--inbox", str(inbox), "--warehouse", str(wh),
                  "--out", str(tmp_path / "out")]) == 0
    states = dict(query(wh, "SELECT payment_ref, any_value(payment_state) FROM payment_ledger "
                            "WHERE payroll_month = '2020-01' GROUP BY 1"))
    assert states[head_ref] == "failed" and states[paid_ref] == "paid" and states[failed_ref] == "failed"
    findings = query(wh, "SELECT finding_type, payment_ref FROM reconciliation_finding ORDER BY 1, 2")
    assert ("return_unknown_ref", "202001ICBCR999999") in findings
    assert {r for t, r in findings if t == "returned_not_reissued"} == {head_ref, failed_ref}
    # the January reconciliation report was refreshed with the failures
    recon = (tmp_path / "out" / "2020-01" / "reports" / "reconciliation.html").read_text(encoding="utf-8")
    assert "银行退回" in recon

    # February: the household brings a new card; the tekun person's account is unchanged
    new_card = common(head)
    new_card[6] = "6222888877776666"
    _months(inbox, "2020-02", [new_card + ["HR", "户主", 1, "0", ""]], tekun)
    run(tmp_path, "2020-02")
    reissue = query(wh, "SELECT id_number, service_month, amount, status, hold_reason, payment_ref, reissue_of, "
                        "payee_account FROM payment_ledger WHERE payroll_month = '2020-02' AND line_type = 'reissue' "
                        "ORDER BY id_number")
    by_person = {r[0]: r for r in reissue}
    h = by_person[head["id"]]
    assert h[1:5] == ("2020-01", head_jan, "payable", None) and h[7] == "6222888877776666"
    assert "X" in h[5][6:]  # the reissue batch
    jan_lines = {r[0] for r in query(wh, "SELECT line_id FROM payment_ledger WHERE payment_ref = ?", [head_ref])}
    assert set(h[6]) == jan_lines
    t = by_person[t_failed["id"]]
    assert t[2:5] == (t_failed_jan, "held", "awaiting_account_correction") and t[5] is None
    assert query(wh, "SELECT count(*) FROM finding WHERE payroll_month = '2020-02' "
                     "AND finding_type = 'awaiting_account_correction'")[0][0] == 1
    # the reissue batch is a file of its own, listed in the manifest and validated like the others
    assert list((tmp_path / "out" / "2020-02" / "payouts").glob("2020-02_ICBC_X_01.csv"))
    assert doudi(["verify", "--month", "2020-02", "--out", str(tmp_path / "out"), "--warehouse", str(wh)]) == 0

    # March: nothing new fails; the household is not reissued again, the tekun person still waits
    _months(inbox, "2020-03", [new_card + ["HR", "户主", 1, "0", ""]], tekun)
    run(tmp_path, "2020-03")
    march = query(wh, "SELECT id_number, status FROM payment_ledger WHERE payroll_month = '2020-03' "
                      "AND line_type = 'reissue'")
    assert march == [(t_failed["id"], "held")]
    # never paid twice, counting a failed payment as not paid
    assert query(wh, "SELECT id_number, program, service_month, line_type FROM payment_ledger "
                     "WHERE status = 'payable' AND payment_state IS DISTINCT FROM 'failed' "
                     "GROUP BY ALL HAVING count(*) > 1") == []
    # and the service month January of the household was paid exactly once in money that arrived
    assert query(wh, "SELECT sum(amount) FROM payment_ledger WHERE id_number = ? AND service_month = '2020-01' "
                     "AND status = 'payable' AND payment_state IS DISTINCT FROM 'failed'", [head["id"]]) == [(head_jan,)]
    assert head_jan > D("655")

    # April: February's reissue failed too (its return arrives in April). The money is owed once
    # more, not twice: one reissue line naming the failed reissue, and one warning, for the reissue
    # only (January's line is answered by it); paid to the third account the county delivers
    _release(tmp_path, "2020-02")
    write_csv(inbox / "2020-04" / "bank_returns" / "ICBC_202002_回盘.csv", ["payment_ref", "status", "reason"],
              [[h[5], "失败", "账户冻结"]])
    assert doudi(["returns", "--month", "2020-04", "--inbox", str(inbox), "--warehouse", str(wh),
                  "--out", str(tmp_path / "out")]) == 0
    warned = {r for t, r in query(wh, "SELECT finding_type, payment_ref FROM reconciliation_finding") if
              t == "returned_not_reissued"}
    assert h[5] in warned and head_ref not in warned
    third_card = common(head)
    third_card[6] = "6222888877775555"
    _months(inbox, "2020-04", [third_card + ["HR", "户主", 1, "0", ""]], tekun)
    run(tmp_path, "2020-04")
    feb_reissue = [r[0] for r in query(wh, "SELECT line_id FROM payment_ledger WHERE payment_ref = ?", [h[5]])]
    assert query(wh, "SELECT amount, status, reissue_of, payee_account FROM payment_ledger "
                     "WHERE payroll_month = '2020-04' AND line_type = 'reissue' AND id_number = ?",
                 [head["id"]]) == [(head_jan, "payable", feb_reissue, "6222888877775555")]


def test_unreadable_return_file_is_recorded_as_rejected_and_the_rest_load(tmp_path):
    p = person(84, "19400101")
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    _months(inbox, "2020-01", [], [common(p) + ["分散供养", "全自理", ""]])
    run(tmp_path, "2020-01")
    _release(tmp_path)
    returns = inbox / "2020-02" / "bank_returns"
    write_csv(returns / "a.csv", ["流水", "x"], [["1", "2"]])
    (returns / "b.xml").write_text("<Document><NotAReport/></Document>", encoding="utf-8")
    write_csv(returns / "c.csv", ["支付流水号", "状态", "原因"], [[_ref(wh, p["id"]), "成功", ""]])
    assert doudi(["returns", "--month", "2020-02", "--inbox", str(inbox), "--warehouse", str(wh),
                  "--out", str(tmp_path / "out")]) == 0
    files = query(wh, "SELECT source_file, status, detail FROM bank_return_file ORDER BY 1")
    assert [f[:2] for f in files] == [("bank_returns/a.csv", "rejected"), ("bank_returns/b.xml", "rejected"),
                                      ("bank_returns/c.csv", "loaded")]
    assert "payment_ref" in files[0][2] and "pain.002" in files[1][2]
    assert query(wh, "SELECT DISTINCT payment_state FROM payment_ledger WHERE id_number = ? AND status = 'payable'",
                 [p["id"]]) == [("paid",)]


def test_bank_returns_dag_runs_under_airflow(tmp_path):
    p = person(85, "19400101")
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    _months(inbox, "2020-01", [], [common(p) + ["分散供养", "全自理", ""]])
    run(tmp_path, "2020-01")
    _release(tmp_path)
    write_csv(inbox / "2020-02" / "bank_returns" / "r.csv", ["payment_ref", "status", "reason"],
              [[_ref(wh, p["id"]), "失败", "户名不符"]])
    env = dict(os.environ, DOUDI_INBOX=str(inbox), DOUDI_OUT=str(tmp_path / "out"), DOUDI_WAREHOUSE=str(wh),
               AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING")
    airflow = Path(sys.executable).parent / "airflow"
    proc = subprocess.run([str(airflow), "dags", "test", "bank_returns", "--conf", '{"payroll_month": "2020-02"}'],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0 and "state=failed" not in proc.stdout + proc.stderr, tail
    assert query(wh, "SELECT DISTINCT payment_state FROM payment_ledger WHERE id_number = ? AND status = 'payable'",
                 [p["id"]]) == [("failed",)]
    # the tekun person's regular line and price subsidy travelled in the returned transfer
    assert query(wh, "SELECT DISTINCT finding_type FROM reconciliation_finding") == [("returned_not_reissued",)]
