"""Stage 6, publish: the one task that writes the warehouse (a DuckDB file).

The month's rows of each month table are written as one Parquet file per table beside the warehouse
(pipelines/warehouse_months.py); then one transaction, whose writing does not grow with the history,
names them as the month's files, redefines the tables as views over their files, checks the books
and records the month as published. A crash or a failed check leaves the warehouse exactly as it
was (DuckDB rolls back an uncommitted transaction, also after a kill; files no view names are
removed). The dimensions, the policy tables and the three-way reconciliation are rebuilt after the
commit. Tables and views (contract section 5, extended):

- payment_ledger   every line, with payment_ref, rule versions, inputs, formula and fund parts
- row_disposition  every delivered row: accepted, quarantined (with reasons) or duplicate (with the row kept)
- finding          every finding of the checks and the engine
- roster_row       the accepted, normalised rosters of each month (the basis of arrears; personal data)
- source_file      every delivered file with its SHA-256, format, encoding and outcome
- payout_record / payout_file   the transfers and files written for each month
- receivable       应追缴: a line paid for a month after a death learnt later, by the payroll that found it
- registry_entry   every registry entry (deaths, public payroll, ...) as reported, by the month reported
- run_log          who ran which month, when, with which code version, inputs and reference data,
                   and the amount-changing policy parameters resolved for the run (policy_resolved)
- derived_pending  a month committed whose dimensions, reconciliation and analyst database are not
                   built yet (a publish killed after its commit): verify and release build them first
"""

from __future__ import annotations

import contextlib
import datetime
import getpass
import json
import os
import subprocess

from pipelines import __version__, artefacts
from pipelines.analyst import build_analyst_db, record_pseudonym_key
from pipelines.audits import enforce
from pipelines.bank_returns import check_answered_refs_unchanged, reconcile_three_ways, refresh_payment_states
from pipelines.faults import checkpoint
from pipelines.io import sha256_file
from pipelines.lifecycle import (
    check_rerun_reproduces_ledger,
    clear_not_published,
    open_warehouse,
    operational_message,
    record_transition,
    run_info,
)
from pipelines.marts import build_dimensions, define_fact_views, prepare_marts
from pipelines.policy import policy_resolved
from pipelines.receivables import ensure_tables as ensure_receivable_tables
from pipelines.settings import PROJECT_ROOT, RunContext, RunError
from pipelines.sqlrun import open_database, reference_fingerprints, sql_string, tables_in
from pipelines.vocabulary import REASONS
from pipelines.warehouse_months import (
    MONTH_TABLES,
    define_views,
    migrate_tables,
    register_month,
    remove_unnamed_files,
    write_month_file,
)


