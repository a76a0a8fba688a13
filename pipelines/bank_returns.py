"""Bank returns (contract section 4) and the three-way reconciliation (issues 6 and 17).

Banks answer a payout batch with a return file in `<inbox>/<YYYY-MM>/bank_returns/`:

- CSV (UTF-8 or GBK): `payment_ref, status, reason`, status `成功` (paid) or `失败` (failed); it may
  list only the failures. Optional extension columns `amount` and `payee_account` are compared with
  what was sent.
- ISO 20022 pain.002 (customer payment status report, `.xml`): each `TxInfAndSts` with
  `OrgnlEndToEndId` (our payment_ref), `TxSts` (ACSC/ACCC/ACSP paid, RJCT failed), the reason code
  and text, and where the bank echoes them the original amount and creditor account.

A loaded return file is a fact, kept for ever (issue 17): loading only adds. `bank_return_file`
records every file met (name, SHA-256, when, by whom: `loaded`, `rejected`, or `duplicate` when its
bytes were recorded before under another name) and `bank_return_received` every row of a loaded file
as the bank wrote it, with how it matched what was sent (`match`). A file that later disappears from
the folder keeps its facts; withdrawing one is the recorded command `doudi withdraw-return`
(`bank_return_withdrawal`: who, when, why).

A row changes a payment's state only if it is `matched`: its payment_ref names a transfer of a
RELEASED batch (pipelines/payout.py released_batches), and the amount and payee account, where the
return carries them, are the ones sent. Anything else (an unknown ref, a ref of a batch never
released, another amount or account) is a reconciliation finding and changes nothing. The matched
rows of files not withdrawn form `bank_return` (rebuilt on every load, withdrawal and publish), from
which each ledger line's `payment_state` (sent, paid, failed) is the latest return naming its
payment_ref, and the three-way reconciliation (`reconciliation_finding`: ledger ↔ payout records ↔
bank returns) is recomputed. It never reruns the payroll: the next payroll month reissues what
failed (sql/intermediate/int_reissue_due.sql).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import getpass
import io
import os
from pathlib import Path

from pipelines.io import entry_kind, inbox_path, list_entries, read_inbox_bytes, sha256_bytes
from pipelines.settings import RunContext, RunError
from pipelines.sqlrun import base_tables, open_database, tables_in

PAID_WORDS = {"成功", "paid", "success", "ACSC", "ACCC", "ACSP"}
FAILED_WORDS = {"失败", "failed", "failure", "RJCT"}
CSV_ALIASES = {"payment_ref": ("payment_ref", "支付流水号", "交易流水号"), "status": ("status", "状态", "处理结果"),
               "reason": ("reason", "原因", "失败原因"), "amount": ("amount", "金额"),
               "payee_account": ("payee_account", "收款账号", "账号")}
# bank_return: the rows in effect (matched, file not withdrawn); derived, rebuilt from the facts below
RETURN_COLUMNS = ("received_month VARCHAR, source_file VARCHAR, source_row BIGINT, payment_ref VARCHAR, "
                  "status VARCHAR, reason VARCHAR, amount DECIMAL(18, 2), payee_account VARCHAR, raw_status VARCHAR, "
                  "load_id BIGINT")
# the facts, append-only: every file met, every row of a loaded file, every withdrawal
RETURN_FILE_COLUMNS = ("received_month VARCHAR, source_file VARCHAR, sha256 VARCHAR, format VARCHAR, "
                       "rows BIGINT, status VARCHAR, detail VARCHAR, loaded_at VARCHAR, load_id BIGINT, "
                       "loaded_by VARCHAR, duplicate_of_load BIGINT")
RECEIVED_COLUMNS = ("load_id BIGINT, received_month VARCHAR, source_file VARCHAR, source_row BIGINT, "
                    "payment_ref VARCHAR, status VARCHAR, reason VARCHAR, amount DECIMAL(18, 2), "
                    "payee_account VARCHAR, raw_status VARCHAR, match VARCHAR, sent_payroll_month VARCHAR, "
                    "sent_amount DECIMAL(18, 2), sent_account VARCHAR, sent_payee VARCHAR")
WITHDRAWAL_COLUMNS = ("load_id BIGINT, received_month VARCHAR, source_file VARCHAR, sha256 VARCHAR, "
                      "withdrawn_by VARCHAR, withdrawn_at VARCHAR, reason VARCHAR")
# how a received row compares with what was sent; only `matched` changes a payment's state
MATCHES = ("matched", "unknown_ref", "not_released", "amount_differs", "account_differs")


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


def _operator(who: str | None = None) -> str:
    return who or os.environ.get("DOUDI_OPERATOR") or getpass.getuser()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def read_folder(ctx: RunContext) -> list[tuple[str, bytes]]:
    """(name relative to the month's folder, bytes) of every file in the month's bank_returns folder."""
    folder = inbox_path(ctx.inbox) / ctx.month / "bank_returns"
    # read, not trusted (as the rosters): a link or special file is refused, never followed or read
    kind = entry_kind(folder)
    if kind in ("symlink", "special"):
        raise RunError(f"{ctx.month}/bank_returns is a {kind}, not a folder: returns are read only from a real "
                       "folder of regular files; nothing was loaded")
    out = []
    for entry in list_entries(folder):
        kind = entry_kind(entry)
        if kind != "file":
            raise RunError(f"{ctx.month}/bank_returns/{entry.name} is a {kind}, not a regular file: put the return "
                           "file itself there and load again; nothing was loaded")
        out.append((f"bank_returns/{entry.name}", read_inbox_bytes(entry)))
    return out


def parse_file(rel: str, data: bytes) -> tuple[str, list[tuple], str, str | None]:
    """(format, rows, status, detail) of one return file; an unreadable file is `rejected`, never skipped."""
    suffix = Path(rel).suffix.lower()
    fmt = "pain.002" if suffix == ".xml" else "csv"
    try:
        if suffix not in (".csv", ".xml"):
            raise ValueError("only .csv and pain.002 .xml return files are read")
        return fmt, parse_pain002(data) if fmt == "pain.002" else parse_csv(data), "loaded", None
    except Exception as exc:  # a return file doudi cannot read is recorded, never silently skipped
        return fmt, [], "rejected", f"{type(exc).__name__}: {exc}"[:500]


def ensure_tables(con) -> None:
    """The facts' tables; a warehouse from before issue 17 (bank_return was replaced by each load)
    has its rows moved into the facts, to be matched against the releases by the next load or publish."""
    tables = tables_in(con)
    con.execute(f"CREATE TABLE IF NOT EXISTS bank_return_file ({RETURN_FILE_COLUMNS})")
    for column in ("load_id BIGINT", "loaded_by VARCHAR", "duplicate_of_load BIGINT"):
        con.execute(f"ALTER TABLE bank_return_file ADD COLUMN IF NOT EXISTS {column}")
    con.execute("""UPDATE bank_return_file f SET load_id = n.load_id
                   FROM (SELECT received_month, source_file,
                                row_number() OVER (ORDER BY received_month, source_file) AS load_id
                         FROM bank_return_file WHERE load_id IS NULL) n
                   WHERE f.load_id IS NULL AND f.received_month = n.received_month AND f.source_file = n.source_file""")
    con.execute(f"CREATE TABLE IF NOT EXISTS bank_return_received ({RECEIVED_COLUMNS})")
    con.execute(f"CREATE TABLE IF NOT EXISTS bank_return_withdrawal ({WITHDRAWAL_COLUMNS})")
    if "bank_return" in tables and "bank_return_received" not in tables:
        columns = {r[0] for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'bank_return' "
            "AND database_name = current_database()").fetchall()}
        if "load_id" not in columns:
            con.execute("""INSERT INTO bank_return_received BY NAME
                           SELECT f.load_id, b.* FROM bank_return b
                           JOIN bank_return_file f USING (received_month, source_file)""")
            con.execute("DROP TABLE bank_return")
    con.execute(f"CREATE TABLE IF NOT EXISTS bank_return ({RETURN_COLUMNS})")


def match_received(ctx: RunContext, con) -> None:
    """Decide, once, how each row not yet matched compares with what was sent: a row counts only if
    its payment_ref names a transfer of a released batch, for the amount and account sent. The
    decision is recorded with the row (a released batch is never rewritten, so it stays true)."""
    from pipelines.payout import released_batches

    if not con.execute("SELECT count(*) FROM bank_return_received WHERE match IS NULL").fetchone()[0]:
        return
    con.execute("CREATE OR REPLACE TEMP TABLE released_batch (payroll_month VARCHAR, batch_id VARCHAR)")
    if "payout_record" in tables_in(con):
        months = [r[0] for r in con.execute("SELECT DISTINCT payroll_month FROM payout_record ORDER BY 1").fetchall()]
        # released.json of each month (`doudi release`); the month-lifecycle may record it in the warehouse
        released = [(m, b) for m in months
                    for b in sorted(released_batches(dataclasses.replace(ctx, month=m, supplementary=False)))]
        if released:
            con.executemany("INSERT INTO released_batch VALUES (?, ?)", released)
        sent = ("SELECT payment_ref, payroll_month, amount, payee_account, payee_name, "
                "EXISTS (SELECT 1 FROM released_batch x WHERE x.payroll_month = r.payroll_month "
                "AND x.batch_id = r.batch_id) AS released FROM payout_record r")
    else:
        sent = ("SELECT NULL::VARCHAR AS payment_ref, NULL::VARCHAR AS payroll_month, NULL::DECIMAL(18, 2) AS amount, "
                "NULL::VARCHAR AS payee_account, NULL::VARCHAR AS payee_name, false AS released WHERE false")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE received_match AS
        WITH sent AS ({sent})
        SELECT b.load_id, b.source_row,
               CASE WHEN s.payment_ref IS NULL THEN 'unknown_ref'
                    WHEN NOT s.released THEN 'not_released'
                    WHEN b.amount IS NOT NULL AND b.amount <> s.amount THEN 'amount_differs'
                    WHEN b.payee_account IS NOT NULL
                         AND regexp_replace(b.payee_account, '[^0-9A-Za-z]', '', 'g') <> s.payee_account
                         THEN 'account_differs'
                    ELSE 'matched' END AS match,
               s.payroll_month AS sent_payroll_month,
               -- what was sent is kept with the answer only for released transfers
               CASE WHEN s.released THEN s.amount END AS sent_amount,
               CASE WHEN s.released THEN s.payee_account END AS sent_account,
               CASE WHEN s.released THEN s.payee_name END AS sent_payee
        FROM bank_return_received b LEFT JOIN sent s USING (payment_ref)
        WHERE b.match IS NULL""")
    con.execute("""UPDATE bank_return_received b SET match = m.match, sent_payroll_month = m.sent_payroll_month,
                          sent_amount = m.sent_amount, sent_account = m.sent_account, sent_payee = m.sent_payee
                   FROM received_match m WHERE b.load_id = m.load_id AND b.source_row = m.source_row""")
    con.execute("DROP TABLE received_match")
    con.execute("DROP TABLE released_batch")


