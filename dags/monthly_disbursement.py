"""monthly_disbursement: one payroll month, from delivered rosters to payout files and reports.

The tasks are the stages of pipelines/stages.py, in its order and task groups (read, check, pay,
deliver); this file only wires them. A per-program stage (ingest) is mapped over the roster
programs; a cut stage is a plan task, a task mapped over its partitions and a combine task:
validation per city, the payment engine per closed group of cities (pipelines/partitions.py says
why these cuts change nothing), so a deployment with several workers (CeleryExecutor, see
deploy/celery/) spreads them. A month below DOUDI_PARTITION_MIN_ROWS roster rows is not cut: its
plan task runs the stage whole and maps nothing, so the mapped task and the combine are skipped
without starting a process (a task costs a process and its imports whatever its size). Integrity's
cross-county checks run once on the combined result, and one task (publish) writes the warehouse.
The ledger is the same as `doudi run`'s (tests/test_dags.py). The payout files, the warehouse and
the reports are Airflow assets: the task that writes one records an asset event with the month.

Every task calls one function of pipelines.tasks. Trigger with
    airflow dags test monthly_disbursement --conf '{"payroll_month": "2020-03"}'
(inbox, reference, out and warehouse default to DOUDI_* environment variables; see README).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, TaskGroup, dag, setup, task, teardown


@dag(
    dag_id="monthly_disbursement",
    schedule=None,  # the bureau triggers a month once its inbox is complete
    start_date=datetime(2020, 1, 1),
    catchup=False,
    max_active_runs=1,  # one writer per warehouse; months run in order
    tags=["doudi", "payroll"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20), "owner": "doudi"},
    params={
        "payroll_month": Param("", type="string", description="YYYY-MM; blank = the run's logical month"),
        "inbox": Param("", type="string", description="inbox root (blank: DOUDI_INBOX)"),
        "reference": Param("", type="string", description="reference folder (blank: DOUDI_REFERENCE)"),
        "out": Param("", type="string", description="output root (blank: DOUDI_OUT)"),
        "warehouse": Param("", type="string", description="warehouse DuckDB file (blank: DOUDI_WAREHOUSE)"),
        "supplementary": Param(False, type="boolean",
                               description="rerun a released month: pay only what its released batches lack"),
        "first_month": Param(False, type="boolean",
                             description="start the warehouse's history at this month (the month before is not run)"),
    },
    doc_md=__doc__,
)
def monthly_disbursement():
    # multiple_outputs=False: a `-> dict` annotation alone makes TaskFlow push each key of the result
    # as an XCom of its own (108 a month instead of one a task, each a request and a database write)
    @task(multiple_outputs=False)
    def resolve_run(params=None, logical_date=None, run_id=None) -> dict:
        from pipelines import tasks

        return tasks.resolve_run(params or {}, logical_date.strftime("%Y-%m") if logical_date else None, run_id)

    @setup
    def claim_month(run: dict) -> dict:
        from pipelines import tasks

        return tasks.claim_month(run)

    @teardown
    def release_month(run: dict) -> bool:
        from pipelines import tasks

        return tasks.release_month(run)

    # the registry is light (settings and artefact paths): parsing the DAG imports no stage
    from pipelines.stages import GROUPS, PROGRAMS, STAGES

    def _announce(run: dict, label: str | None = None) -> None:
        """Name a mapped task by its partition (`2101 沈阳市`, not 0..13), and give each asset event
        the month it is of."""
        from airflow.sdk import get_current_context

        context = get_current_context()
        if label is not None:
            context["partition_label"] = label
        for outlet in context["task"].outlets:
            context["outlet_events"][outlet].extra = {"payroll_month": run["month"]}

    @task(multiple_outputs=False)
    def stage(run: dict, name: str, program: str | None = None) -> dict:
        from pipelines import tasks

        _announce(run, program)
        return tasks.stage(run, name, program)

    @task
    def plan(run: dict, name: str) -> list[str]:
        from pipelines import tasks

        return tasks.plan(run, name)

    @task(multiple_outputs=False)
    def partition(run: dict, name: str, part: str) -> dict:
        from pipelines import tasks

        _announce(run, tasks.partition_label(run, part))
        return tasks.partition(run, name, part)

    @task(multiple_outputs=False)
    def combine(run: dict, name: str, parts: list[str], done: list[dict]) -> dict:
        from pipelines import tasks

        _announce(run)
        # `done` orders this task after every partition; the stage reads their files
        return tasks.combine(run, name, parts)

    run = resolve_run()
    # the month is this run's from claim_month to release_month: no `doudi run` between two tasks
    claimed = claim_month(run)
    before, after_cut = [claimed], False
    groups = {}
    for s in STAGES:
        if s.group not in groups:  # task ids stay the stages' names: no group prefix
            groups[s.group] = TaskGroup(s.group, prefix_group_id=False, tooltip=GROUPS[s.group])
        outlets = [Asset(a.asset_uri) for a in s.writes if a.asset_uri]
        # after a cut stage whose month was too small to cut, its combine is skipped: go on all the same
        rule = {"trigger_rule": "none_failed"} if after_cut else {}
        with groups[s.group]:
            if s.cut is not None:
                planned = plan.override(task_id=f"plan_{s.name}", **rule)(run, s.name)
                parts = partition.override(task_id=s.name, map_index_template="{{ partition_label }}") \
                    .partial(run=run, name=s.name).expand(part=planned)
                combined = combine.override(task_id=f"combine_{s.name}", outlets=outlets)(run, s.name, planned, parts)
                now = [planned, combined]
            elif s.per_program:
                now = [stage.override(task_id=s.name, map_index_template="{{ partition_label }}", outlets=outlets,
                                      **rule).partial(run=run, name=s.name).expand(program=list(PROGRAMS))]
            else:
                now = [stage.override(task_id=s.name, outlets=outlets, **rule)(run, s.name)]
        before >> now[0]
        before, after_cut = now, s.cut is not None
    before >> release_month(run).as_teardown(setups=claimed)


monthly_disbursement()
