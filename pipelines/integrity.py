"""Stage 3, integrity: decisions that need all four rosters of the month at once.

Duplicates across counties, exclusive programs (reference exclusions.csv), the disability living
subsidy only for dibao household members, the death registry, accounts not held by the person the
contract says is paid, accounts shared by unrelated payees, one ID under two names, an account
changed together with its holder since the last payroll, the external registries (public payroll,
vehicles, businesses: review only), and near-duplicates by record linkage (pipelines/linkage.py).
Each rule is a model under sql/intermediate/; together they set, on every row, its final
disposition and what the payment engine must do with it (not paid, held, member excluded, no price
subsidy), and they write the month's integrity findings. Holds cleared with `doudi clear`
(pipelines/clearance.py) are waived for the payrolls the clearance covers.

Writes `_work/integrity/roster.parquet` (every delivered row) and `_work/integrity/findings.parquet`.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from pipelines import artefacts
from pipelines.audits import enforce
from pipelines.clearance import CLEARANCE_COLUMNS
from pipelines.faults import checkpoint
from pipelines.io import atomic_path, ensure_dir
from pipelines.linkage import find_near_duplicates
from pipelines.models import audits, models_for, run_models
from pipelines.receivables import REGISTRIES, WITHDRAWAL_COLUMNS
from pipelines.settings import PROGRAMS, ROSTER_PROGRAMS, RunContext, RunError
from pipelines.sqlrun import (
    attach_warehouse,
    connect,
    copy_to_parquet,
    register_reference,
    sql_string,
    tables_in,
)

# What integrity makes of a month: its findings. Every model they need runs before the roster is
# written (their order follows from what each reads, pipelines/models.py); the findings themselves
# after, once record linkage has read the written roster. The models that carry the month's wide
# rows (int_roster_all, int_roster_final) are views (their `-- kind:`), streamed, never held.
INTEGRITY_TARGET = "int_integrity_findings"
# The roster is written in order (program, source file, row) a few files at a time: each part is
# sorted in memory, and no sort holds the month (one ORDER BY over 25M rows spilled 36 GB to disk).
ROSTER_PART_ROWS = 1_000_000


# The temporary-assistance columns every roster row carries (NULL on the monthly programs' rows),
# also in a month that delivered no temporary folder (the validated output is then absent).
TEMPORARY_COLUMNS = {"event_type": "VARCHAR", "event_date": "DATE", "approval_no": "VARCHAR",
                     "approval_level": "VARCHAR", "case_by_case_no": "VARCHAR", "case_household": "VARCHAR"}


def check_integrity(ctx: RunContext) -> dict:
    paths = artefacts.roster_outputs(ctx, artefacts.validated_rows)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise RunError("validation output missing, run the validate stage first: " + ", ".join(missing))
    # a one-off program that delivered no row adds nothing, not even its columns to the delivered
    # struct: the month's roster is then the same file as before the program existed
    paths = [p for p in paths if p.stem in PROGRAMS or pq.read_metadata(p).num_rows]
    con = connect(ctx)
    register_reference(con, ctx.reference)
    files = ", ".join(f"'{sql_string(str(p))}'" for p in paths)
    con.execute(f"CREATE VIEW validated_parquet AS SELECT * FROM read_parquet([{files}], union_by_name = true)")
    present = {r[0] for r in con.execute("DESCRIBE validated_parquet").fetchall()}
    added = "".join(f", NULL::{t} AS {c}" for c, t in TEMPORARY_COLUMNS.items() if c not in present)
    con.execute(f"CREATE VIEW validated_rows AS SELECT *{added} FROM validated_parquet")
    _register_ingest_files(ctx, con)
    _load_history(ctx, con)
    registries = _register_registries(ctx, con)
    needed = [m.name for m in models_for([INTEGRITY_TARGET])][:-1]
    # stg_policy_parameters: record linkage reads its match threshold there
    built = run_models(con, ["stg_policy_parameters", *needed])
    uncovered = con.execute("SELECT region_code, event_type, count(*) FROM int_temporary_cases "
                            "WHERE policy_version IS NULL GROUP BY ALL ORDER BY ALL").fetchall()
    if uncovered:  # a gap in the policy is an error, never a default
        raise RunError("temporary_assistance.csv has no row in force for payroll " + ctx.month + " covering "
                       + "; ".join(f"county {c} event {e} ({n} case{'s' if n > 1 else ''})" for c, e, n in uncovered)
                       + ": each temporary-assistance case needs one (key region_code a prefix of the approving "
                         "county, event_type, valid_from on or before the month); nothing computed")
    enforce(con, audits("integrity"), "integrity")  # sql/audits/integrity_*.sql
    ensure_dir(artefacts.integrity_dir(ctx))
    roster = artefacts.integrity_roster(ctx)
    checkpoint("integrity.before_write")
    _write_roster(con, roster)
    # what reads the final roster from here on reads the written file, not the view again
    con.execute(f"CREATE OR REPLACE VIEW int_roster_final AS "
                f"SELECT * FROM read_parquet('{sql_string(str(roster))}')")
    delivered = con.execute("SELECT count(*) FROM validated_rows").fetchone()[0]
    final = con.execute("SELECT count(*) FROM int_roster_final").fetchone()[0]
    if final != delivered:
        con.close()
        roster.unlink()  # no later stage may read a roster that lost or made rows
        raise RunError(f"integrity: {delivered} rows in, {final} rows out: books do not balance")
    copy_to_parquet(con, "SELECT * FROM registry_month ORDER BY registry, source_row", artefacts.registry_extracts(ctx))
    # every death known to this payroll, also of people on no roster now: the engine turns what was
    # paid for months after a death into receivables (应追缴)
    built += run_models(con, ["int_deaths_known"], built=built)
    copy_to_parquet(con, "SELECT * FROM int_deaths_known ORDER BY id_number", artefacts.deaths_known(ctx))
    find_near_duplicates(con, ctx.reference)
    run_models(con, [INTEGRITY_TARGET], built=built)
    copy_to_parquet(con, "SELECT * FROM int_integrity_findings ORDER BY finding_type, source_file, source_row",
                    artefacts.integrity_findings(ctx))
    by_disposition = dict(con.execute("SELECT disposition, count(*) FROM int_roster_final GROUP BY 1").fetchall())
    by_finding = dict(con.execute("SELECT finding_type, count(*) FROM int_integrity_findings GROUP BY 1").fetchall())
    con.close()
    return {
        "roster_path": str(roster),
        "findings_path": str(artefacts.integrity_findings(ctx)),
        "registry_path": str(artefacts.registry_extracts(ctx)),
        "rows": int(delivered),
        "registries": registries,
        "by_disposition": {k: int(v) for k, v in sorted(by_disposition.items())},
        "findings": {k: int(v) for k, v in sorted(by_finding.items())},
    }


def _write_roster(con, path) -> None:
    """int_roster_final to Parquet, ordered by program, source file and row, in parts of whole files
    of about ROSTER_PART_ROWS rows (a file larger than that is a part of its own)."""
    import pyarrow.parquet as pq

    parts: list[list] = []  # [program, source files, rows]
    for program, source_file, rows in con.execute(
            "SELECT program, source_file, count(*) FROM validated_rows GROUP BY ALL ORDER BY 1, 2").fetchall():
        if parts and parts[-1][0] == program and parts[-1][2] + rows <= ROSTER_PART_ROWS:
            parts[-1][1].append(source_file)
            parts[-1][2] += rows
        else:
            parts.append([program, [source_file], rows])
    with atomic_path(path) as tmp:
        empty = con.sql("SELECT * FROM int_roster_final LIMIT 0").to_arrow_table()
        with pq.ParquetWriter(tmp, empty.schema, compression="zstd") as writer:
            for program, files, _rows in parts:
                names = ", ".join(f"'{sql_string(f)}'" for f in files)  # constants: pushed into the scan
                part = con.sql(f"SELECT * FROM int_roster_final WHERE program = '{sql_string(program)}' "
                               f"AND source_file IN ({names}) ORDER BY source_file, source_row")
                for batch in part.to_arrow_reader(ROSTER_PART_ROWS):
                    writer.write_batch(batch)


# One row per registry entry ever reported (contract section 1: extracts are deltas). The month's own
# extracts are written to `_work/integrity/registry.parquet` and published into the warehouse table
# `registry_entry`; every later payroll reads them back, less the entries withdrawn as errors
# (`registry_withdrawal`, recorded with `doudi withdraw`).
REGISTRY_ENTRY_COLUMNS = {
    "payroll_month": "VARCHAR", "registry": "VARCHAR", "source_file": "VARCHAR", "source_row": "BIGINT",
    "id_number": "VARCHAR", "name": "VARCHAR", "death_date": "VARCHAR", "source": "VARCHAR", "evidence": "VARCHAR",
}


def _read_registry_csv(ctx: RunContext, name: str, need: set[str]) -> list[dict] | None:
    """Rows of `<inbox>/<month>/registry/<name>.csv`, or None where the month has no such extract."""
    import csv
    import io

    from pipelines.io import FileRejected, NotARegularFile, decode_text, entry_kind, inbox_path, read_inbox_bytes

    path = inbox_path(ctx.inbox) / ctx.month / "registry" / f"{name}.csv"
    # a linked extract (or folder) could be any file on the machine: the month stops rather than
    # going on without the deaths it may hold, or reading what it points at
    for entry in (path.parent, path):
        if entry_kind(entry) in ("symlink", "special"):
            raise RunError(f"{ctx.month}/registry/{'' if entry is path.parent else name + '.csv'} is a symbolic "
                           "link or a special file, and doudi reads only regular files in the inbox: put the "
                           "extract itself there and rerun")
    if entry_kind(path) == "missing":
        return None
    try:
        text, _ = decode_text(read_inbox_bytes(path))
    except NotARegularFile as exc:
        raise RunError(f"{ctx.month}/registry/{name}.csv is not a regular file ({exc.kind}): put the extract "
                       "itself there and rerun") from exc
    except FileRejected as exc:
        raise RunError(f"registry/{name}.csv cannot be read: {exc.detail}") from exc
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip() for f in reader.fieldnames or []]
    if not need <= set(fields):
        raise RunError(f"registry/{name}.csv needs columns {sorted(need)}, has {fields}")
    return [{(k or "").strip(): v for k, v in row.items()} for row in reader]


def _register_registries(ctx: RunContext, con) -> list[str]:
    """registry_known: every registry entry known to this payroll, this month's extracts and every
    earlier month's (from the warehouse), less withdrawn entries. raw_deaths (the death registry)
    and raw_registry (public payroll, vehicles, businesses: evidence to review) are views of it."""
    import pyarrow as pa

    columns = ", ".join(f"{k} {t}" for k, t in REGISTRY_ENTRY_COLUMNS.items())
    con.execute(f"CREATE TABLE registry_month ({columns})")
    present = []
    for name in REGISTRIES:  # deaths, then the review-only registries (public payroll, vehicles, businesses)
        rows = _read_registry_csv(ctx, name, {"id_number", "death_date"} if name == "deaths" else {"id_number"})
        if rows is None:
            continue
        present.append(name)
        if not rows:
            continue
        kept = ("id_number", "name", "death_date", "source")
        entries = pa.table({  # noqa: F841 (read by SQL) through Arrow: executemany is a statement per row
            "registry": pa.array([name] * len(rows), pa.string()),
            "source_row": pa.array(range(1, len(rows) + 1), pa.int64()),
            **{k: pa.array([r.get(k) if name == "deaths" or k in ("id_number", "name") else None for r in rows],
                           pa.string()) for k in kept},
            "evidence": pa.array([None if name == "deaths" else json.dumps(
                {k: v for k, v in r.items() if k not in ("id_number", "name") and v}, ensure_ascii=False)
                for r in rows], pa.string()),
        })
        con.execute("""INSERT INTO registry_month BY NAME
                        SELECT getvariable('payroll_month') AS payroll_month, registry,
                               'registry/' || registry || '.csv' AS source_file, source_row,
                               coalesce(norm_code(id_number), id_number) AS id_number, norm_text(name) AS name,
                               death_date, norm_text(source) AS source, evidence
                        FROM entries""")
    tables = tables_in(con, "wh") if _warehouse_attached(con) else set()
    history = (f"SELECT {', '.join(REGISTRY_ENTRY_COLUMNS)} FROM wh.registry_entry "
               "WHERE payroll_month < getvariable('payroll_month')") if "registry_entry" in tables else \
        "SELECT * FROM registry_month LIMIT 0"
    if "registry_withdrawal" in tables:
        con.execute("CREATE TABLE registry_withdrawals AS SELECT * FROM wh.registry_withdrawal "
                    "WHERE effective_payroll <= getvariable('payroll_month')")
    else:
        con.execute(f"CREATE TABLE registry_withdrawals ({WITHDRAWAL_COLUMNS})")
    con.execute(f"""
        CREATE TABLE registry_known AS
        SELECT * FROM (SELECT * FROM registry_month UNION ALL BY NAME ({history})) e
        WHERE NOT EXISTS (SELECT 1 FROM registry_withdrawals w WHERE w.registry = e.registry
                          AND w.id_number = e.id_number AND w.reported_month = e.payroll_month)""")
    con.execute("CREATE VIEW raw_deaths AS SELECT id_number, name, death_date, source, "
                "payroll_month AS reported_month FROM registry_known WHERE registry = 'deaths'")
    con.execute("CREATE VIEW raw_registry AS SELECT registry, id_number, name, evidence, "
                "payroll_month AS reported_month FROM registry_known WHERE registry <> 'deaths'")
    return present


def _register_ingest_files(ctx: RunContext, con) -> None:
    """ingest_files: every roster file of the month and its whole-file outcome (the rejected ones
    become findings)."""
    paths = [p for p in (artefacts.ingested_files(ctx, prog) for prog in ROSTER_PROGRAMS) if p.exists()]
    if paths:
        files = ", ".join(f"'{sql_string(str(p))}'" for p in paths)
        con.execute(f"CREATE VIEW ingest_files AS SELECT * FROM read_parquet([{files}], union_by_name = true)")
    else:
        columns = ", ".join(f"{name} VARCHAR" for name in artefacts.INGESTED_FILES_COLUMNS)
        con.execute(f"CREATE TABLE ingest_files ({columns})")


def _columns(con, table: str) -> set[str]:
    return {r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE database_name = 'wh' "
                                      "AND table_name = ?", [table]).fetchall()}


def _warehouse_attached(con) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = 'wh'").fetchone()[0])


def _load_history(ctx: RunContext, con) -> None:
    """From the warehouse (read-only): each person's account as last accepted in an earlier payroll,
    and the hold clearances recorded with `doudi clear` that apply to this payroll."""
    tables = set()
    if attach_warehouse(con, ctx.warehouse, required=False):
        tables = tables_in(con, "wh")
    if "roster_row" in tables:
        con.execute("""
            CREATE TABLE hist_accounts AS
            SELECT program, id_number, payroll_month, bank_account, account_holder
            FROM wh.roster_row
            WHERE payroll_month < getvariable('payroll_month') AND disposition = 'accepted'
              AND bank_account IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY program, id_number
                                       ORDER BY payroll_month DESC, source_file, source_row) = 1""")
    else:
        con.execute("CREATE TABLE hist_accounts (program VARCHAR, id_number VARCHAR, payroll_month VARCHAR, "
                    "bank_account VARCHAR, account_holder VARCHAR)")
    # temporary assistance: approvals already in the ledger (a case is paid once, ever) and the cases
    # of the 11 payroll months before this one (the repeat window); a warehouse older than the
    # program has neither
    ledger_columns = _columns(con, "payment_ledger") if "payment_ledger" in tables else set()
    if "approval_no" in ledger_columns:
        con.execute("""CREATE TABLE hist_one_off AS SELECT DISTINCT approval_no, status FROM wh.payment_ledger
                       WHERE payroll_month < getvariable('payroll_month') AND line_type = 'one_off'""")
    else:
        con.execute("CREATE TABLE hist_one_off (approval_no VARCHAR, status VARCHAR)")
    if "case_household" in (_columns(con, "roster_row") if "roster_row" in tables else set()):
        con.execute("""CREATE TABLE hist_temporary_cases AS
                       SELECT DISTINCT payroll_month, case_household, event_type, approval_no FROM wh.roster_row
                       WHERE program = 'temporary' AND disposition = 'accepted' AND not_paid_reason IS NULL
                         AND payroll_month < getvariable('payroll_month')""")
    else:
        con.execute("CREATE TABLE hist_temporary_cases (payroll_month VARCHAR, case_household VARCHAR, "
                    "event_type VARCHAR, approval_no VARCHAR)")
    if "hold_clearance" in tables:
        con.execute("""CREATE TABLE hold_clearances AS SELECT * FROM wh.hold_clearance
                       WHERE effective_payroll <= getvariable('payroll_month')
                         AND through_payroll >= getvariable('payroll_month')""")
    else:
        con.execute(f"CREATE TABLE hold_clearances ({CLEARANCE_COLUMNS})")
