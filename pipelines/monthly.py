"""The monthly run as an ordered list of stage calls: what `doudi run` executes, unpartitioned (the
DAG runs the same stages partitioned by city, pipelines/partitions.py, to the same books).

Every stage takes the RunContext and returns a small dict (paths, counts). A stage reads only the
files earlier stages wrote under `<out>/<YYYY-MM>/_work/` and writes its own outputs atomically,
so any stage can be rerun on its own and a crash leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Callable

from pipelines.compute import compute_payments
from pipelines.faults import checkpoint
from pipelines.ingest import ingest_program
from pipelines.integrity import check_integrity
from pipelines.payout import write_payouts
from pipelines.reference import check_reference
from pipelines.report import reconcile_and_report
from pipelines.settings import PROGRAMS, RunContext
from pipelines.validate import validate_program
from pipelines.warehouse import previous_file_counts, publish_month


def stages(ctx: RunContext) -> list[tuple[str, Callable[[], dict]]]:
    out: list[tuple[str, Callable[[], dict]]] = [("check_reference", lambda: check_reference(ctx))]
    previous = previous_file_counts(ctx)
    for p in PROGRAMS:
        out.append((f"ingest[{p}]", lambda p=p: ingest_program(ctx, p, previous.get(p, {}))))
    for p in PROGRAMS:
        out.append((f"validate[{p}]", lambda p=p: validate_program(ctx, p)))
    out += [
        ("integrity", lambda: check_integrity(ctx)),
        ("compute", lambda: compute_payments(ctx)),
        ("payout", lambda: write_payouts(ctx)),
        ("publish", lambda: publish_month(ctx)),
        ("report", lambda: reconcile_and_report(ctx)),
    ]
    return out


def run_month(ctx: RunContext, on_stage: Callable[[str, dict], None] | None = None) -> dict:
    results = {}
    for name, call in stages(ctx):
        results[name] = call()
        checkpoint(f"after:{name}")
        if on_stage:
            on_stage(name, results[name])
    return results
