"""monthly_disbursement: one payroll month, from delivered rosters to payout files and reports.

The month is partitioned so that a deployment with several workers (CeleryExecutor, see
deploy/celery/) spreads the heavy stages: ingest is mapped per program, validation per city, the
payment engine per closed group of cities (pipelines/partitions.py says why these cuts change
nothing). A month below DOUDI_PARTITION_MIN_ROWS roster rows is one partition (`all`): a task costs
a process and its imports whatever its size, so a small month runs each stage as one task.
Integrity's cross-county checks run once on the combined result, and one task (publish) writes the
warehouse. The ledger is the same as `doudi run`'s (tests/test_dags.py).

Wiring only: every task calls one function of pipelines.tasks. Trigger with
    airflow dags test monthly_disbursement --conf '{"payroll_month": "2020-03"}'
(inbox, reference, out and warehouse default to DOUDI_* environment variables; see README).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, TaskGroup, dag, setup, task, teardown

# pipelines.settings.ROSTER_PROGRAMS (the DAG file imports only the Airflow SDK): temporary assistance
# (临时救助) is read like the monthly programs; its folder may be absent
PROGRAMS = ["dibao", "tekun", "orphan", "disability", "temporary"]


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
    @task
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

    @task
    def check_reference(run: dict) -> dict:
        from pipelines import tasks

        return tasks.check_reference(run)

    @task(map_index_template="{{ partition_label }}")
    def ingest(run: dict, program: str) -> dict:
        from airflow.sdk import get_current_context

        from pipelines import tasks

        get_current_context()["partition_label"] = program
        return tasks.ingest(run, program)

    @task
    def plan_cities(run: dict, ingested: list[dict]) -> list[str]:
        from pipelines import tasks

        # `ingested` orders this task after every ingest instance; the plan reads their files
        return tasks.plan_cities(run)

    # mapped tasks are named by their partition (`2101 沈阳市`, `全月 (未分市)`), not 0..13
    @task(map_index_template="{{ partition_label }}")
    def validate(run: dict, city: str) -> dict:
        from airflow.sdk import get_current_context

        from pipelines import tasks

        get_current_context()["partition_label"] = tasks.partition_label(run, city)
        return tasks.validate_city(run, city)

    @task
    def combine_validation(run: dict, cities: list[str], validated: list[dict]) -> dict:
        from pipelines import tasks

        return tasks.combine_validation(run, cities)

    @task
    def integrity(run: dict, combined: dict) -> dict:
        from pipelines import tasks

        return tasks.integrity(run)

    @task
    def plan_payment_groups(run: dict, checked: dict) -> list[str]:
        from pipelines import tasks

        return tasks.plan_payment_groups(run)

    @task(map_index_template="{{ partition_label }}")
    def compute(run: dict, group: str) -> dict:
        from airflow.sdk import get_current_context

        from pipelines import tasks

        get_current_context()["partition_label"] = tasks.partition_label(run, group)
        return tasks.compute_group(run, group)

    @task
    def combine_compute(run: dict, groups: list[str], computed: list[dict]) -> dict:
        from pipelines import tasks

        return tasks.combine_compute(run, groups)

    @task
    def payout(run: dict, computed: dict) -> dict:
        from pipelines import tasks

        return tasks.payout(run)

    @task
    def publish(run: dict, paid: dict) -> dict:
        from pipelines import tasks

        return tasks.publish(run)

    @task
    def report(run: dict, published: dict) -> dict:
        from pipelines import tasks

        return tasks.report(run)

    run = resolve_run()
    # the month is this run's from claim_month to release_month: no `doudi run` between two tasks
    claimed = claim_month(run)
    # four boxes in the graph view, in the order a bureau reads the month: what arrived, whether it is
    # right, what is owed, what was sent and recorded (task ids stay as they are: no group prefix)
    with TaskGroup("read", prefix_group_id=False, tooltip="参考数据与名册读取"):
        reference_ok = check_reference(run)
        claimed >> reference_ok
        ingested = ingest.partial(run=run).expand(program=PROGRAMS)
        reference_ok >> ingested
    with TaskGroup("check", prefix_group_id=False, tooltip="逐行校验（按市）与跨县核查"):
        cities = plan_cities(run, ingested)
        validated = validate.partial(run=run).expand(city=cities)
        checked = integrity(run, combine_validation(run, cities, validated))
    with TaskGroup("pay", prefix_group_id=False, tooltip="计算应发金额（按市组）"):
        groups = plan_payment_groups(run, checked)
        computed = combine_compute(run, groups, compute.partial(run=run).expand(group=groups))
    with TaskGroup("deliver", prefix_group_id=False, tooltip="代发文件、入库与报表"):
        paid = payout(run, computed)
        published = publish(run, paid)
        reported = report(run, published)
    reported >> release_month(run).as_teardown(setups=claimed)


monthly_disbursement()
