"""monthly_disbursement: one payroll month, from delivered rosters to payout files and reports.

Wiring only: every task calls one function of pipelines.tasks. Trigger with
    airflow dags test monthly_disbursement --conf '{"payroll_month": "2020-03"}'
(inbox, reference, out and warehouse default to DOUDI_* environment variables; see README).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

PROGRAMS = ["dibao", "tekun", "orphan", "disability"]


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
    },
    doc_md=__doc__,
)
def monthly_disbursement():
    @task
    def resolve_run(params=None, logical_date=None) -> dict:
        from pipelines import tasks

        return tasks.resolve_run(params or {}, logical_date.strftime("%Y-%m") if logical_date else None)

    @task
    def check_reference(run: dict) -> dict:
        from pipelines import tasks

        return tasks.check_reference(run)

    @task
    def ingest(run: dict, program: str) -> dict:
        from pipelines import tasks

        return tasks.ingest(run, program)

    @task
    def validate(run: dict, ingested: dict) -> dict:
        from pipelines import tasks

        return tasks.validate(run, ingested)

    @task
    def integrity(run: dict, validated: list[dict]) -> dict:
        from pipelines import tasks

        # `validated` orders this task after every validate instance; the stage reads their files
        return tasks.integrity(run)

    @task
    def compute(run: dict, checked: dict) -> dict:
        from pipelines import tasks

        return tasks.compute(run)

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
    reference_ok = check_reference(run)
    ingested = ingest.partial(run=run).expand(program=PROGRAMS)
    reference_ok >> ingested
    validated = validate.partial(run=run).expand(ingested=ingested)
    checked = integrity(run, validated)
    computed = compute(run, checked)
    paid = payout(run, computed)
    published = publish(run, paid)
    report(run, published)


monthly_disbursement()
