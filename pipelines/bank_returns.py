"""Bank returns (contract section 4) and the three-way reconciliation (issue 6).

Banks answer a payout batch with a return file in `<inbox>/<YYYY-MM>/bank_returns/`:

- CSV (UTF-8 or GBK): `payment_ref, status, reason`, status `成功` (paid) or `失败` (failed); it may
  list only the failures. Optional extension columns `amount` and `payee_account` are compared with
  what was sent.
- ISO 20022 pain.002 (customer payment status report, `.xml`): each `TxInfAndSts` with
  `OrgnlEndToEndId` (our payment_ref), `TxSts` (ACSC/ACCC/ACSP paid, RJCT failed), the reason code
  and text, and where the bank echoes them the original amount and creditor account.

`load_bank_returns` records every return row in the warehouse (`bank_return`, `bank_return_file`;
reloading a month's returns replaces them), sets each ledger line's `payment_state` (sent, paid,
failed) from the latest return naming its payment_ref, and recomputes the three-way
reconciliation (`reconciliation_finding`: ledger ↔ payout records ↔ bank returns). It never reruns
the payroll: the next payroll month reissues what failed (sql/intermediate/int_reissue_due.sql).
"""

from __future__ import annotations

import csv
import datetime
import io
from pathlib import Path

from pipelines.io import inbox_path, list_files, sha256_bytes
from pipelines.settings import RunContext, RunError
from pipelines.sqlrun import tables_in

PAID_WORDS = {"成功", "paid", "success", "ACSC", "ACCC", "ACSP"}
FAILED_WORDS = {"失败", "failed", "failure", "RJCT"}
CSV_ALIASES = {"payment_ref": ("payment_ref", "支付流水号", "交易流水号"), "status": ("status", "状态", "处理结果"),
               "reason": ("reason", "原因", "失败原因"), "amount": ("amount", "金额"),
               "payee_account": ("payee_account", "收款账号", "账号")}
RETURN_COLUMNS = ("received_month VARCHAR, source_file VARCHAR, source_row BIGINT, payment_ref VARCHAR, "
                  "status VARCHAR, reason VARCHAR, amount DECIMAL(18, 2), payee_account VARCHAR, raw_status VARCHAR")
RETURN_FILE_COLUMNS = ("received_month VARCHAR, source_file VARCHAR, sha256 VARCHAR, format VARCHAR, rows BIGINT, "
                       "status VARCHAR, detail VARCHAR, loaded_at VARCHAR")


def _status(raw: str | None) -> str:
    value = (raw or "").strip()
    if value in PAID_WORDS or value.lower() in PAID_WORDS:
        return "paid"
    if value in FAILED_WORDS or value.lower() in FAILED_WORDS:
        return "failed"
    return "invalid"


def _money(raw):
    from decimal import Decimal, InvalidOperation

    text = (raw or "").strip().replace(",", "")
    if not text:
        return None
    try:
        return Decimal(text).quantize(Decimal("0.01"))
    except InvalidOperation:
        return None


def parse_csv(data: bytes) -> list[tuple]:
    from pipelines.ingest import decode_text

    text, _ = decode_text(data)
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    index = {}
    for canonical, aliases in CSV_ALIASES.items():
        hits = [i for i, h in enumerate(header) if h in aliases]
        if hits:
            index[canonical] = hits[0]
    if not {"payment_ref", "status"} <= set(index):
        raise ValueError(f"needs columns payment_ref and status (or 支付流水号, 状态); has {header}")
    rows = []
    for n, rec in enumerate(reader, start=1):
        if not any(c.strip() for c in rec):
            continue

        def get(col, rec=rec):
            i = index.get(col)
            return rec[i].strip() if i is not None and i < len(rec) else None

        rows.append((n, get("payment_ref"), _status(get("status")), get("reason") or None, _money(get("amount")),
                     get("payee_account") or None, get("status")))
    return rows


def parse_pain002(data: bytes) -> list[tuple]:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    root = etree.fromstring(data, parser)

    def local(el):
        return etree.QName(el).localname

    if local(root) != "Document" or not any(local(c) == "CstmrPmtStsRpt" for c in root):
        raise ValueError("not an ISO 20022 pain.002 customer payment status report")

    def first(el, *path):
        for step in path:
            el = next((c for c in el if isinstance(c.tag, str) and local(c) == step), None)
            if el is None:
                return None
        return (el.text or "").strip()

    rows = []
    txs = [el for el in root.iter() if isinstance(el.tag, str) and local(el) == "TxInfAndSts"]
    for n, tx in enumerate(txs, start=1):
        raw = first(tx, "TxSts")
        code = first(tx, "StsRsnInf", "Rsn", "Cd")
        text = first(tx, "StsRsnInf", "AddtlInf")
        reason = " ".join(x for x in (code, text) if x) or None
        rows.append((n, first(tx, "OrgnlEndToEndId"), _status(raw), reason,
                     _money(first(tx, "OrgnlTxRef", "Amt", "InstdAmt")),
                     first(tx, "OrgnlTxRef", "CdtrAcct", "Id", "Othr", "Id"), raw))
    return rows


