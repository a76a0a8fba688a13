"""The stages of the monthly run, declared once: name, function, what each reads and writes, and how
the DAG cuts it. Everything that runs the month is derived from STAGES:

- `doudi run` and bench's single mode (pipelines/monthly.py `stages`): each stage whole, a
  per-program stage once per roster program;
- the partitioned runner (monthly.py `partitioned_stages`, bench above one shard): a cut stage as
  plan, one call per partition, combine;
- the monthly DAG (dags/monthly_disbursement.py): one task per stage, mapped over programs or
  partitions, in this order, in the task group each stage names;
- the missing-input error: before a stage runs, each file it reads must be there, else one sentence
  names the file and the stage that writes it (`check_reads`).

Functions are named as "module:function" and imported when called: the DAG file imports this
module while Airflow parses it, so it stays light (settings and artefact paths only).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipelines import artefacts
from pipelines.settings import ROSTER_PROGRAMS, RunContext, RunError


@dataclass(frozen=True)
class Artefact:
    """Files a stage writes and later stages read, by what they are to a person."""
    name: str
    paths: Callable[[RunContext], list[Path]]
    # an Airflow Asset for operators: the DAG's task that writes it updates the asset (uri)
    asset_uri: str | None = None


REFERENCE_CHECK = Artefact("the reference check", lambda ctx: [artefacts.reference_check(ctx)])
INGESTED = Artefact("the ingested rosters", lambda ctx: artefacts.roster_outputs(ctx, artefacts.ingested_rows)
                    + artefacts.roster_outputs(ctx, artefacts.ingested_files))
VALIDATED = Artefact("the validated rosters", lambda ctx: artefacts.roster_outputs(ctx, artefacts.validated_rows))
CHECKED_ROSTER = Artefact("the checked roster", lambda ctx: [
    artefacts.integrity_roster(ctx), artefacts.integrity_findings(ctx), artefacts.registry_extracts(ctx),
    artefacts.deaths_known(ctx)])
LEDGER = Artefact("the month's ledger", lambda ctx: [
    artefacts.ledger(ctx), artefacts.compute_findings(ctx), artefacts.receivables(ctx)])
PAYOUT_FILES = Artefact("the payout files", lambda ctx: [
    artefacts.manifest(ctx), artefacts.payment_refs(ctx), artefacts.payout_records(ctx)],
    asset_uri="doudi://month/payouts")
WAREHOUSE = Artefact("the warehouse", lambda ctx: [ctx.warehouse], asset_uri="doudi://warehouse")
REPORTS = Artefact("the month's reports", lambda ctx: [artefacts.reconciliation_html(ctx),
                                                       artefacts.reconciliation_xlsx(ctx)],
                   asset_uri="doudi://month/reports")


@dataclass(frozen=True)
class Cut:
    """How the DAG (and the partitioned runner) cuts a stage: `plan(ctx)` names the partitions,
    `part(ctx, partition)` runs one, `combine(ctx, partitions)` joins them. A month below
    settings.partition_min_rows plans one partition (partitions.WHOLE_MONTH)."""
    by: str  # what a partition is, for people: "city", "payment group"
    plan: str
    part: str
    combine: str


@dataclass(frozen=True)
class Stage:
    name: str
    run: str  # "module:function", called (ctx), or (ctx, program) for a per-program stage
    group: str  # the DAG's task group: read, check, pay, deliver
    reads: tuple[Artefact, ...] = ()
    writes: tuple[Artefact, ...] = ()
    per_program: bool = False  # `doudi run` calls it once per roster program (ingest, validate)
    cut: Cut | None = None
    # the DAG's task holds the month's lock while it runs: one writer of the payout folder and the
    # warehouse at a time (`doudi run` holds it for the whole month)
    holds_lock: bool = False


STAGES: tuple[Stage, ...] = (
    Stage("check_reference", "pipelines.reference:check_reference", "read", writes=(REFERENCE_CHECK,)),
    Stage("ingest", "pipelines.stages:ingest_program", "read", writes=(INGESTED,), per_program=True),
    Stage("validate", "pipelines.validate:validate_program", "check", reads=(INGESTED,), writes=(VALIDATED,),
          per_program=True, cut=Cut("city", "pipelines.partitions:plan_validation_partitions",
                                    "pipelines.validate:validate_partition", "pipelines.validate:combine_validation")),
    Stage("integrity", "pipelines.integrity:check_integrity", "check", reads=(VALIDATED,),
          writes=(CHECKED_ROSTER,)),
    Stage("compute", "pipelines.compute:compute_payments", "pay", reads=(REFERENCE_CHECK, CHECKED_ROSTER),
          writes=(LEDGER,), cut=Cut("payment group", "pipelines.partitions:plan_compute_partitions",
                                    "pipelines.compute:compute_partition", "pipelines.compute:combine_compute")),
    Stage("payout", "pipelines.payout:write_payouts", "deliver", reads=(LEDGER,), writes=(PAYOUT_FILES,),
          holds_lock=True),
    Stage("publish", "pipelines.warehouse:publish_month", "deliver", reads=(CHECKED_ROSTER, LEDGER, PAYOUT_FILES),
          writes=(WAREHOUSE,), holds_lock=True),
    Stage("report", "pipelines.report:reconcile_and_report", "deliver", reads=(PAYOUT_FILES, WAREHOUSE),
          writes=(REPORTS,)),
)
BY_NAME = {s.name: s for s in STAGES}
# the DAG's task groups, in the order a bureau reads the month (with their tooltips)
GROUPS = {"read": "参考数据与名册读取", "check": "逐行校验（按市）与跨县核查", "pay": "计算应发金额（按市组）",
          "deliver": "代发文件、入库与报表"}
PROGRAMS = ROSTER_PROGRAMS  # what a per-program stage is mapped over


def function(dotted: str) -> Callable:
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


def ingest_program(ctx: RunContext, program: str) -> dict:
    """ingest, given last month's file counts from the warehouse (its row-swing check compares)."""
    from pipelines.ingest import ingest_program as ingest
    from pipelines.warehouse import previous_file_counts

    return ingest(ctx, program, previous_file_counts(ctx).get(program, {}))


def writer_of(artefact: Artefact) -> Stage:
    return next(s for s in STAGES if artefact in s.writes)


def check_reads(ctx: RunContext, stage: Stage) -> None:
    """Every file the stage reads is there; else one sentence: which file, and which stage writes it."""
    for artefact in stage.reads:
        missing = [p for p in artefact.paths(ctx) if not p.exists()]
        if missing:
            writer = writer_of(artefact).name
            raise RunError(f"{stage.name} needs {artefact.name} ({missing[0]}), which the {writer} stage writes: "
                           f"run {writer} for {ctx.month} first")


def call(ctx: RunContext, stage: Stage, program: str | None = None) -> dict:
    """The stage whole (or for one program), after checking what it reads."""
    check_reads(ctx, stage)
    fn = function(stage.run)
    return fn(ctx) if program is None else fn(ctx, program)


def plan(ctx: RunContext, stage: Stage) -> list[str]:
    check_reads(ctx, stage)
    return list(function(stage.cut.plan)(ctx))


def part(ctx: RunContext, stage: Stage, partition: str) -> dict:
    return function(stage.cut.part)(ctx, partition)


def combine(ctx: RunContext, stage: Stage, partitions: list[str]) -> dict:
    return function(stage.cut.combine)(ctx, list(partitions))


def whole_month(partitions: list[str]) -> bool:
    """The plan of a month below settings.partition_min_rows: one partition for everything."""
    from pipelines.partitions import WHOLE_MONTH

    return list(partitions) == [WHOLE_MONTH]
