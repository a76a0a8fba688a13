"""Partitions (issue 9): the DAG's partitioned stages give the ledger `doudi run` gives.

The month is cut by city for validation and into closed groups of cities for the payment engine.
These tests call the DAG's task functions in order (the whole DAG runs under Airflow in
tests/test_dags.py) on an inbox built so that the cuts matter: a person paid by dibao in one city
and by a disability subsidy in another (one price subsidy between them, so their cities must be
one group), and a failed payment whose payee has moved to another city by the next month (its
reissue is computed where the person now is, from the ledger's history)."""

from __future__ import annotations

import duckdb
import pytest

from pipelines import tasks
from pipelines.audits import book_differences
from pipelines.monthly import partitioned_stages, run_month
from pipelines.partitions import WHOLE_MONTH, plan_compute_partitions, plan_validation_partitions
from pipelines.payout import release
from pipelines.stages import PROGRAMS, STAGES
from tests.helpers import context, query, roster_path, write_csv
from tests.test_engine_golden import DIBAO, DISABILITY, TEKUN, common, person

SHENYANG, DALIAN, ANSHAN = "210102", "210202", "210302"


@pytest.fixture(autouse=True)
def cut_every_month_by_city(monkeypatch):
    """These inboxes are a handful of rows: below settings.partition_min_rows a month is one
    partition, so the cuts are forced here (one test below leaves the default)."""
    monkeypatch.setenv("DOUDI_PARTITION_MIN_ROWS", "0")


def _in(city, row):
    return [city] + row[1:]


def _inbox(inbox, month, tekun_city: str):
    both = person(91, "19600101")          # dibao in Dalian, disability subsidy in Shenyang
    head = person(92, "19700101")          # an ordinary household in Anshan
    failed = person(93, "19400101")        # tekun; the bank returns January's payment
    ym = month.replace("-", "")
    write_csv(roster_path(inbox, month, "dibao", f"{DALIAN}_dibao_{ym}.csv"), DIBAO,
              [_in(DALIAN, common(both)) + ["HD", "户主", 1, "0", ""]])
    write_csv(roster_path(inbox, month, "dibao", f"{ANSHAN}_dibao_{ym}.csv"), DIBAO,
              [_in(ANSHAN, common(head)) + ["HA", "户主", 1, "0", ""]])
    write_csv(roster_path(inbox, month, "disability", f"{SHENYANG}_disability_{ym}.csv"), DISABILITY,
              [common(both) + ["护理补贴", both["id"] + "11", "肢体", "一级"]])
    write_csv(roster_path(inbox, month, "tekun", f"{tekun_city}_tekun_{ym}.csv"), TEKUN,
              [_in(tekun_city, common(failed)) + ["分散供养", "全自理", ""]])
    return failed


def _dag_order(ctx) -> dict[str, list[str]]:
    """The monthly DAG's tasks, called as the DAG calls them, in the registry's order (the DAG is
    derived from the same STAGES), partition by partition; returns each cut stage's partitions (none
    where the plan task ran the stage whole)."""
    run = ctx.as_dict()
    planned = {}
    for stage in STAGES:
        if stage.cut is not None:
            planned[stage.name] = tasks.plan(run, stage.name)
            for part in planned[stage.name]:
                tasks.partition(run, stage.name, part)
            if planned[stage.name]:
                tasks.combine(run, stage.name, planned[stage.name])
        elif stage.per_program:
            for program in PROGRAMS:
                tasks.stage(run, stage.name, program)
        else:
            tasks.stage(run, stage.name)
    return planned


def test_partitioned_tasks_give_the_unpartitioned_ledger(tmp_path):
    inbox = tmp_path / "inbox"
    failed = _inbox(inbox, "2020-01", tekun_city=SHENYANG)
    single, parted = tmp_path / "single", tmp_path / "parted"
    run_month(context(single, "2020-01", inbox=inbox))
    groups = _dag_order(context(parted, "2020-01", inbox=inbox))["compute"]
    # Dalian and Shenyang share a person: one group, named after its smaller city; Anshan alone
    assert groups == ["2101", "2103"]

    # the bank returns the tekun payment; in February that person is on Anshan's roster, same account
    ref = query(single / "warehouse.duckdb", "SELECT payment_ref FROM payment_ledger WHERE id_number = ? "
                "AND line_type = 'regular'", [failed["id"]])[0][0]
    write_csv(inbox / "2020-02" / "bank_returns" / "ICBC_202001_回盘.csv", ["payment_ref", "status", "reason"],
              [[ref, "失败", "账户已销户"]])
    _inbox(inbox, "2020-02", tekun_city=ANSHAN)
    for base in (single, parted):
        release(context(base, "2020-01", inbox=inbox), "财政局")  # a bank answers only what it was sent
        tasks.bank_returns_body(context(base, "2020-02", inbox=inbox))
    run_month(context(single, "2020-02", inbox=inbox))
    _dag_order(context(parted, "2020-02", inbox=inbox))

    reissue = query(parted / "warehouse.duckdb", "SELECT status, hold_reason FROM payment_ledger WHERE "
                    "payroll_month = '2020-02' AND line_type = 'reissue' AND id_number = ?", [failed["id"]])
    assert reissue == [("held", "awaiting_account_correction")]
    price = query(parted / "warehouse.duckdb", "SELECT count(*) FROM payment_ledger WHERE line_type = "
                  "'price_subsidy' AND status = 'payable' AND id_number = ?", [person(91, "19600101")["id"]])
    assert price == query(single / "warehouse.duckdb", "SELECT count(*) FROM payment_ledger WHERE line_type = "
                          "'price_subsidy' AND status = 'payable' AND id_number = ?", [person(91, "19600101")["id"]])
    assert book_differences(single / "warehouse.duckdb", parted / "warehouse.duckdb") == {}
    assert query(parted / "warehouse.duckdb", "SELECT count(*) FROM payment_ledger")[0][0] > 4