def read_returns(ctx: RunContext) -> tuple[list[tuple], list[tuple]]:
    """(files, rows) of the month's bank_returns folder; an unreadable file is recorded as rejected."""
    folder = inbox_path(ctx.inbox) / ctx.month / "bank_returns"
    files, rows = [], []
    loaded_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    for path in list_files(folder) if folder.exists() else []:
        rel = f"bank_returns/{path.name}"
        data = path.read_bytes()
        fmt = "pain.002" if path.suffix.lower() == ".xml" else "csv"
        try:
            if path.suffix.lower() not in (".csv", ".xml"):
                raise ValueError("only .csv and pain.002 .xml return files are read")
            parsed = parse_pain002(data) if fmt == "pain.002" else parse_csv(data)
            status, detail = "loaded", None
        except Exception as exc:  # a return file doudi cannot read is recorded, never silently skipped
            parsed, status, detail = [], "rejected", f"{type(exc).__name__}: {exc}"[:500]
        files.append((ctx.month, rel, sha256_bytes(data), fmt, len(parsed), status, detail, loaded_at))
        rows += [(ctx.month, rel, *r) for r in parsed]
    return files, rows


def load_bank_returns(ctx: RunContext) -> dict:
    """Record the month's return files in the warehouse, set payment states, reconcile three ways."""
    from pipelines.sqlrun import connect

    if not ctx.warehouse.exists():
        raise RunError(f"no warehouse at {ctx.warehouse}: bank returns answer payouts that were published first")
    files, rows = read_returns(ctx)
    con = connect(ctx, path=ctx.warehouse)
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(f"CREATE TABLE IF NOT EXISTS bank_return ({RETURN_COLUMNS})")
        con.execute(f"CREATE TABLE IF NOT EXISTS bank_return_file ({RETURN_FILE_COLUMNS})")
        con.execute("DELETE FROM bank_return WHERE received_month = ?", [ctx.month])
        con.execute("DELETE FROM bank_return_file WHERE received_month = ?", [ctx.month])
        if files:
            con.executemany("INSERT INTO bank_return_file VALUES (?, ?, ?, ?, ?, ?, ?, ?)", files)
        if rows:
            con.executemany("INSERT INTO bank_return VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        refresh_payment_states(con)
        reconcile_three_ways(con)
        con.execute("COMMIT")
        summary = con.execute("""SELECT status, count(*) FROM bank_return WHERE received_month = ?
                                 GROUP BY 1 ORDER BY 1""", [ctx.month]).fetchall()
        findings = con.execute("SELECT finding_type, count(*) FROM reconciliation_finding GROUP BY 1 "
                               "ORDER BY 1").fetchall()
        touched = [r[0] for r in con.execute("""
            SELECT DISTINCT l.payroll_month FROM bank_return b JOIN payment_ledger l USING (payment_ref)
            WHERE b.received_month = ? ORDER BY 1""", [ctx.month]).fetchall()]
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    from pipelines.lifecycle import record_returns_loaded  # the months' lifecycle: released → returns_loaded
    record_returns_loaded(ctx, touched)
    return {"files": len(files), "rejected_files": [f[1] for f in files if f[5] == "rejected"],
            "rows": dict(summary), "reconciliation_findings": dict(findings), "payroll_months": touched}


def refresh_payment_states(con) -> None:
    """payment_ledger.payment_state of every payable line: the latest return naming its
    payment_ref (paid / failed), else `sent`. Called by every bank-return load and every publish."""
    tables = tables_in(con)
    if "payment_ledger" not in tables:
        return
    if "bank_return" not in tables:
        con.execute(f"CREATE TABLE bank_return ({RETURN_COLUMNS})")
    con.execute("""
        UPDATE payment_ledger l SET payment_state = coalesce(r.status, 'sent')
        FROM (SELECT p.payment_ref, lr.status
              FROM (SELECT DISTINCT payment_ref FROM payment_ledger WHERE payment_ref IS NOT NULL) p
              LEFT JOIN (SELECT payment_ref, status FROM bank_return WHERE status IN ('paid', 'failed')
                         QUALIFY row_number() OVER (PARTITION BY payment_ref
                                 ORDER BY received_month DESC, source_file DESC, source_row DESC) = 1) lr
              USING (payment_ref)) r
        WHERE l.payment_ref = r.payment_ref AND l.status = 'payable'""")


THREE_WAY_SQL = """
CREATE OR REPLACE TABLE reconciliation_finding AS
WITH records AS (SELECT payroll_month, payment_ref, amount, payee_account, region_code FROM payout_record),
ledger_by_ref AS (
    SELECT payment_ref, any_value(payroll_month) AS payroll_month, sum(amount) AS amount,
           any_value(payee_account) AS payee_account, any_value(id_number) AS id_number,
           any_value(program) AS program, any_value(region_code) AS region_code,
           any_value(payment_state) AS payment_state
    FROM payment_ledger WHERE status = 'payable' AND payment_ref IS NOT NULL GROUP BY payment_ref),
reissued AS (
    SELECT unnest(reissue_of) AS line_id, payment_state FROM payment_ledger
    WHERE line_type = 'reissue' AND status = 'payable'),
latest_return AS (
    SELECT * FROM bank_return
    QUALIFY row_number() OVER (PARTITION BY payment_ref ORDER BY received_month DESC, source_file DESC,
                                                                 source_row DESC) = 1)
SELECT 'owed_not_sent' AS finding_type, 'error' AS severity, l.payroll_month, l.payment_ref, l.program,
       l.id_number, l.region_code, '应付 ' || l.amount || ' 元，代发文件中没有这笔记录' AS detail
FROM payment_ledger l ANTI JOIN records r USING (payroll_month, payment_ref)
WHERE l.status = 'payable'
UNION ALL
SELECT 'sent_not_owed', 'error', r.payroll_month, r.payment_ref, NULL, NULL, r.region_code,
       '代发 ' || r.amount || ' 元，台账中没有应付行'
FROM records r ANTI JOIN ledger_by_ref l USING (payment_ref)
UNION ALL
SELECT 'return_unknown_ref', 'error', NULL, b.payment_ref, NULL, NULL, NULL,
       b.source_file || ' 第' || b.source_row || '行：支付流水号不是本系统发出的'
FROM bank_return b ANTI JOIN records r USING (payment_ref)
UNION ALL
SELECT 'return_invalid_status', 'warning', NULL, b.payment_ref, NULL, NULL, NULL,
       b.source_file || ' 第' || b.source_row || '行：状态“' || coalesce(b.raw_status, '') || '”无法识别'
FROM bank_return b WHERE b.status = 'invalid'
UNION ALL
SELECT 'return_amount_differs', 'error', r.payroll_month, b.payment_ref, l.program, l.id_number, r.region_code,
       '代发 ' || r.amount || ' 元，银行回盘 ' || b.amount || ' 元'
FROM bank_return b JOIN records r USING (payment_ref) LEFT JOIN ledger_by_ref l USING (payment_ref)
WHERE b.amount IS NOT NULL AND b.amount <> r.amount
UNION ALL
SELECT 'return_account_differs', 'error', r.payroll_month, b.payment_ref, l.program, l.id_number, r.region_code,
       '代发账号 ' || mask_account(r.payee_account) || '，银行回盘账号 ' || mask_account(b.payee_account)
FROM bank_return b JOIN records r USING (payment_ref) LEFT JOIN ledger_by_ref l USING (payment_ref)
WHERE b.payee_account IS NOT NULL AND b.payee_account <> r.payee_account
UNION ALL
SELECT 'returned_not_reissued', 'warning', l.payroll_month, l.payment_ref, l.program, l.id_number, l.region_code,
       l.service_month || ' ' || l.line_type || ' ' || l.amount || ' 元被退回（' || coalesce(lr.reason, '')
           || '），尚未重发'
FROM payment_ledger l LEFT JOIN latest_return lr USING (payment_ref)
WHERE l.status = 'payable' AND l.payment_state = 'failed'
  AND NOT EXISTS (SELECT 1 FROM reissued x WHERE x.line_id = l.line_id AND x.payment_state IS DISTINCT FROM 'failed')
UNION ALL
SELECT 'return_contradicts_reissue', 'error', l.payroll_month, l.payment_ref, l.program, l.id_number, l.region_code,
       l.service_month || ' ' || l.amount || ' 元已重发，银行又回报原款项成功：核对是否重复到账'
FROM payment_ledger l
WHERE l.status = 'payable' AND l.payment_state = 'paid'
  AND EXISTS (SELECT 1 FROM reissued x WHERE x.line_id = l.line_id)
"""


def reconcile_three_ways(con) -> None:
    tables = tables_in(con)
    if not {"payment_ledger", "payout_record"} <= tables:
        return
    if "bank_return" not in tables:
        con.execute(f"CREATE TABLE bank_return ({RETURN_COLUMNS})")
    con.execute(THREE_WAY_SQL)


def return_folder_has_news(ctx: RunContext) -> bool:
    """For the sensor: any return file not yet loaded with these bytes?"""
    import duckdb

    folder = inbox_path(ctx.inbox) / ctx.month / "bank_returns"
    if not folder.exists():
        return False
    hashes = {sha256_bytes(p.read_bytes()) for p in list_files(folder)}
    if not hashes:
        return False
    if not Path(ctx.warehouse).exists():
        return True
    con = duckdb.connect(str(ctx.warehouse), read_only=True)
    try:
        known = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'bank_return_file'").fetchall()
        if not known[0][0]:
            return True
        loaded = {r[0] for r in con.execute("SELECT sha256 FROM bank_return_file WHERE received_month = ?",
                                            [ctx.month]).fetchall()}
    finally:
        con.close()
    return not hashes <= loaded
