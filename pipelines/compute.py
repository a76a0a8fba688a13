"""Stage 4, compute: the payment engine, in DuckDB (contract section 3).

Reads the month's final roster (integrity output) and the ledger and rosters of earlier months
from the warehouse (read-only), runs the models under sql/intermediate/ and sql/marts/, and checks
the engine's invariants before anything is written:

- every line's fund parts add up to the line, to the fen;
- no two lines share (payroll month, service month, program, line type, person);
- no amount is negative;
- nothing payable now was already paid in an earlier payroll (never pay twice).

Writes `_work/compute/ledger.parquet` (the month's ledger lines, payment_ref still empty) and
`_work/compute/findings.parquet`.
"""

from __future__ import annotations

from pipelines import artefacts
from pipelines.audits import enforce
from pipelines.clearance import CLEARANCE_COLUMNS
from pipelines.faults import checkpoint
from pipelines.io import ensure_dir
from pipelines.models import audits, run_models
from pipelines.settings import RunContext, RunError
from pipelines.sqlrun import (
    attach_warehouse,
    connect,
    copy_to_parquet,
    register_reference,
    set_variables,
    sql_string,
    tables_in,
)
from pipelines.vocabulary import CLOSED_ACCOUNT_WORDS

# What the engine makes of a month: its lines (sql/marts/payment_ledger.sql) and its findings. The
# models they need, and their order, follow from what each model reads (pipelines/models.py).
ENGINE_TARGETS = ("month_ledger", "int_compute_findings")
HIST_LEDGER_COLUMNS = {
    "payroll_month": "VARCHAR", "service_month": "VARCHAR", "program": "VARCHAR", "line_type": "VARCHAR",
    "status": "VARCHAR", "id_number": "VARCHAR", "unit_key": "VARCHAR", "amount": "DECIMAL(18, 2)",
    "rule_versions": "VARCHAR[]", "inputs": "VARCHAR", "formula": "VARCHAR",
    "line_id": "VARCHAR", "payment_ref": "VARCHAR", "payee_account": "VARCHAR", "payment_state": "VARCHAR",
    "reissue_of": "VARCHAR[]", "region_code": "VARCHAR", "household_id": "VARCHAR", "urban_rural": "VARCHAR",
    "approval_no": "VARCHAR", "hold_reason": "VARCHAR", "event_type": "VARCHAR", "event_date": "DATE",
    "basis_month": "VARCHAR", "source_file": "VARCHAR", "source_row": "BIGINT", "provisional_from": "VARCHAR",
    # a line paid forward in a held county keeps the fund parts of the line it repeats (int_fund_split)
    "fund_central": "DECIMAL(18, 2)", "fund_provincial": "DECIMAL(18, 2)", "fund_city": "DECIMAL(18, 2)",
    "fund_county": "DECIMAL(18, 2)", "fund_version": "VARCHAR",
}


def compute_payments(ctx: RunContext, held: dict[str, list[str]] | None = None) -> dict:
    """The whole month in one process (`doudi run`). `held`: the counties held for their reference data,
    by default as check_reference found them for the month."""
    con = _run_engine(ctx, held=held)
    return _finish_month(ctx, con)