def record_files(con, month: str, folder: list[tuple[str, bytes]], who: str) -> dict:
    """Append the folder's files not recorded before: new bytes are loaded (or rejected), bytes
    recorded before under another name are a `duplicate` (never loaded twice)."""
    known = con.execute("SELECT received_month, source_file, sha256, load_id, status FROM bank_return_file "
                        "ORDER BY load_id").fetchall()
    seen = {(m, f, h) for m, f, h, _, _ in known}
    first_by_hash: dict[str, tuple[int, str]] = {}
    for m, f, h, load_id, _status in known:
        first_by_hash.setdefault(h, (load_id, f"{m}/{f}"))
    next_id = (con.execute("SELECT max(load_id) FROM bank_return_file").fetchone()[0] or 0) + 1
    loaded_at = _now()
    result = {"loaded": [], "rejected": [], "duplicates": [], "unchanged": []}
    for rel, data in folder:
        sha = sha256_bytes(data)
        if (month, rel, sha) in seen:  # met before with these bytes (loaded, rejected or withdrawn): kept as it is
            result["unchanged"].append(rel)
            continue
        if sha in first_by_hash:
            original_id, original = first_by_hash[sha]
            con.execute("INSERT INTO bank_return_file BY NAME SELECT ? AS received_month, ? AS source_file, "
                        "? AS sha256, NULL AS format, 0 AS rows, 'duplicate' AS status, ? AS detail, ? AS loaded_at, "
                        "? AS load_id, ? AS loaded_by, ? AS duplicate_of_load",
                        [month, rel, sha, f"same bytes as {original} (SHA-256 {sha[:12]}…): not loaded again",
                         loaded_at, next_id, who, original_id])
            result["duplicates"].append((rel, original))
        else:
            fmt, rows, status, detail = parse_file(rel, data)
            con.execute("INSERT INTO bank_return_file BY NAME SELECT ? AS received_month, ? AS source_file, "
                        "? AS sha256, ? AS format, ? AS rows, ? AS status, ? AS detail, ? AS loaded_at, "
                        "? AS load_id, ? AS loaded_by, NULL AS duplicate_of_load",
                        [month, rel, sha, fmt, len(rows), status, detail, loaded_at, next_id, who])
            if rows:
                con.executemany("INSERT INTO bank_return_received (load_id, received_month, source_file, source_row, "
                                "payment_ref, status, reason, amount, payee_account, raw_status) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [(next_id, month, rel, *r) for r in rows])
            first_by_hash[sha] = (next_id, f"{month}/{rel}")
            # a rejected file keeps its reason: the operator is told why, not only which
            result[status].append((rel, detail) if status == "rejected" else rel)
        seen.add((month, rel, sha))
        next_id += 1
    return result


def load_bank_returns(ctx: RunContext, who: str | None = None) -> dict:
    """Add the month's new return files to the warehouse's facts, set payment states, reconcile three ways.
    Files loaded before stay loaded, whether or not they are still in the folder."""
    from pipelines.sqlrun import connect

    if not ctx.warehouse.exists():
        raise RunError(f"no warehouse at {ctx.warehouse}: bank returns answer payouts that were published first")
    folder = read_folder(ctx)
    con = connect(ctx, path=ctx.warehouse)
    try:
        con.execute("BEGIN TRANSACTION")
        ensure_tables(con)
        first_load = con.execute("SELECT coalesce(max(load_id), 0) FROM bank_return_file").fetchone()[0]
        met = record_files(con, ctx.month, folder, _operator(who))
        match_received(ctx, con)
        refresh_payment_states(con)
        reconcile_three_ways(con)
        con.execute("COMMIT")
        new_rows = con.execute("""SELECT status, count(*) FROM bank_return_received WHERE load_id > ?
                                  GROUP BY 1 ORDER BY 1""", [first_load]).fetchall()
        new_matches = con.execute("""SELECT match, count(*) FROM bank_return_received WHERE load_id > ?
                                     GROUP BY 1 ORDER BY 1""", [first_load]).fetchall()
        kept = con.execute("""SELECT count(*) FROM bank_return_file WHERE received_month = ? AND load_id <= ?
                              AND status = 'loaded'""", [ctx.month, first_load]).fetchone()[0]
        findings = con.execute("SELECT finding_type, count(*) FROM reconciliation_finding GROUP BY 1 "
                               "ORDER BY 1").fetchall()
        touched = [r[0] for r in con.execute("""
            SELECT DISTINCT sent_payroll_month FROM bank_return_received
            WHERE received_month = ? AND sent_payroll_month IS NOT NULL ORDER BY 1""", [ctx.month]).fetchall()]
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    from pipelines.lifecycle import record_returns_loaded  # the months' lifecycle: released → returns_loaded
    record_returns_loaded(ctx, touched, who)
    return {"files": len(folder), "loaded_files": met["loaded"], "rejected_files": met["rejected"],
            "duplicate_files": met["duplicates"], "unchanged_files": met["unchanged"], "kept_loaded_files": kept,
            "rows": dict(new_rows), "matches": dict(new_matches), "reconciliation_findings": dict(findings),
            "payroll_months": touched}


def withdraw_return_file(ctx: RunContext, name: str, who: str, reason: str, sha256: str | None = None) -> dict:
    """Withdraw a loaded return file of the month (`doudi withdraw-return`): recorded with who, when
    and why; its rows stop counting and the payment states are recomputed. Its facts stay."""
    from pipelines.sqlrun import connect

    if not ctx.warehouse.exists():
        raise RunError(f"no warehouse at {ctx.warehouse}: nothing was loaded to withdraw")
    if not (who or "").strip() or not (reason or "").strip():
        raise RunError("a withdrawal needs who (--by) and why (--reason): both are recorded")
    rel = name if name.startswith("bank_returns/") else f"bank_returns/{Path(name).name}"
    con = connect(ctx, path=ctx.warehouse)
    try:
        con.execute("BEGIN TRANSACTION")
        ensure_tables(con)
        candidates = con.execute("""
            SELECT f.load_id, f.sha256, f.status, w.withdrawn_by, w.withdrawn_at FROM bank_return_file f
            LEFT JOIN bank_return_withdrawal w USING (load_id)
            WHERE f.received_month = ? AND f.source_file = ? AND starts_with(f.sha256, ?)
            ORDER BY f.load_id""", [ctx.month, rel, (sha256 or "").lower()]).fetchall()
        loaded = [c for c in candidates if c[2] == "loaded" and c[3] is None]
        if not loaded:
            if any(c[2] == "loaded" for c in candidates):
                c = next(c for c in candidates if c[2] == "loaded")
                raise RunError(f"{ctx.month}/{rel} was already withdrawn by {c[3]} at {c[4]}")
            listed = [r[0] for r in con.execute(
                "SELECT source_file FROM bank_return_file f ANTI JOIN bank_return_withdrawal w USING (load_id) "
                "WHERE received_month = ? AND status = 'loaded' ORDER BY load_id", [ctx.month]).fetchall()]
            raise RunError(f"no loaded return file {rel} for {ctx.month} (only loaded files can be withdrawn; "
                           f"loaded now: {', '.join(listed) or 'none'})")
        if len(loaded) > 1:
            raise RunError(f"{ctx.month}/{rel} was loaded {len(loaded)} times with different contents "
                           f"(SHA-256 {', '.join(c[1][:12] for c in loaded)}): name the one to withdraw with --sha256")
        load_id, sha = loaded[0][0], loaded[0][1]
        withdrawn_at = _now()
        con.execute("INSERT INTO bank_return_withdrawal VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [load_id, ctx.month, rel, sha, who.strip(), withdrawn_at, reason.strip()])
        refresh_payment_states(con)
        reconcile_three_ways(con)
        con.execute("COMMIT")
        touched = [r[0] for r in con.execute("""SELECT DISTINCT sent_payroll_month FROM bank_return_received
                                                WHERE load_id = ? AND sent_payroll_month IS NOT NULL ORDER BY 1""",
                                             [load_id]).fetchall()]
        rows = con.execute("SELECT count(*) FROM bank_return_received WHERE load_id = ?", [load_id]).fetchone()[0]
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    return {"received_month": ctx.month, "source_file": rel, "sha256": sha, "rows": rows, "withdrawn_by": who.strip(),
            "withdrawn_at": withdrawn_at, "payroll_months": touched}


IN_EFFECT_SQL = """
CREATE OR REPLACE TABLE bank_return AS
SELECT b.received_month, b.source_file, b.source_row, b.payment_ref, b.status, b.reason, b.amount, b.payee_account,
       b.raw_status, b.load_id
FROM bank_return_received b
WHERE b.match = 'matched'
  AND NOT EXISTS (SELECT 1 FROM bank_return_withdrawal w WHERE w.load_id = b.load_id);
-- the bank's answer for each ref: from the latest file naming it with 成功 or 失败. A file that
-- answers one ref both ways is `contradictory`: the payment stays `sent` (neither paid nor reissued)
-- and a finding asks a person to settle it with the bank, never decided by row order
CREATE OR REPLACE TABLE bank_return_answer AS
SELECT payment_ref, received_month, load_id, min(source_file) AS source_file,
       CASE WHEN count(DISTINCT status) > 1 THEN 'contradictory' ELSE min(status) END AS answer,
       string_agg(source_row::VARCHAR, '、' ORDER BY source_row) AS source_rows
FROM (SELECT * FROM bank_return WHERE status IN ('paid', 'failed')
      QUALIFY dense_rank() OVER (PARTITION BY payment_ref ORDER BY received_month DESC, load_id DESC) = 1)
GROUP BY payment_ref, received_month, load_id
"""


def refresh_payment_states(con, ctx: RunContext | None = None) -> None:
    """payment_ledger.payment_state of every payable line: the latest return in effect naming its
    payment_ref (paid / failed), else `sent`. The ledger view over the month files derives it from
    bank_return_answer (pipelines/warehouse_months.py); only a warehouse from before it is updated.
    Called by every bank-return load, every withdrawal and every publish (with its ctx: rows not
    matched yet, from an older warehouse, are matched)."""
    tables = tables_in(con)
    ensure_tables(con)
    if ctx is not None:
        match_received(ctx, con)
    con.execute(IN_EFFECT_SQL)
    if "payment_ledger" not in tables or "payment_ledger" not in base_tables(con):
        return  # none yet, or the view over the month files, which derives the state itself
    con.execute("""
        UPDATE payment_ledger l SET payment_state = coalesce(r.status, 'sent')
        FROM (SELECT p.payment_ref, CASE WHEN a.answer IN ('paid', 'failed') THEN a.answer END AS status
              FROM (SELECT DISTINCT payment_ref FROM payment_ledger WHERE payment_ref IS NOT NULL) p
              LEFT JOIN bank_return_answer a USING (payment_ref)) r
        WHERE l.payment_ref = r.payment_ref AND l.status = 'payable'""")


def check_answered_refs_unchanged(con) -> None:
    """A payment_ref the bank has answered for names, for ever, the transfer that was released: the
    same payee, account and amount in payout_record, the same account and amount in the ledger lines
    it carries. Called by publish
    after the month is replaced: a rerun that would move a released ref to another payee (its release
    record lost, say) stops before anything is committed."""
    if not {"payout_record", "payment_ledger", "bank_return_received"} <= tables_in(con):
        return
    moved = con.execute("""
        WITH answered AS (
            SELECT payment_ref, min(sent_amount) AS sent_amount, min(sent_account) AS sent_account,
                   min(sent_payee) AS sent_payee, min(received_month || '/' || source_file) AS evidence
            FROM bank_return_received WHERE match = 'matched' GROUP BY 1),
        now_sent AS (SELECT payment_ref, amount, payee_account, payee_name FROM payout_record
                     WHERE payment_ref IN (SELECT payment_ref FROM answered)),
        now_owed AS (SELECT payment_ref, sum(amount) AS amount, min(payee_account) AS payee_account,
                            count(DISTINCT payee_account) AS accounts
                     FROM payment_ledger WHERE status = 'payable' AND payment_ref IN (SELECT payment_ref FROM answered)
                     GROUP BY 1)
        SELECT a.payment_ref, a.evidence, a.sent_amount, mask_account(a.sent_account),
               r.amount, mask_account(r.payee_account), o.amount, mask_account(o.payee_account)
        FROM answered a LEFT JOIN now_sent r USING (payment_ref) LEFT JOIN now_owed o USING (payment_ref)
        WHERE r.payment_ref IS NULL OR o.payment_ref IS NULL OR o.accounts <> 1
           OR r.amount <> a.sent_amount OR r.payee_account <> a.sent_account OR r.payee_name <> a.sent_payee
           OR o.amount <> a.sent_amount OR o.payee_account <> a.sent_account
        ORDER BY 1 LIMIT 1""").fetchone()
    if moved:
        ref, evidence, amount, account, rec_amount, rec_account, owed_amount, owed_account = moved
        now = (f"{rec_amount} yuan to {rec_account} in payout_record and {owed_amount} yuan to {owed_account} in the "
               "ledger") if rec_amount is not None and owed_amount is not None else "no such transfer"
        raise RunError(f"payment ref {ref} was released for {amount} yuan to account {account} and the bank answered "
                       f"for it ({evidence}), but this run would make it name another payee, account or amount "
                       f"({now}): a released ref never changes, "
                       "so nothing was published (restore the month's payouts/released.json and rerun it with "
                       "--supplementary).")


THREE_WAY_SQL = """
CREATE OR REPLACE TABLE reconciliation_finding AS
WITH records AS (SELECT payroll_month, payment_ref, amount, payee_account, region_code FROM payout_record),
ledger_by_ref AS (
    -- a payment can carry several lines (a household's programs): the same one named on every rerun
    SELECT payment_ref, min(payroll_month) AS payroll_month, sum(amount) AS amount,
           min(payee_account) AS payee_account, min(id_number) AS id_number,
           min(program) AS program, min(region_code) AS region_code,
           min(payment_state) AS payment_state
    FROM payment_ledger WHERE status = 'payable' AND payment_ref IS NOT NULL GROUP BY payment_ref),
reissued AS (  -- every line a payable reissue names, whatever became of the reissue
    SELECT unnest(reissue_of) AS line_id FROM payment_ledger
    WHERE line_type = 'reissue' AND status = 'payable'),
latest_return AS (
    SELECT * FROM bank_return
    QUALIFY row_number() OVER (PARTITION BY payment_ref ORDER BY received_month DESC, load_id DESC,
                                                                 source_row DESC) = 1),
-- every row of a loaded file not withdrawn, as the bank wrote it, matched or not
received AS (
    SELECT b.* FROM bank_return_received b
    WHERE NOT EXISTS (SELECT 1 FROM bank_return_withdrawal w WHERE w.load_id = b.load_id)),
file_months AS (
    SELECT DISTINCT load_id, sent_payroll_month FROM bank_return_received WHERE sent_payroll_month IS NOT NULL)
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
       b.received_month || '/' || b.source_file || ' 第' || b.source_row
           || '行：支付流水号不是本系统发出的，未据此改变付款状态'
FROM received b WHERE b.match = 'unknown_ref'
UNION ALL
SELECT 'return_ref_not_released', 'error', b.sent_payroll_month, b.payment_ref, NULL, NULL, NULL,
       b.received_month || '/' || b.source_file || ' 第' || b.source_row
           || '行：该支付流水号所在批次尚未登记发出（release），银行不可能回盘，未据此改变付款状态'
FROM received b WHERE b.match = 'not_released'
UNION ALL
SELECT 'return_invalid_status', 'warning', NULL, b.payment_ref, NULL, NULL, NULL,
       b.received_month || '/' || b.source_file || ' 第' || b.source_row || '行：状态“' || coalesce(b.raw_status, '')
           || '”无法识别'
FROM received b WHERE b.status = 'invalid'
UNION ALL
SELECT 'return_amount_differs', 'error', b.sent_payroll_month, b.payment_ref, l.program, l.id_number, l.region_code,
       b.received_month || '/' || b.source_file || ' 第' || b.source_row || '行：代发 ' || r.amount || ' 元，银行回盘 '
           || b.amount || ' 元，未据此改变付款状态'
FROM received b JOIN records r USING (payment_ref) LEFT JOIN ledger_by_ref l USING (payment_ref)
WHERE b.match = 'amount_differs'
UNION ALL
SELECT 'return_account_differs', 'error', b.sent_payroll_month, b.payment_ref, l.program, l.id_number, l.region_code,
       b.received_month || '/' || b.source_file || ' 第' || b.source_row || '行：代发账号 '
           || mask_account(r.payee_account) || '，银行回盘账号 ' || mask_account(b.payee_account)
           || '，未据此改变付款状态'
FROM received b JOIN records r USING (payment_ref) LEFT JOIN ledger_by_ref l USING (payment_ref)
WHERE b.match = 'account_differs'
UNION ALL
SELECT 'return_file_duplicate', 'warning', m.sent_payroll_month, NULL, NULL, NULL, NULL,
       f.received_month || '/' || f.source_file || ' 与此前收到的 ' || o.received_month || '/' || o.source_file
           || ' 内容完全相同（SHA-256 一致），未重复加载'
FROM bank_return_file f JOIN bank_return_file o ON o.load_id = f.duplicate_of_load
LEFT JOIN file_months m ON m.load_id = o.load_id
WHERE f.status = 'duplicate'
UNION ALL
SELECT 'return_file_withdrawn', 'info', m.sent_payroll_month, NULL, NULL, NULL, NULL,
       w.received_month || '/' || w.source_file || ' 已由 ' || w.withdrawn_by || ' 于 ' || w.withdrawn_at
           || ' 撤回（' || w.reason || '），其回盘不再影响付款状态'
FROM bank_return_withdrawal w LEFT JOIN file_months m USING (load_id)
UNION ALL
SELECT 'returned_not_reissued', 'warning', l.payroll_month, l.payment_ref, l.program, l.id_number, l.region_code,
       l.service_month || ' ' || l.line_type || ' ' || l.amount || ' 元被退回（' || coalesce(lr.reason, '')
           || '），尚未重发'
FROM payment_ledger l LEFT JOIN latest_return lr USING (payment_ref)
WHERE l.status = 'payable' AND l.payment_state = 'failed'
  -- a failed reissue is the line that still owes the money: the line it replaced is not warned twice
  AND NOT EXISTS (SELECT 1 FROM reissued x WHERE x.line_id = l.line_id)
UNION ALL
SELECT 'return_contradictory', 'error', l.payroll_month, b.payment_ref, l.program, l.id_number, l.region_code,
       b.received_month || '/' || b.source_file || ' 第' || b.source_rows
           || '行：银行对同一笔款项既回报成功又回报失败，付款状态未改变（不重发），请与银行核实'
FROM bank_return_answer b LEFT JOIN ledger_by_ref l USING (payment_ref)
WHERE b.answer = 'contradictory'
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
    ensure_tables(con)
    con.execute(THREE_WAY_SQL)


def return_folder_has_news(ctx: RunContext) -> bool:
    """For the sensor: any return file not yet recorded with this name and these bytes?"""
    folder = read_folder(ctx)
    if not folder:
        return False
    if not Path(ctx.warehouse).exists():
        return True
    con = open_database(ctx.warehouse, True, ctx.settings)
    try:
        known = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'bank_return_file'").fetchall()
        if not known[0][0]:
            return True
        recorded = {tuple(r) for r in con.execute("SELECT source_file, sha256 FROM bank_return_file "
                                                  "WHERE received_month = ?", [ctx.month]).fetchall()}
    finally:
        con.close()
    return not {(rel, sha256_bytes(data)) for rel, data in folder} <= recorded