def publish_month(ctx: RunContext) -> dict:
    needed = [artefacts.integrity_roster(ctx), artefacts.integrity_findings(ctx), artefacts.registry_extracts(ctx),
              artefacts.receivables(ctx), artefacts.ledger(ctx), artefacts.compute_findings(ctx),
              artefacts.payment_refs(ctx), artefacts.payout_records(ctx)]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise RunError("cannot publish, stage outputs missing: " + ", ".join(missing))
    manifest = json.loads(artefacts.manifest(ctx).read_text(encoding="utf-8"))
    con = open_warehouse(ctx)  # a warehouse held by another process: one sentence, nothing published
    try:
        check_rerun_reproduces_ledger(ctx, con)  # a later month was computed from this one as published
    except Exception:
        con.close()
        raise
    migrate_tables(con, ctx.warehouse)  # a warehouse from before the month files: once
    _stage_views(ctx, con, manifest)
    prepare_marts(ctx, con)
    # the month's rows, as files no view names yet: a failure from here on publishes nothing
    try:
        files = {table: write_month_file(con, ctx.warehouse, table, ctx.month, f"SELECT * FROM stage_{table}")
                 for table in MONTH_TABLES}
    except Exception:
        remove_unnamed_files(con, ctx.warehouse)  # a full disk: the files written so far go
        con.close()
        raise
    con.execute("BEGIN TRANSACTION")
    try:
        # constant work, however long the history: the month's files named, the views redefined
        register_month(con, ctx.month, files)
        define_views(con, ctx.warehouse)
        ensure_receivable_tables(con)  # withdrawals, recoveries and the receivables' status view
        # bank returns already received for this month's payment_refs keep their effect on a rerun
        refresh_payment_states(con, ctx)
        check_answered_refs_unchanged(con)  # a ref the bank answered for still names what was released
        check_books(ctx, con)
        record_pseudonym_key(ctx, con)  # the analysts' keys stay the ones they know
        define_fact_views(con)
        # the month's transition to published is part of the same commit as its rows
        info = run_info(ctx)
        record_transition(ctx, ctx.month, "supplementary_published" if ctx.supplementary else "published",
                          info["by"], run_id=info["run_id"], con=con, note=info.get("note"),
                          manifest_sha256=sha256_file(artefacts.manifest(ctx)))
        con.execute("CREATE TABLE IF NOT EXISTS run_log AS SELECT * FROM stage_run_log LIMIT 0")
        con.execute("ALTER TABLE run_log ADD COLUMN IF NOT EXISTS policy_resolved VARCHAR")  # older warehouses
        con.execute("INSERT INTO run_log BY NAME SELECT * FROM stage_run_log")
        # what is derived from the whole history after the commit is owed until it is built: a run
        # killed before that leaves this row, and verify or release builds it first
        con.execute(f"CREATE TABLE IF NOT EXISTS {DERIVED_PENDING} (payroll_month VARCHAR, committed_at VARCHAR)")
        con.execute(f"INSERT INTO {DERIVED_PENDING} VALUES (?, ?)",
                    [ctx.month, datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")])
        checkpoint("publish.before_commit")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        remove_unnamed_files(con, ctx.warehouse)
        con.close()
        raise
    checkpoint("publish.after_commit")
    counts = {t: files[t][2] for t in MONTH_TABLES}
    clear_not_published(ctx)
    try:
        analyst = build_derived(ctx, con)
    except Exception as exc:
        # the month is committed (DuckDB's log holds it): say so, rather than "nothing was published"
        message = operational_message(exc, ctx, "verify")
        if message is None:
            raise
        raise RunError(f"{ctx.month} was published, but then {message.split(': ', 1)[0]}, so the warehouse could "
                       f"not be checkpointed nor the analyst database rebuilt: free space, then run doudi verify "
                       f"--month {ctx.month} (a rerun of the month also rebuilds the analyst database)") from exc
    return {"warehouse": str(ctx.warehouse), "month": ctx.month, "rows": counts,
            "analyst_db": analyst["analyst_db"]}


DERIVED_PENDING = "derived_pending"


def build_derived(ctx: RunContext, con) -> dict:
    """After a month's commit, on the warehouse connection after prepare_marts (closed on return):
    what is derived from the whole history (the three-way reconciliation's findings, the dimensions,
    the policy tables, the analyst database). A failure here loses no month; the derived_pending row
    the commit wrote goes only once all of it is built."""
    remove_unnamed_files(con, ctx.warehouse)  # the files a rerun replaced
    con.execute("BEGIN TRANSACTION")
    reconcile_three_ways(con)
    build_dimensions(ctx, con)
    con.execute("COMMIT")
    con.execute("CHECKPOINT")
    con.close()
    analyst = build_analyst_db(ctx)
    con = open_warehouse(ctx)
    try:
        con.execute(f"DELETE FROM {DERIVED_PENDING}")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return analyst


def finish_interrupted_publish(ctx: RunContext) -> list[str]:
    """A publish killed after its commit (the month is in the warehouse) left the dimensions, the
    reconciliation and the analyst database behind it: build them now, before the month is
    verified or released. Returns the months whose publish this finished (none: nothing owed)."""
    if not ctx.warehouse.exists():
        return []
    con = open_warehouse(ctx)
    try:
        pending = sorted({r[0] for r in con.execute(f"SELECT payroll_month FROM {DERIVED_PENDING}").fetchall()}) \
            if DERIVED_PENDING in tables_in(con) else []
        if not pending:
            return []
        prepare_marts(ctx, con)
        build_derived(ctx, con)
        return pending
    finally:
        with contextlib.suppress(Exception):
            con.close()


def _stage_views(ctx: RunContext, con, manifest: dict) -> None:
    def p(path) -> str:
        return sql_string(str(path))

    con.execute("CREATE OR REPLACE TEMP TABLE reason_vocab (code VARCHAR, message VARCHAR)")
    con.executemany("INSERT INTO reason_vocab VALUES (?, ?)", [(r.code, r.message_zh) for r in REASONS.values()])
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW stage_payment_ledger AS
        SELECT l.* REPLACE (coalesce(r.payment_ref, l.payment_ref) AS payment_ref,
                            coalesce(r.batch_id, l.batch_id) AS batch_id)
        FROM read_parquet('{p(artefacts.ledger(ctx))}') l
        LEFT JOIN read_parquet('{p(artefacts.payment_refs(ctx))}') r USING (line_id)""")
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW stage_roster_row AS
        SELECT '{ctx.month}' AS payroll_month,
               CASE WHEN program = 'dibao' THEN household_id WHEN program = 'temporary' THEN approval_no
                    ELSE id_number END AS unit_key,
               CASE WHEN program = 'disability' THEN ledger_program ELSE program END AS line_program,
               * REPLACE (to_json(delivered)::VARCHAR AS delivered)
        FROM read_parquet('{p(artefacts.integrity_roster(ctx))}')""")
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW stage_row_disposition AS
        WITH rows AS (SELECT * FROM read_parquet('{p(artefacts.integrity_roster(ctx))}')),
        texts AS (
            SELECT source_file, source_row,
                   string_agg(v.code || ' ' || v.message, '；' ORDER BY v.code) AS reasons
            FROM (SELECT source_file, source_row, unnest(reasons) AS code FROM rows) u
            JOIN reason_vocab v USING (code)
            GROUP BY ALL)
        SELECT '{ctx.month}' AS payroll_month, r.source_file, r.source_row, r.program, r.id_number, r.region_code,
               r.disposition, t.reasons, r.reasons AS reason_codes, r.duplicate_of_file, r.duplicate_of_row,
               r.duplicate_rule, r.not_paid_reason, r.hold_reason
        FROM rows r LEFT JOIN texts t USING (source_file, source_row)""")
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW stage_finding AS
        SELECT md5(concat_ws('|', payroll_month, finding_type, program, id_number, source_file, source_row,
                             detail)) AS finding_id, *
        FROM (SELECT * FROM read_parquet('{p(artefacts.integrity_findings(ctx))}')
              UNION ALL BY NAME
              SELECT * FROM read_parquet('{p(artefacts.compute_findings(ctx))}'))""")
    files = ", ".join(f"'{sql_string(str(f))}'" for f in artefacts.roster_outputs(ctx, artefacts.ingested_files))
    con.execute(f"""CREATE OR REPLACE TEMP VIEW stage_source_file AS
        SELECT '{ctx.month}' AS payroll_month, * FROM read_parquet([{files}], union_by_name = true)""")
    con.execute(f"""CREATE OR REPLACE TEMP VIEW stage_receivable AS
        SELECT * FROM read_parquet('{p(artefacts.receivables(ctx))}')""")
    con.execute(f"""CREATE OR REPLACE TEMP VIEW stage_registry_entry AS
        SELECT * FROM read_parquet('{p(artefacts.registry_extracts(ctx))}')""")
    con.execute(f"""CREATE OR REPLACE TEMP VIEW stage_payout_record AS
        SELECT '{ctx.month}' AS payroll_month, * FROM read_parquet('{p(artefacts.payout_records(ctx))}')""")
    con.execute("CREATE OR REPLACE TEMP TABLE stage_payout_file (payroll_month VARCHAR, name VARCHAR, "
                "sha256 VARCHAR, count BIGINT, sum DECIMAL(18, 2), format VARCHAR, bank_code VARCHAR, "
                "batch_id VARCHAR, part INTEGER)")
    if manifest["files"]:  # a month with nothing payable writes no payout file
        con.executemany("INSERT INTO stage_payout_file VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [(ctx.month, f["name"], f["sha256"], f["count"], f["sum"], f["format"], f["bank_code"],
                          f["batch_id"], f["part"]) for f in manifest["files"]])
    run = run_record(ctx)
    con.execute("CREATE OR REPLACE TEMP TABLE stage_run_log AS SELECT * FROM (SELECT "
                + ", ".join(f"?::{t} AS {k}" for k, t in RUN_LOG_COLUMNS) + ")", [run[k] for k, _ in RUN_LOG_COLUMNS])