def test_partitioned_stages_in_one_process_give_the_same_books(tmp_path):
    """What bench/ runs above 5M rows: the DAG's partitions one after another in one process."""
    inbox = tmp_path / "inbox"
    _inbox(inbox, "2020-01", tekun_city=SHENYANG)
    single, parted = tmp_path / "single", tmp_path / "parted"
    run_month(context(single, "2020-01", inbox=inbox))
    called = []
    for name, call in partitioned_stages(context(parted, "2020-01", inbox=inbox)):
        call()  # before asking for the next stage: the planning stages decide what follows
        called.append(name)
    assert "validate[2102]" in called and "compute[2101]" in called and "compute[2103]" in called
    assert called[-3:] == [s.name for s in STAGES[-3:]]  # the stages that are never cut
    assert book_differences(single / "warehouse.duckdb", parted / "warehouse.duckdb") == {}


def test_groups_close_over_people_and_households(tmp_path):
    """Label propagation: a household spanning two cities and a person in a third city joins them."""
    inbox = tmp_path / "inbox"
    a, b = person(95, "19700101"), person(96, "19720101", False)
    write_csv(roster_path(inbox, "2020-01", "dibao", "dibao.csv"), DIBAO, [
        _in(SHENYANG, common(a)) + ["HX", "户主", 2, "0", ""],
        _in(DALIAN, common(b)) + ["HX", "配偶", 2, "0", ""]])
    write_csv(roster_path(inbox, "2020-01", "disability", "d.csv"), DISABILITY,
              [_in(ANSHAN, common(b)) + ["护理补贴", b["id"] + "11", "肢体", "一级"]])
    ctx = context(tmp_path, "2020-01", inbox=inbox)
    run_month(ctx)
    assert plan_compute_partitions(ctx) == ["2101"]
    rows = ctx.work_dir / "compute" / "partitions" / "rows.parquet"
    labels = duckdb.connect().execute(f"SELECT partition, count(*) FROM read_parquet('{rows}') GROUP BY 1").fetchall()
    assert labels == [("2101", 3)]


def test_a_month_below_the_partition_size_is_one_task_per_stage_with_the_same_books(tmp_path, monkeypatch):
    """Adaptive partitioning (issue 22): a task costs a process and its imports whatever its size, so
    a small month runs validation and the engine as one partition each (`all`); a month of at least
    DOUDI_PARTITION_MIN_ROWS rows is cut by city (the tests above)."""
    monkeypatch.setenv("DOUDI_PARTITION_MIN_ROWS", "6")  # the inbox below delivers 4 rows
    inbox = tmp_path / "inbox"
    _inbox(inbox, "2020-01", tekun_city=SHENYANG)
    single, parted = tmp_path / "single", tmp_path / "parted"
    run_month(context(single, "2020-01", inbox=inbox))
    ctx = context(parted, "2020-01", inbox=inbox)
    # the plan tasks ran validation and the engine whole: nothing left for a mapped task
    assert _dag_order(ctx) == {"validate": [], "compute": []}
    assert plan_validation_partitions(ctx) == [WHOLE_MONTH]
    assert [p.name for p in (ctx.work_dir / "validate" / "partitions").iterdir()] == [WHOLE_MONTH]
    assert book_differences(single / "warehouse.duckdb", parted / "warehouse.duckdb") == {}
    monkeypatch.setenv("DOUDI_PARTITION_MIN_ROWS", "4")  # at the size: cut by city
    assert plan_validation_partitions(context(parted, "2020-01", inbox=inbox)) == ["2101", "2102", "2103"]
