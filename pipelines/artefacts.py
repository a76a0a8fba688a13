"""Where every file of a month lives: the one place its path is spelled.

A stage of the monthly run reads only what earlier stages wrote under the month's work folder
(`<out>/<YYYY-MM>/_work/`, RunContext.work_dir) and writes its own files there, or into the
month's payouts and reports folders (RunContext.payouts_dir, reports_dir). The stage registry
(pipelines/stages.py) names these functions as a stage's reads and writes, so a missing input is
reported by the name of the stage that writes it.

Light on purpose (pathlib and settings only): the DAG file imports the registry, which imports this.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.settings import ONE_OFF_PROGRAMS, PROGRAMS, RunContext


# --- check_reference ----------------------------------------------------------------------------
def reference_check(ctx: RunContext) -> Path:
    """check_reference's verdict on the reference tables (held counties, problems)."""
    return ctx.work_dir / "reference_check.json"


def policy_resolved(ctx: RunContext) -> Path:
    """The policy parameters check_reference resolved for the month (compute reads them)."""
    return ctx.work_dir / "policy_resolved.json"


def lifecycle_begin(ctx: RunContext) -> Path:
    """The run id and start of this run of the month (pipelines/lifecycle.py begin_run)."""
    return ctx.work_dir / "lifecycle.json"


def duckdb_temp_dir(ctx: RunContext) -> Path:
    """Where DuckDB spills when a month does not fit in memory."""
    return ctx.work_dir / "duckdb_tmp"


# --- ingest -------------------------------------------------------------------------------------
def ingest_dir(ctx: RunContext) -> Path:
    return ctx.work_dir / "ingest"


def ingested_rows(ctx: RunContext, program: str) -> Path:
    """A program's delivered rows, every file's, as read (ingest)."""
    return ingest_dir(ctx) / f"{program}.parquet"


# the columns of ingested_files (ingest writes them with these pyarrow types; integrity reads them)
INGESTED_FILES_COLUMNS = {
    "program": "string",
    "source_file": "string",
    "sha256": "string",
    "bytes": "int64",
    "format": "string",
    "encoding": "string",
    "header_row": "int64",
    "rows": "int64",
    "status": "string",
    "reason_code": "string",
    "reason_detail": "string",
    "duplicate_of": "string",
    "superseded_by": "string",
    "county": "string",
    "columns": "string",
    "carried_from": "string",
}


def ingested_files(ctx: RunContext, program: str) -> Path:
    """A program's delivered files and what became of each (ingest)."""
    return ingest_dir(ctx) / f"{program}.files.parquet"


# --- validate -----------------------------------------------------------------------------------
def validate_dir(ctx: RunContext, city: str | None = None) -> Path:
    """Where validation writes: `_work/validate/`, or a city partition's folder under it."""
    base = ctx.work_dir / "validate"
    return base if city is None else base / "partitions" / city


def validated_rows(ctx: RunContext, program: str, city: str | None = None) -> Path:
    """A program's rows with their disposition (validate), or one city partition's."""
    return validate_dir(ctx, city) / f"{program}.parquet"


def validation_summary(ctx: RunContext, program: str, city: str | None = None) -> Path:
    """GX's result for a program (counts only, no personal values), or one city partition's."""
    return validate_dir(ctx, city) / f"{program}.gx.json"


def data_docs_path(ctx: RunContext, program: str, city: str | None = None) -> Path:
    """GX Data Docs page of a program's validation, or of one city partition's."""
    docs = ctx.reports_dir / "data_docs"
    return docs / f"{program}.html" if city is None else docs / program / f"{city}.html"


# --- integrity ----------------------------------------------------------------------------------
def integrity_dir(ctx: RunContext) -> Path:
    return ctx.work_dir / "integrity"


def integrity_roster(ctx: RunContext) -> Path:
    """Every delivered row with its final disposition (integrity): what the engine pays from."""
    return integrity_dir(ctx) / "roster.parquet"


def integrity_findings(ctx: RunContext) -> Path:
    return integrity_dir(ctx) / "findings.parquet"


def registry_extracts(ctx: RunContext) -> Path:
    """The month's registry extracts (deaths, imprisonments, ...), as integrity read them."""
    return integrity_dir(ctx) / "registry.parquet"


def deaths_known(ctx: RunContext) -> Path:
    return integrity_dir(ctx) / "deaths_known.parquet"