RUN_LOG_COLUMNS = (("payroll_month", "VARCHAR"), ("published_at", "VARCHAR"), ("run_by", "VARCHAR"),
                   ("code_version", "VARCHAR"), ("inbox", "VARCHAR"), ("input_files", "VARCHAR"),
                   ("reference_files", "VARCHAR"), ("ledger_sha256", "VARCHAR"), ("manifest_sha256", "VARCHAR"),
                   ("policy_resolved", "VARCHAR"))


def run_record(ctx: RunContext) -> dict:
    """The audit trail of one publish: who, when, which code, which inputs and reference data."""
    import pyarrow.parquet as pq

    inputs = {}
    for files in artefacts.roster_outputs(ctx, artefacts.ingested_files):
        t = pq.read_table(files, columns=["source_file", "sha256"])
        inputs.update(dict(zip(t.column("source_file").to_pylist(), t.column("sha256").to_pylist(), strict=True)))
    reference = reference_fingerprints(ctx)
    return {
        "payroll_month": ctx.month,
        "published_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "run_by": os.environ.get("DOUDI_OPERATOR") or getpass.getuser(),
        "code_version": code_version(),
        "inbox": str(ctx.inbox),
        "input_files": json.dumps(inputs, ensure_ascii=False, sort_keys=True),
        "reference_files": json.dumps(reference, sort_keys=True),
        "ledger_sha256": sha256_file(artefacts.ledger(ctx)),
        "manifest_sha256": sha256_file(artefacts.manifest(ctx)),
        # the amount-changing policy parameters as resolved for this run (policy_parameters.csv)
        "policy_resolved": json.dumps(policy_resolved(ctx), sort_keys=True),
    }


