"""The DAGs: they import cleanly, and a real `airflow dags test` run pays four months correctly,
partitioned by city, to the same ledger as the unpartitioned CLI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.audits import book_differences
from pipelines.stages import STAGES
from tests.conftest import MONTHS, PROJECT
from tests.facts import assert_arrears_and_price, assert_month_facts, assert_never_paid_twice
from tests.test_reports import ACCOUNT_RE, ID_RE

UUID_RE = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)


@pytest.mark.stage  # Airflow parses the DAG files in-process: seconds, no month
def test_dagbag_imports_every_dag_with_tags_and_retries():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT / "dags"))
    assert bag.import_errors == {}
    assert "monthly_disbursement" in bag.dags
    for dag in bag.dags.values():
        assert dag.tags, dag.dag_id
        assert all(t.retries >= 1 for t in dag.tasks), dag.dag_id
    monthly = bag.dags["monthly_disbursement"]
    assert monthly.max_active_runs == 1
    assert {s.name for s in STAGES} <= set(monthly.task_ids)  # one task per stage of pipelines/stages.py
    assert {"plan_validate", "combine_validate", "plan_compute", "combine_compute"} <= set(monthly.task_ids)
    assert monthly.get_task("ingest").is_mapped and monthly.get_task("validate").is_mapped
    assert monthly.get_task("compute").is_mapped and not monthly.get_task("publish").is_mapped
    # the month is claimed for the whole run and given back even when a task failed
    assert monthly.get_task("claim_month").is_setup and monthly.get_task("release_month").is_teardown
    assert "release_month" in monthly.get_task("report").downstream_task_ids
    # the plan task of a cut stage runs a small month whole: its mapped task and combine are then
    # skipped, and the next stage goes on all the same
    assert monthly.get_task("integrity").trigger_rule == "none_failed"
    assert monthly.get_task("payout").trigger_rule == "none_failed"


@pytest.mark.unit
def test_dag_files_import_only_the_airflow_sdk():
    """DAG files wire; heavy imports (pandas, duckdb, GX) stay inside task bodies."""
    for path in (PROJECT / "dags").glob("*.py"):
        top_level = [ln for ln in path.read_text(encoding="utf-8").splitlines()
                     if ln.startswith(("import ", "from "))]
        for ln in top_level:
            assert ln.startswith(("from __future__", "from datetime", "from airflow.sdk", "import datetime")), ln


def test_airflow_dags_test_runs_four_months(tmp_path, sample_inbox, four_months):
    env = dict(os.environ)
    env.update({
        "DOUDI_INBOX": str(sample_inbox),
        "DOUDI_OUT": str(tmp_path / "out"),
        "DOUDI_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    })
    airflow = Path(sys.executable).parent / "airflow"
    logs = []
    started = time.time()
    for month in MONTHS:
        # a month this small is one partition per stage; the last is cut by city as a province is
        cut = {"DOUDI_PARTITION_MIN_ROWS": "0"} if month == MONTHS[-1] else {}
        proc = subprocess.run([str(airflow), "dags", "test", "monthly_disbursement", "--conf",
                               f'{{"payroll_month": "{month}"}}'], env=dict(env, **cut), capture_output=True,
                              text=True, timeout=600, check=False)
        tail = (proc.stdout + proc.stderr)[-3000:]
        assert proc.returncode == 0, tail
        assert "state=failed" not in proc.stdout + proc.stderr, tail
        assert_month_facts(tmp_path / "out", tmp_path / "warehouse.duckdb", month)
        # the run's teardown gave the month back: a `doudi run` of it is not refused
        assert not (tmp_path / f".warehouse.duckdb.{month}.claim").exists()
        logs.append(proc.stdout + proc.stderr)
    assert_arrears_and_price(tmp_path / "warehouse.duckdb")
    assert_never_paid_twice(tmp_path / "warehouse.duckdb")
    # the partitioned DAG and `doudi run` (the four_months fixture) on the same inbox: same books
    assert book_differences(four_months["warehouse"], tmp_path / "warehouse.duckdb") == {}
    def partitions(month):
        return {p.name for p in (tmp_path / "out" / month / "_work" / "validate" / "partitions").iterdir()}

    assert partitions(MONTHS[0]) == {"all"}
    cities = partitions(MONTHS[-1])
    assert len(cities) >= 10, cities
    # the mapped tasks of the last run are named by city (map_index_template), not numbered
    import sqlite3

    db = sqlite3.connect(Path(env.get("AIRFLOW_HOME", PROJECT / ".airflow")) / "airflow.db")
    try:
        names = {r[0] for r in db.execute(
            "SELECT rendered_map_index FROM task_instance WHERE task_id = 'validate' AND run_id = (SELECT run_id "
            "FROM dag_run WHERE dag_id = 'monthly_disbursement' ORDER BY start_date DESC LIMIT 1)")}
    finally:
        db.close()
    assert "2101 沈阳市" in names and len(names) == len(cities), names
    # the task logs (printed by `dags test`, and any written under AIRFLOW_HOME/logs by these runs)
    # never show a full ID number or account
    home = Path(env.get("AIRFLOW_HOME", Path.home() / "airflow")) / "logs"
    logs += [p.read_text(encoding="utf-8", errors="replace") for p in home.rglob("*")
             if p.is_file() and p.stat().st_mtime >= started]
    # Airflow prints task-instance UUIDs (ti_id=…-680468615316): a last group of 12 hex characters
    # is all digits about once in 280 UUIDs, which is not an account; take them out first
    text = UUID_RE.sub("<uuid>", "\n".join(logs))
    assert len(text) > 1000
    assert not ID_RE.search(text), ID_RE.search(text)
    assert not ACCOUNT_RE.search(text), ACCOUNT_RE.search(text)


def test_a_failed_dag_run_gives_its_month_back(tmp_path):
    """A DAG run whose task fails (here: a reference folder without fund_shares.csv) still runs its
    teardown: the month's claim is released, so the corrected month can be run at once."""
    from tests.test_lifecycle import make_inbox

    reference = tmp_path / "reference"
    shutil.copytree(PROJECT / "data" / "reference", reference)
    (reference / "fund_shares.csv").unlink()
    env = dict(os.environ, DOUDI_INBOX=str(make_inbox(tmp_path / "inbox", ["2020-01"])), DOUDI_REFERENCE=str(reference),
               DOUDI_OUT=str(tmp_path / "out"), DOUDI_WAREHOUSE=str(tmp_path / "warehouse.duckdb"),
               AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING")
    proc = subprocess.run([str(Path(sys.executable).parent / "airflow"), "dags", "test", "monthly_disbursement",
                           "--conf", '{"payroll_month": "2020-01"}'], env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "lacks fund_shares.csv" in output, output[-3000:]
    assert (tmp_path / ".warehouse.duckdb.2020-01.lock").exists()  # the month was claimed (under its lock)
    assert not list(tmp_path.glob(".warehouse.duckdb.*.claim")), output[-3000:]
