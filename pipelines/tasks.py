"""The Airflow tasks' bodies: one function per task, each calling one stage function.

Tasks pass a small `run` dict (where the month's inbox, reference data, outputs and warehouse are)
and the stages' small result dicts, never data. A RunError means the data cannot be paid as
delivered: the task fails at once without retries (retrying cannot fix a roster); any other
exception is left to Airflow's retries (a full disk, a locked warehouse).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import os

from pipelines import artefacts
from pipelines.settings import RunContext, RunError, keep_new_files_owner_only

# every task imports this module before it does anything: the worker's files (and the task's log,
# which Airflow creates with the logging permissions the Makefile sets) are owner-only
keep_new_files_owner_only()


def _heap_settled_after(fn):
    """After a task, move every object still alive into the collector's permanent generation
    (gc.freeze): what a task imported (Airflow, pandas, GX: about 900k objects under `airflow dags
    test`, which runs all the month's tasks in one process) is then not walked again by each later
    full collection: 1.6-2.0 s of full collections a demo month instead of 2.6 s (bench/README.md,
    2026-12-07). A worker's task process ends after its task and loses nothing by it."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            gc.freeze()

    return wrapper


# ...and hand them back before the interpreter exits, so that its last collection frees them: left
# frozen, DuckDB's bindings (nanobind) report their objects as leaked on stderr at exit
atexit.register(gc.unfreeze)


def _no_retry_on_data_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RunError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(str(exc)) from exc

    return wrapper


def _while_claimed(fn):
    """A task of the monthly DAG works only while its run holds the month's claim (claim_month):
    a `doudi run` of the same month, or another DAG run, cannot slip in between two tasks."""
    @functools.wraps(fn)
    def wrapper(run: dict, *args, **kwargs):
        from pipelines.lifecycle import refuse_unless_claimed_by

        refuse_unless_claimed_by(_ctx(run), run.get("claim") or None)
        return fn(run, *args, **kwargs)

    return wrapper


@_heap_settled_after
def resolve_run(params: dict, logical_month: str | None = None, run_id: str | None = None) -> dict:
    """The run dict from the DAG's params; the payroll month may come from the logical date.
    `claim` names the DAG run, which claims the month for its tasks (claim_month)."""
    month = (params.get("payroll_month") or logical_month or "").strip()
    if not month:
        raise RunError("no payroll month: trigger with conf {\"payroll_month\": \"YYYY-MM\"}")
    ctx = RunContext.from_env(month, supplementary=bool(params.get("supplementary")),
                              inbox=params.get("inbox") or "", reference=params.get("reference") or "",
                              out=params.get("out") or "", warehouse=params.get("warehouse") or "")
    claim = f"Airflow run {run_id} of monthly_disbursement" if run_id else ""
    return dict(ctx.as_dict(), first_month="1" if params.get("first_month") else "", claim=claim)


def _ctx(run: dict) -> RunContext:
    return RunContext.from_dict(run)


@_heap_settled_after
@_no_retry_on_data_errors
def claim_month(run: dict) -> dict:
    """The DAG's setup task: the month is this run's until release_month."""
    from pipelines.lifecycle import claim_month as claim

    if not run.get("claim"):
        raise RunError("this DAG run has no run id to claim the month with")
    return claim(_ctx(run), run["claim"])


@_heap_settled_after
def release_month(run: dict) -> bool:
    """The DAG's teardown task (run also when a task failed): give the month's claim back."""
    from pipelines.lifecycle import release_claim

    # a run without a claim of its own releases nothing (None would release anybody's claim)
    return bool(run.get("claim")) and release_claim(_ctx(run), run["claim"]) is not None


def _stage(name: str):
    from pipelines import stages

    return stages.BY_NAME[name]


@contextlib.contextmanager
def _as_the_dag(run: dict, stage):
    """What a stage's task does around the stage: the first stage begins the month's run (refused if
    released, or if the month before was not run); a stage that holds_lock takes the month's lock."""
    from pipelines import stages
    from pipelines.lifecycle import begin_run, month_lock

    if stage is stages.STAGES[0]:
        begin_run(_ctx(run), bool(run.get("first_month")), os.environ.get("AIRFLOW_CTX_DAG_OWNER"))
    if not stage.holds_lock:
        yield
        return
    os.environ.setdefault("DOUDI_OPERATOR", os.environ.get("AIRFLOW_CTX_DAG_OWNER", "airflow"))
    with month_lock(_ctx(run), run.get("claim") or None):
        yield


@_heap_settled_after
@_no_retry_on_data_errors
@_while_claimed
def stage(run: dict, name: str, program: str | None = None) -> dict:
    """One stage of pipelines/stages.py, whole (or for one program)."""
    from pipelines import stages

    with _as_the_dag(run, _stage(name)):
        return stages.call(_ctx(run), _stage(name), program)


@_heap_settled_after
@_no_retry_on_data_errors
@_while_claimed
def plan(run: dict, name: str) -> list[str]:
    """A cut stage's plan. A month below settings.partition_min_rows is one partition: the plan task
    then runs the stage whole, partition and combine in this one process, and leaves nothing to map
    (the mapped task and the combine are skipped without starting a process)."""
    from pipelines import stages

    ctx, cut = _ctx(run), _stage(name)
    partitions = stages.plan(ctx, cut)
    if not stages.whole_month(partitions):
        return partitions
    stages.part(ctx, cut, partitions[0])
    stages.combine(ctx, cut, partitions)
    return []


@_heap_settled_after
@_no_retry_on_data_errors
@_while_claimed
def partition(run: dict, name: str, part: str) -> dict:
    from pipelines import stages

    return stages.part(_ctx(run), _stage(name), part)


@_heap_settled_after
@_no_retry_on_data_errors
@_while_claimed
def combine(run: dict, name: str, parts: list[str]) -> dict:
    from pipelines import stages

    return stages.combine(_ctx(run), _stage(name), list(parts))


def partition_label(run: dict, partition: str) -> str:
    """The name of a mapped task's partition, for map_index_template (`2101 沈阳市`)."""
    from pipelines.partitions import partition_label as label

    return label(_ctx(run), partition)


def returns_waiting(run: dict) -> bool:
    """The bank_returns sensor: a return file in the month's inbox not yet loaded with these bytes."""
    from pipelines.bank_returns import return_folder_has_news

    return return_folder_has_news(_ctx(run))


@_no_retry_on_data_errors
def load_bank_returns(run: dict) -> dict:
    from pipelines.bank_returns import load_bank_returns as stage

    return stage(_ctx(run), run.get("by"))


@_no_retry_on_data_errors
def refresh_reports(run: dict, loaded: dict) -> list[str]:
    """Rewrite the reports of every payroll month the returns touched (and whose payouts exist)."""
    from pipelines.report import reconcile_and_report

    refreshed = []
    for month in loaded.get("payroll_months", []):
        ctx = RunContext.from_dict(dict(run, month=month))
        if artefacts.manifest(ctx).exists():
            reconcile_and_report(ctx)
            refreshed.append(month)
    return refreshed


def bank_returns_body(ctx: RunContext, who: str | None = None) -> dict:
    """The bank_returns DAG in one call, for the CLI (who: recorded as the loader)."""
    run = dict(ctx.as_dict(), by=who) if who else ctx.as_dict()
    loaded = load_bank_returns(run)
    return dict(loaded, reports_refreshed=refresh_reports(run, loaded))