# --- compute ------------------------------------------------------------------------------------
def compute_dir(ctx: RunContext) -> Path:
    return ctx.work_dir / "compute"


def compute_partitions_dir(ctx: RunContext) -> Path:
    """The payment groups' plan (rows.parquet, people.parquet) and each group's folder."""
    return compute_dir(ctx) / "partitions"


def partition_rows(ctx: RunContext) -> Path:
    """Every roster row's payment group (plan_compute_partitions)."""
    return compute_partitions_dir(ctx) / "rows.parquet"


def partition_people(ctx: RunContext) -> Path:
    """Every person's payment group (plan_compute_partitions)."""
    return compute_partitions_dir(ctx) / "people.parquet"


def compute_group_dir(ctx: RunContext, group: str) -> Path:
    return compute_partitions_dir(ctx) / group


def ledger(ctx: RunContext, group: str | None = None) -> Path:
    """The month's ledger lines (payment_ref still empty), or one payment group's."""
    return (compute_dir(ctx) if group is None else compute_group_dir(ctx, group)) / "ledger.parquet"


def compute_findings(ctx: RunContext, group: str | None = None) -> Path:
    return (compute_dir(ctx) if group is None else compute_group_dir(ctx, group)) / "findings.parquet"


def receivables(ctx: RunContext) -> Path:
    return compute_dir(ctx) / "receivables.parquet"


# --- payout -------------------------------------------------------------------------------------
MANIFEST = "manifest.json"
RELEASED = "released.json"


def payout_work_dir(ctx: RunContext) -> Path:
    return ctx.work_dir / "payout"


def payment_refs(ctx: RunContext) -> Path:
    """Every ledger line's payment reference, as the payout files carry it (publish reads it)."""
    return payout_work_dir(ctx) / "payment_refs.parquet"


def payout_records(ctx: RunContext) -> Path:
    return payout_work_dir(ctx) / "records.parquet"


def payouts_dir_of(ctx: RunContext, month: str | None = None) -> Path:
    """The payouts folder of this month, or of another month under the same output root."""
    return ctx.payouts_dir if month is None else ctx.out / month / "payouts"


def manifest(ctx: RunContext, month: str | None = None) -> Path:
    """The payout manifest: every payout file with its hash and totals."""
    return payouts_dir_of(ctx, month) / MANIFEST


def released_marker(ctx: RunContext, month: str | None = None) -> Path:
    """Written when the finance bureau releases the month's batches to the banks."""
    return payouts_dir_of(ctx, month) / RELEASED


# --- report -------------------------------------------------------------------------------------
def reconciliation_html(ctx: RunContext) -> Path:
    return ctx.reports_dir / "reconciliation.html"


def reconciliation_xlsx(ctx: RunContext) -> Path:
    return ctx.reports_dir / "reconciliation.xlsx"


def quarantine_xlsx(ctx: RunContext) -> Path:
    return ctx.reports_dir / "quarantine.xlsx"


def temporary_assistance_xlsx(ctx: RunContext) -> Path:
    return ctx.reports_dir / "temporary_assistance.xlsx"


def exceptions_xlsx(ctx: RunContext) -> Path:
    return ctx.reports_dir / "exceptions.xlsx"


def exceptions_html(ctx: RunContext) -> Path:
    return ctx.reports_dir / "exceptions.html"


def caseworker_pages_dir(ctx: RunContext) -> Path:
    return ctx.reports_dir / "validation"


def statistical_return_xlsx(ctx: RunContext) -> Path:
    return ctx.reports_dir / "statistical_return.xlsx"


# --- per roster program -------------------------------------------------------------------------
def roster_outputs(ctx: RunContext, per_program) -> list[Path]:
    """A stage's output per roster program (`per_program(ctx, program)`, e.g. ingested_files):
    every monthly program's, and a one-off program's where the month delivered its folder (contract
    section 1: it may be absent). A folder delivered whose output is missing stops the run: its
    cases would be dropped without a word."""
    from pipelines.io import entry_kind, inbox_path

    paths = [per_program(ctx, p) for p in PROGRAMS]
    for p in ONE_OFF_PROGRAMS:
        path = per_program(ctx, p)
        delivered = entry_kind(inbox_path(ctx.inbox) / ctx.month / "rosters" / p) != "missing"
        if path.exists() or delivered:
            paths.append(path)
    return paths
