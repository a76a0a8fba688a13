"""The monthly run as an ordered list of stage calls: what `doudi run` executes, unpartitioned (the
DAG runs the same stages partitioned by city, pipelines/partitions.py, to the same books).

Every stage takes the RunContext and returns a small dict (paths, counts). A stage reads only the
files earlier stages wrote under `<out>/<YYYY-MM>/_work/` and writes its own outputs atomically,
so any stage can be rerun on its own and a crash leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pipelines.compute import combine_compute, compute_partition, compute_payments
from pipelines.faults import checkpoint
from pipelines.ingest import ingest_program, month_inbox
from pipelines.integrity import check_integrity
from pipelines.lifecycle import begin_run, month_lock
from pipelines.partitions import (
    combine_validation,
    plan_compute_partitions,
    plan_validation_partitions,
    validate_partition,
)
from pipelines.payout import write_payouts
from pipelines.reference import check_reference
from pipelines.report import reconcile_and_report
from pipelines.settings import ROSTER_PROGRAMS, RunContext, RunError
from pipelines.validate import validate_program
from pipelines.warehouse import previous_file_counts, publish_month


def _reading_stages(ctx: RunContext) -> list[tuple[str, Callable[[], dict]]]:
    """check_reference and ingest: the same whether the month is partitioned or not."""
    out: list[tuple[str, Callable[[], dict]]] = [("check_reference", lambda: check_reference(ctx))]
    previous = previous_file_counts(ctx)
    for p in ROSTER_PROGRAMS:
        out.append((f"ingest[{p}]", lambda p=p: ingest_program(ctx, p, previous.get(p, {}))))
    return out


def _writing_stages(ctx: RunContext) -> list[tuple[str, Callable[[], dict]]]:
    """payout, publish and report: on the whole month in either case."""
    return [
        ("payout", lambda: write_payouts(ctx)),
        ("publish", lambda: publish_month(ctx)),
        ("report", lambda: reconcile_and_report(ctx)),
    ]


def stages(ctx: RunContext) -> list[tuple[str, Callable[[], dict]]]:
    out = _reading_stages(ctx)
    for p in ROSTER_PROGRAMS:
        out.append((f"validate[{p}]", lambda p=p: validate_program(ctx, p)))
    out += [
        ("integrity", lambda: check_integrity(ctx)),
        ("compute", lambda: compute_payments(ctx)),
    ]
    return out + _writing_stages(ctx)


def partitioned_stages(ctx: RunContext) -> Iterator[tuple[str, Callable[[], dict | list]]]:
    """The stages as the monthly DAG cuts them (validation per city, the engine per closed group of
    cities), one after another in this process: what bench/ runs above one shard's size, where a
    whole program's frame would not fit in memory.

    A generator, because the partitions are known only once the planning stage has run: the caller
    must call each stage before asking for the next (bench/run.py does)."""
    yield from _reading_stages(ctx)
    cities: list[str] = []
    yield "validate[plan]", lambda: cities.extend(plan_validation_partitions(ctx)) or list(cities)
    for city in cities:
        yield f"validate[{city}]", lambda city=city: validate_partition(ctx, city)
    yield "validate[combine]", lambda: combine_validation(ctx, cities)
    yield "integrity", lambda: check_integrity(ctx)
    groups: list[str] = []
    yield "compute[plan]", lambda: groups.extend(plan_compute_partitions(ctx)) or list(groups)
    for group in groups:
        yield f"compute[{group}]", lambda group=group: compute_partition(ctx, group)
    yield "compute[combine]", lambda: combine_compute(ctx, groups)
    yield from _writing_stages(ctx)


def check_run_inputs(ctx: RunContext) -> None:
    """Before a run writes anything (its lock, its output folders): the month's inbox and the
    reference folder are there. A wrong path is then one sentence and nothing left behind."""
    month_inbox(ctx)
    if not ctx.reference.is_dir():
        raise RunError(f"no reference folder at {ctx.reference}: point --reference or DOUDI_REFERENCE at the "
                       "folder holding standards.csv, cpi.csv, ...")


def run_month(ctx: RunContext, on_stage: Callable[[str, dict], None] | None = None, first_month: bool = False,
              by: str | None = None) -> dict:
    """One month, holding its lock, once its lifecycle allows the run (pipelines/lifecycle.py)."""
    results = {}
    check_run_inputs(ctx)
    with month_lock(ctx):
        begin_run(ctx, first_month, by)
        for name, call in stages(ctx):
            results[name] = call()
            checkpoint(f"after:{name}")
            if on_stage:
                on_stage(name, results[name])
    return results