def compute_partition(ctx: RunContext, partition: str) -> dict:
    """One group of cities (pipelines/partitions.py): the engine on that group's rows only. Its lines
    and findings go to `_work/compute/partitions/<group>/`; `combine_compute` checks and joins them."""
    rows, people = artefacts.partition_rows(ctx), artefacts.partition_people(ctx)
    if not rows.exists():
        raise RunError(f"payment partitions not planned: run plan_compute_partitions first ({rows})")
    con = _run_engine(ctx, partition_rows=(rows, partition))
    # lines and findings of persons in the group; any that no roster row owns go to the first group.
    # The maps cover the whole month (25M rows, 20M people at scale): each is read as a view and cut
    # to this group's lines' keys before it is joined, so no join holds the month's map
    con.execute(f"CREATE VIEW part_people AS SELECT * FROM read_parquet('{sql_string(str(people))}')")
    con.execute(f"CREATE VIEW part_rows AS SELECT * FROM read_parquet('{sql_string(str(rows))}')")
    first = con.execute("SELECT coalesce(min(partition), '') FROM part_rows").fetchone()[0]
    ensure_dir(artefacts.compute_group_dir(ctx, partition))
    checkpoint("compute.before_write")
    for table, path in (("month_ledger", artefacts.ledger), ("int_compute_findings", artefacts.compute_findings)):
        copy_to_parquet(con, f"""
            WITH people AS (SELECT id_number, partition FROM part_people
                            WHERE id_number IN (SELECT id_number FROM {table})),
                 rows AS (SELECT source_file, source_row, partition FROM part_rows
                          WHERE (source_file, source_row) IN (SELECT (source_file, source_row) FROM {table}))
            SELECT t.* FROM {table} t
            LEFT JOIN people p ON p.id_number = t.id_number
            LEFT JOIN rows r ON r.source_file = t.source_file AND r.source_row = t.source_row
            WHERE coalesce(p.partition, r.partition, '{sql_string(first)}') = '{sql_string(partition)}'""",
                        path(ctx, partition))
    ledger = artefacts.ledger(ctx, partition)
    lines = con.execute(f"SELECT count(*) FROM read_parquet('{sql_string(str(ledger))}')").fetchone()[0]
    con.close()
    return {"partition": partition, "ledger_path": str(ledger), "lines": int(lines)}


def combine_compute(ctx: RunContext, partitions: list[str]) -> dict:
    """Join the groups' lines, then what needs the whole month: a supplementary run's comparison
    with the released batches, and the engine's month-wide invariants."""
    parts = [(artefacts.ledger(ctx, p), artefacts.compute_findings(ctx, p)) for p in partitions]
    missing = [str(f) for pair in parts for f in pair if not f.exists()]
    if missing:
        raise RunError("payment partitions missing: " + ", ".join(missing))
    con = connect(ctx)
    ledgers = ", ".join(f"'{sql_string(str(ledger))}'" for ledger, _ in parts)
    findings = ", ".join(f"'{sql_string(str(found))}'" for _, found in parts)
    con.execute(f"CREATE TABLE month_ledger AS SELECT * FROM read_parquet([{ledgers}], union_by_name = true)")
    con.execute(f"CREATE TABLE int_compute_findings AS SELECT * FROM read_parquet([{findings}], union_by_name = true)")
    load_history(ctx, con, units=False)
    return _finish_month(ctx, con)


def _run_engine(ctx: RunContext, partition_rows: tuple | None = None, held: dict[str, list[str]] | None = None):
    """Run the engine's models; return the connection holding month_ledger and int_compute_findings.
    With `partition_rows` (rows file, group), only that group's roster rows are read."""
    roster = artefacts.integrity_roster(ctx)
    if not roster.exists():
        raise RunError(f"integrity output missing: run the integrity stage first ({roster})")
    from pipelines.policy import held_counties, policy_resolved, refuse_moved_settings

    refuse_moved_settings()
    policy = policy_resolved(ctx)  # resolved once per run, by check_reference (policy_parameters.csv)
    if held is None:  # counties whose reference data is broken: paid forward (int_reference_held_due)
        held = held_counties(ctx)
    con = connect(ctx)
    set_variables(con, pay_amount_source=policy["pay_amount_source"],
                  approved_tolerance=policy["approved_tolerance"],
                  carry_forward_max_months=policy["carry_forward_max_months"],
                  carry_forward_programs=policy["carry_forward_programs"])
    con.execute("SET VARIABLE held_counties = CAST(? AS VARCHAR[])", [sorted(held)])
    register_reference(con, ctx.reference)
    where = ""
    if partition_rows is not None:
        rows, partition = partition_rows
        where = (f" WHERE (source_file, source_row) IN (SELECT (source_file, source_row) FROM "
                 f"read_parquet('{sql_string(str(rows))}') WHERE partition = '{sql_string(partition)}')")
    con.execute(f"CREATE VIEW cur_roster AS SELECT * FROM read_parquet('{sql_string(str(roster))}'){where}")
    built = run_models(con, ["int_units"])  # first: a month without history copies its columns (load_history)
    _known_deaths(ctx, con)
    load_history(ctx, con)
    run_models(con, ENGINE_TARGETS, built=built)
    _held_county_findings(con, held)
    # sql/audits/engine_lines_*.sql: checked on every engine run, partitioned or not
    enforce(con, audits("engine_lines"), "payment engine invariants broken, nothing written")
    return con


