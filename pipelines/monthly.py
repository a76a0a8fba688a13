"""The monthly run as an ordered list of stage calls: what `doudi run` executes, unpartitioned (the
DAG runs the same stages partitioned by city, pipelines/partitions.py, to the same books).

Every stage takes the RunContext and returns a small dict (paths, counts). A stage reads only the
files earlier stages wrote under `<out>/<YYYY-MM>/_work/` and writes its own outputs atomically,
so any stage can be rerun on its own and a crash leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pipelines import stages as registry
from pipelines.faults import checkpoint
from pipelines.ingest import month_inbox
from pipelines.lifecycle import begin_run, month_lock
from pipelines.settings import RunContext, RunError

Step = tuple[str, Callable[[], dict | list]]


def _per_program(ctx: RunContext, stage: registry.Stage) -> Iterator[Step]:
    for program in registry.PROGRAMS:
        yield f"{stage.name}[{program}]", lambda program=program: registry.call(ctx, stage, program)


def stages(ctx: RunContext) -> list[Step]:
    """The stages of pipelines/stages.py, each whole: `<stage>` or `<stage>[<program>]`."""
    out: list[Step] = []
    for stage in registry.STAGES:
        if stage.per_program:
            out += _per_program(ctx, stage)
        else:
            out.append((stage.name, lambda stage=stage: registry.call(ctx, stage)))
    return out


def partitioned_stages(ctx: RunContext) -> Iterator[Step]:
    """The stages as the monthly DAG cuts them (validation per city, the engine per closed group of
    cities), one after another in this process: what bench/ runs above one shard's size, where a
    whole program's frame would not fit in memory.

    A generator, because the partitions are known only once the planning step has run: the caller
    must call each step before asking for the next (bench/run.py does)."""
    for stage in registry.STAGES:
        if stage.cut is None:
            yield from _per_program(ctx, stage) if stage.per_program else \
                [(stage.name, lambda stage=stage: registry.call(ctx, stage))]
            continue
        parts: list[str] = []
        yield (f"{stage.name}[plan]",
               lambda stage=stage, parts=parts: parts.extend(registry.plan(ctx, stage)) or list(parts))
        for partition in parts:
            yield f"{stage.name}[{partition}]", lambda stage=stage, p=partition: registry.part(ctx, stage, p)
        yield f"{stage.name}[combine]", lambda stage=stage, parts=parts: registry.combine(ctx, stage, parts)


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
