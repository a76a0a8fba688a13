"""bank_returns: load the banks' return files of a month, set each payment's state (paid / failed)
and refresh the three-way reconciliation and the reports, without rerunning the payroll.

Wiring only: every task calls one function of pipelines.tasks. Runs every 30 minutes: the sensor
looks for return files in `<inbox>/<YYYY-MM>/bank_returns/` (YYYY-MM: the run's month, or
`payroll_month` in conf) whose bytes are not loaded yet; with none it skips the run. By hand:
    airflow dags test bank_returns --conf '{"payroll_month": "2020-03"}'
Failed payments are reissued by the next monthly_disbursement run once the account is corrected.
A load only adds facts (pipelines/bank_returns.py): files loaded before stay loaded whatever the
folder holds now; a file is withdrawn only by `doudi withdraw-return`, recorded with who and why.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task


@dag(
    dag_id="bank_returns",
    schedule="*/30 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # one warehouse writer
    tags=["doudi", "bank"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20), "owner": "doudi"},
    params={
        "payroll_month": Param("", type="string", description="YYYY-MM whose bank_returns folder to read; "
                                                             "blank = the run's logical month"),
        "inbox": Param("", type="string", description="inbox root (blank: DOUDI_INBOX)"),
        "reference": Param("", type="string", description="reference folder (blank: DOUDI_REFERENCE)"),
        "out": Param("", type="string", description="output root (blank: DOUDI_OUT)"),
        "warehouse": Param("", type="string", description="warehouse DuckDB file (blank: DOUDI_WAREHOUSE)"),
    },
    doc_md=__doc__,
)
def bank_returns():
    @task(multiple_outputs=False)  # one XCom a task (pipelines' monthly_disbursement.py says why)
    def resolve_run(params=None, logical_date=None) -> dict:
        from pipelines import tasks

        return tasks.resolve_run(params or {}, logical_date.strftime("%Y-%m") if logical_date else None)

    @task.sensor(poke_interval=60, timeout=25 * 60, mode="reschedule", soft_fail=True)
    def returns_waiting(run: dict) -> bool:
        from pipelines import tasks

        return tasks.returns_waiting(run)

    @task(multiple_outputs=False)
    def load_bank_returns(run: dict) -> dict:
        from pipelines import tasks

        return tasks.load_bank_returns(run)

    @task
    def refresh_reports(run: dict, loaded: dict) -> list[str]:
        from pipelines import tasks

        return tasks.refresh_reports(run, loaded)

    run = resolve_run()
    waiting = returns_waiting(run)
    loaded = load_bank_returns(run)
    waiting >> loaded
    refresh_reports(run, loaded)


bank_returns()