def _held_county_findings(con, held: dict[str, list[str]]) -> None:
    """One finding per county check_reference held, naming what is broken. (A partitioned month makes
    it in every payment group; compute_partition keeps the first group's, as for every finding that
    names no person and no row.)"""
    for county, problems in held.items():
        con.execute("""
            INSERT INTO int_compute_findings BY NAME
            SELECT getvariable('payroll_month') AS payroll_month, 'county_reference_held' AS finding_type,
                   'warning' AS severity, NULL AS program, NULL AS id_number, ? AS region_code,
                   'paid_and_flagged' AS action, ? AS detail, NULL AS source_file, NULL AS source_row""",
                    [county, f"{county} 参考数据有误，本县本月不按新数据计算，按最近一次发放金额临时发放，"
                             "待更正后以补充批次多退少补。问题：" + "；".join(problems)])


def _finish_month(ctx: RunContext, con) -> dict:
    _every_unit_accounted_for(ctx, con)
    if ctx.supplementary:
        apply_supplementary(ctx, con)
    check_invariants(con)
    _receivables(ctx, con)

    ensure_dir(artefacts.compute_dir(ctx))
    ledger, findings_path = artefacts.ledger(ctx), artefacts.compute_findings(ctx)
    checkpoint("compute.before_write")
    copy_to_parquet(con, "SELECT * FROM month_ledger ORDER BY program, region_code, unit_key, id_number, "
                         "service_month, line_type, line_id", ledger)
    copy_to_parquet(con, "SELECT * FROM int_compute_findings ORDER BY finding_type, source_file, source_row, "
                         "COLUMNS(*)", findings_path)
    copy_to_parquet(con, "SELECT * FROM int_receivables ORDER BY paid_payroll, service_month, program, line_type, "
                         "id_number, COLUMNS(*)", artefacts.receivables(ctx))
    totals = con.execute(
        "SELECT status, line_type, count(*), sum(amount) FROM month_ledger GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    findings = dict(con.execute("SELECT finding_type, count(*) FROM int_compute_findings GROUP BY 1").fetchall())
    con.close()
    return {
        "ledger_path": str(ledger),
        "findings_path": str(findings_path),
        "lines": {f"{s}/{t}": {"count": int(n), "sum": str(a)} for s, t, n, a in totals},
        "findings": {k: int(v) for k, v in sorted(findings.items())},
    }


def _every_unit_accounted_for(ctx: RunContext, con) -> None:
    """No silent outcome: every unit accepted on the month's final roster ends with a line (payable or
    held) or a finding that says why not (integrity's or the engine's). A unit with neither is a rule
    that dropped it without a word: the run stops, naming how many and the first few."""
    con.execute(f"CREATE OR REPLACE VIEW month_roster AS "
                f"SELECT * FROM read_parquet('{sql_string(str(artefacts.integrity_roster(ctx)))}')")
    con.execute(f"CREATE OR REPLACE VIEW integrity_findings AS "
                f"SELECT * FROM read_parquet('{sql_string(str(artefacts.integrity_findings(ctx)))}')")
    run_models(con, ["int_unaccounted_units"], built=ENGINE_TARGETS)
    missing = con.execute("SELECT line_program, unit_key FROM int_unaccounted_units ORDER BY ALL LIMIT 5").fetchall()
    if missing:
        n = con.execute("SELECT count(*) FROM int_unaccounted_units").fetchone()[0]
        shown = ", ".join(f"{p} {k[:6]}…{k[-4:]}" for p, k in missing)
        raise RunError(f"payment engine: {n} units accepted on the roster end with neither a line nor a finding "
                       f"(e.g. {shown}): a rule dropped them without a word, nothing written")


def _known_deaths(ctx: RunContext, con) -> None:
    deaths = artefacts.deaths_known(ctx)
    if not deaths.exists():
        raise RunError(f"integrity output missing: run the integrity stage first ({deaths})")
    con.execute(f"CREATE OR REPLACE VIEW known_deaths AS SELECT * FROM read_parquet('{sql_string(str(deaths))}')")


def _receivables(ctx: RunContext, con) -> None:
    """int_receivables (what earlier payrolls paid after a death now known), each with a finding."""
    _known_deaths(ctx, con)
    run_models(con, ["int_receivable_findings"])
    con.execute("INSERT INTO int_compute_findings BY NAME SELECT * FROM int_receivable_findings")


def load_history(ctx: RunContext, con, units: bool = True) -> None:
    """hist_ledger, hist_units and hist_decided: earlier payroll months, from the warehouse
    (hist_ledger only when `units` is false: what the month-wide checks need)."""
    month = ctx.month
    tables = set()
    if attach_warehouse(con, ctx.warehouse, required=False):
        tables = tables_in(con, "wh")
    closed = " OR ".join(f"contains(b.reason, '{w}')" for w in CLOSED_ACCOUNT_WORDS)
    if {"payment_ledger", "roster_row", "bank_return"} <= tables:
        # accounts a bank said are closed or do not exist: nothing more is paid into them
        con.execute(f"""CREATE TABLE hist_closed_accounts AS
                        SELECT l.payee_account, min(b.received_month) AS reported_month,
                               min(b.payment_ref) AS payment_ref, min(b.reason) AS reason
                        FROM wh.bank_return b JOIN wh.payment_ledger l USING (payment_ref)
                        WHERE b.status = 'failed' AND ({closed}) AND l.payee_account IS NOT NULL
                        GROUP BY l.payee_account""")
    else:
        con.execute("CREATE TABLE hist_closed_accounts (payee_account VARCHAR, reported_month VARCHAR, "
                    "payment_ref VARCHAR, reason VARCHAR)")
    # the first month doudi ran (published): no arrears reach before it. From run_log, not from the
    # ledger: a first month that paid nobody is still the start of the history
    start = con.execute("SELECT min(payroll_month) FROM wh.run_log WHERE payroll_month < ?", [month]).fetchone()[0] \
        if "run_log" in tables else None
    set_variables(con, history_start=start or month)
    if "receivable" in tables:
        con.execute("CREATE TABLE hist_receivables AS SELECT receivable_id FROM wh.receivable WHERE payroll_month < ?",
                    [month])
    else:
        con.execute("CREATE TABLE hist_receivables (receivable_id VARCHAR)")
    if {"payment_ledger", "roster_row"} <= tables:
        have = {r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE database_name = 'wh' "
                                          "AND table_name = 'payment_ledger'").fetchall()}
        # a warehouse older than temporary assistance has no approval_no: none of its lines had one
        columns = [c if c in have else f"CAST(NULL AS {t}) AS {c}" for c, t in HIST_LEDGER_COLUMNS.items()]
        con.execute(f"CREATE TABLE hist_ledger AS SELECT {', '.join(columns)} "
                    "FROM wh.payment_ledger WHERE payroll_month < ?", [month])
        if not units:
            return
        # the hold clearances that apply to this payroll (`doudi clear`): a temporary case held in an
        # earlier payroll is released by them (int_temporary_due), its county need not deliver it again
        if "hold_clearance" in tables:
            con.execute("""CREATE TABLE hold_clearances AS SELECT * FROM wh.hold_clearance
                           WHERE effective_payroll <= ? AND through_payroll >= ?""", [month, month])
        else:
            con.execute(f"CREATE TABLE hold_clearances ({CLEARANCE_COLUMNS})")
        # a month not paid because of a death that is withdrawn now was not decided: it is owed again
        # (int_service_months pays it as arrears, cause death_withdrawn)
        con.execute("""CREATE TABLE hist_withdrawn AS
                       SELECT DISTINCT unit_key, line_program, payroll_month AS service_month FROM wh.roster_row
                       WHERE payroll_month < ? AND disposition = 'accepted' AND not_paid_reason = 'deceased_listed'
                         AND id_number NOT IN (SELECT id_number FROM known_deaths)""", [month])
        con.execute("CREATE TABLE hist_decided AS SELECT unit_key, line_program, payroll_month AS basis_month "
                    "FROM wh.roster_row r WHERE payroll_month < ? AND disposition = 'accepted' AND NOT EXISTS "
                    "(SELECT 1 FROM hist_withdrawn w WHERE w.unit_key = r.unit_key AND w.line_program = r.line_program "
                    "AND w.service_month = r.payroll_month)", [month])
        con.execute("CREATE TABLE hist_units AS SELECT * EXCLUDE (payroll_month, delivered, extra, reasons, "
                    "file_sha256), payroll_month AS basis_month "
                    "FROM wh.roster_row WHERE payroll_month < ? AND disposition = 'accepted' "
                    "AND (not_paid_reason IS NULL OR not_paid_reason = 'deceased_listed')", [month])
    else:
        con.execute(f"CREATE TABLE hist_ledger ({', '.join(f'{k} {t}' for k, t in HIST_LEDGER_COLUMNS.items())})")
        if not units:
            return
        con.execute(f"CREATE TABLE hold_clearances ({CLEARANCE_COLUMNS})")
        con.execute("CREATE TABLE hist_decided (unit_key VARCHAR, line_program VARCHAR, basis_month VARCHAR)")
        con.execute("CREATE TABLE hist_withdrawn (unit_key VARCHAR, line_program VARCHAR, service_month VARCHAR)")
        con.execute("CREATE TABLE hist_units AS SELECT * FROM int_units LIMIT 0")