def code_version() -> str:
    try:
        sha = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"doudi {__version__}" + (f" ({sha})" if sha else "")


def check_books(ctx: RunContext, con) -> None:
    """Inside the publish transaction: the month's books must balance, or nothing is committed."""
    m = ctx.month
    audits = [
        ("rows delivered and rows judged differ for {n} files (every delivered row needs one disposition)",
         "SELECT f.source_file FROM source_file f LEFT JOIN row_disposition d ON d.payroll_month = f.payroll_month "
         "AND d.source_file = f.source_file WHERE f.payroll_month = ? GROUP BY f.source_file, f.rows "
         "HAVING f.rows <> count(d.source_row)", [m]),
        ("{n} judged rows from no delivered file",
         "SELECT d.* FROM row_disposition d ANTI JOIN source_file f ON f.payroll_month = d.payroll_month "
         "AND f.source_file = d.source_file WHERE d.payroll_month = ?", [m]),
        ("{n} rows without a proper disposition (a reason, or the row that survives)",
         "SELECT * FROM row_disposition WHERE payroll_month = ? AND ("
         "disposition NOT IN ('accepted', 'quarantined', 'duplicate') "
         "OR (disposition = 'quarantined' AND len(reason_codes) = 0) "
         "OR (disposition = 'duplicate' AND duplicate_of_row IS NULL))", [m]),
        ("{n} payable lines without a payment_ref",
         "SELECT * FROM payment_ledger WHERE payroll_month = ? AND status = 'payable' AND payment_ref IS NULL", [m]),
        # a one_off line is one case: its approval number joins the key (NULL on every other line)
        # across the whole history: a bank's later answer can make two earlier months' lines both count
        ("{n} (person, program, service month, line type, approval) payable more than once across months",
         "SELECT id_number FROM payment_ledger WHERE status = 'payable' AND payment_state IS DISTINCT FROM 'failed' "
         "GROUP BY id_number, program, service_month, line_type, approval_no HAVING count(*) > 1", []),
        ("{n} temporary-assistance approvals payable more than once across months (a case is paid once, ever)",
         "SELECT approval_no FROM payment_ledger WHERE line_type = 'one_off' AND status = 'payable' "
         "AND payment_state IS DISTINCT FROM 'failed' GROUP BY approval_no HAVING count(*) > 1", []),
    ]
    enforce(con, audits, f"books do not balance for {m}, warehouse left unchanged")


def previous_file_counts(ctx: RunContext) -> dict[str, dict[str, int]]:
    """Last month's loaded row count per program and county, for the row-swing check of ingest."""
    from pipelines.months import shift_month

    if not ctx.warehouse.exists():
        return {}
    con = open_database(ctx.warehouse, True, ctx.settings)
    try:
        if "source_file" not in tables_in(con):
            return {}
        rows = con.execute(
            "SELECT program, county, sum(rows) FROM source_file WHERE payroll_month = ? "
            "AND status = 'loaded' AND county <> '' GROUP BY ALL", [shift_month(ctx.month, -1)]).fetchall()
    finally:
        con.close()
    out: dict[str, dict[str, int]] = {}
    for program, county, n in rows:
        out.setdefault(program, {})[county] = int(n)
    return out