def apply_supplementary(ctx: RunContext, con) -> None:
    """A released month rerun on corrected rosters: keep the released lines, add what they lack."""
    from pipelines.lifecycle import check_release_state, released_batches, supplement_batch

    released = released_batches(ctx)
    check_release_state(ctx, released)
    if not con.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = 'wh'").fetchall()[0][0]:
        raise RunError(f"a supplementary run needs the warehouse holding the released month: {ctx.warehouse}")
    batches = ", ".join(f"'{sql_string(b)}'" for b in sorted(released))
    con.execute(f"""CREATE TABLE released_lines AS SELECT * FROM wh.payment_ledger
                    WHERE payroll_month = ? AND status = 'payable' AND batch_id IN ({batches})""", [ctx.month])
    # what later payrolls already paid for this month's service months (late enrolment's arrears):
    # the supplement never pays those again (payment_ledger_supplementary)
    con.execute("""CREATE TABLE later_paid AS
                   SELECT service_month, program, id_number, min(payroll_month) AS payroll_month,
                          list(DISTINCT payroll_month ORDER BY payroll_month) AS payroll_months,
                          sum(amount) AS amount
                   FROM wh.payment_ledger
                   WHERE payroll_month > ? AND service_month <= ? AND status = 'payable'
                     AND line_type IN ('regular', 'arrears')
                   GROUP BY ALL""", [ctx.month, ctx.month])
    set_variables(con, supplement_batch=supplement_batch(ctx))
    run_models(con, ["int_supplementary_findings"], built=("month_ledger",))  # and supplementary_ledger
    # paid_by_later_payroll names the payrolls it relied on (evidence), which lifecycle.built_on reads
    con.execute("ALTER TABLE int_compute_findings ADD COLUMN IF NOT EXISTS evidence VARCHAR")
    con.execute("INSERT INTO int_compute_findings BY NAME SELECT * FROM int_supplementary_findings")
    con.execute("DROP TABLE month_ledger")
    con.execute("ALTER TABLE supplementary_ledger RENAME TO month_ledger")


def check_invariants(con) -> None:
    """sql/audits/engine_month_*.sql: the whole month's lines, after a partitioned month is combined."""
    enforce(con, audits("engine_month"), "payment engine invariants broken, nothing written")
