"""Reliability (issue 8): a run killed anywhere (a SIGKILL at each fault point of
pipelines/faults.py, and a real `kill -9` from outside) leaves nothing half-written and no
half-applied month, and the rerun equals an uninterrupted run; six months with reruns, a release,
a bank return and a corrected roster keep the books; hostile files get clear outcomes; the audit
trail and file permissions hold."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from pipelines.faults import FAULT_POINTS
from pipelines.io import sha256_file
from pipelines.lifecycle import NOT_PUBLISHED_MARKER

MONTHS = ("2020-01", "2020-02")
LEDGER_COLUMNS = "line_id, service_month, program, line_type, status, id_number, amount, payment_ref, batch_id"


def doudi(args: list[str], env: dict, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600, check=False, **kw)


def month_args(root: Path, month: str) -> list[str]:
    return ["run", "--month", month, "--inbox", str(root.parent / "inbox"), "--out", str(root / "out"),
            "--warehouse", str(root / "warehouse.duckdb")]


MONTH_TABLES = ("payment_ledger", "row_disposition", "finding", "roster_row", "source_file", "payout_record",
                "payout_file")


def snapshot(root: Path, month: str) -> dict:
    """What a finished month is: its payout files' bytes, its ledger, and its rows in each table."""
    files = {p.name: sha256_file(p) for p in (root / "out" / month / "payouts").iterdir()
             if not p.name.startswith(".")}
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        ledger = con.execute(f"SELECT {LEDGER_COLUMNS} FROM payment_ledger WHERE payroll_month = ? ORDER BY line_id",
                             [month]).fetchall()
        counts = {t: con.execute(f"SELECT count(*) FROM {t} WHERE payroll_month = ?", [month]).fetchall()[0][0]
                  for t in MONTH_TABLES}
    finally:
        con.close()
    return {"files": files, "ledger": ledger, "counts": counts}


def assert_nothing_half_done(root: Path, month: str, baseline: dict) -> None:
    """After a kill: every payout file visible under its final name is the complete file an
    uninterrupted run writes, and the warehouse holds the month wholly or not at all."""
    payouts = root / "out" / month / "payouts"
    for p in payouts.iterdir() if payouts.exists() else []:
        # the not-published marker of an unfinished run is no payout file (pipelines/lifecycle.py)
        if not p.name.startswith(".") and p.name != NOT_PUBLISHED_MARKER:
            assert sha256_file(p) == baseline["files"][p.name], p.name
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        counts = {t: con.execute(f"SELECT count(*) FROM {t} WHERE payroll_month = ?", [month]).fetchall()[0][0]
                  for t in MONTH_TABLES}
    finally:
        con.close()
    assert counts in ({t: 0 for t in MONTH_TABLES}, baseline["counts"]), counts


@pytest.fixture(scope="module")
def crash_lab(tmp_path_factory):
    """A small generated inbox, month 1 published, and an uninterrupted month 2 to compare with."""
    from pipelines.generate import generate

    lab = tmp_path_factory.mktemp("crash")
    generate(lab / "inbox", "2020-01..2020-02", persons=250, seed=5)
    env = dict(os.environ, DOUDI_OPERATOR="crash-test")
    env.pop("DOUDI_FAULT_AT", None)
    after_first = lab / "after_first"
    assert doudi(month_args(after_first, MONTHS[0]), env).returncode == 0
    clean = lab / "clean"
    shutil.copytree(after_first, clean)
    assert doudi(month_args(clean, MONTHS[1]), env).returncode == 0
    return {"lab": lab, "env": env, "after_first": after_first, "baseline": snapshot(clean, MONTHS[1])}


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_a_run_killed_at_any_point_reruns_to_the_same_result(crash_lab, point):
    root = crash_lab["lab"] / f"kill-{point.replace(':', '_')}"
    shutil.copytree(crash_lab["after_first"], root)
    killed = doudi(month_args(root, MONTHS[1]), dict(crash_lab["env"], DOUDI_FAULT_AT=point))
    assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
    assert_nothing_half_done(root, MONTHS[1], crash_lab["baseline"])
    rerun = doudi(month_args(root, MONTHS[1]), crash_lab["env"])
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert snapshot(root, MONTHS[1]) == crash_lab["baseline"]
    leftovers = [p for p in (root / "out" / MONTHS[1]).rglob(".*.tmp-*")]
    assert leftovers == []


def test_a_real_kill_9_from_outside_while_writing_payouts(crash_lab):
    root = crash_lab["lab"] / "kill-9"
    shutil.copytree(crash_lab["after_first"], root)
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *month_args(root, MONTHS[1])],
                            env=crash_lab["env"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    payouts = root / "out" / MONTHS[1] / "payouts"
    deadline = time.monotonic() + 300
    while not payouts.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert_nothing_half_done(root, MONTHS[1], crash_lab["baseline"])
    assert doudi(month_args(root, MONTHS[1]), crash_lab["env"]).returncode == 0
    assert snapshot(root, MONTHS[1]) == crash_lab["baseline"]


def test_files_with_personal_data_are_owner_only_and_the_run_is_on_record(crash_lab):
    root = crash_lab["after_first"]
    for path in [root / "warehouse.duckdb", *(root / "out" / MONTHS[0] / "payouts").iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        runs = con.execute("SELECT payroll_month, run_by, published_at, code_version, input_files, reference_files "
                           "FROM run_log").fetchall()
    finally:
        con.close()
    assert [r[:2] for r in runs] == [(MONTHS[0], "crash-test")]
    inputs, reference = json.loads(runs[0][4]), json.loads(runs[0][5])
    assert inputs and all(len(h) == 64 for h in inputs.values())
    assert {"standards.csv", "cpi.csv", "policy_parameters.csv"} <= set(reference)
    assert runs[0][3].startswith("doudi ") and runs[0][2][:4] == "20" + runs[0][2][2:4]


def test_a_hostile_name_never_becomes_a_formula_in_any_workbook(tmp_path):
    """A name typed as a formula is quarantined (NAME_INVALID), and where it is shown (the county's
    quarantine workbook, masked) the cell is text, never a formula."""
    import openpyxl

    from tests.helpers import run, write_csv
    from tests.test_engine_golden import TEKUN, C, common, person

    good, bad = person(96, "19400101"), person(97, "19410101", name='=HYPERLINK("http://x","点我")')
    write_csv(tmp_path / "inbox" / "2020-01" / "rosters" / "tekun" / f"{C}_tekun_202001.csv", TEKUN,
              [common(good) + ["分散供养", "全自理", ""], common(bad) + ["分散供养", "全自理", ""]])
    run(tmp_path, "2020-01")
    books = list((tmp_path / "out" / "2020-01").rglob("*.xlsx"))
    assert {b.name for b in books} >= {"quarantine.xlsx", "reconciliation.xlsx", "exceptions.xlsx"}
    hostile_cells = 0
    for book in books:
        wb = openpyxl.load_workbook(book)
        for ws in wb.worksheets:
            for row in ws.iter_rows():
                for cell in row:
                    assert cell.data_type != "f", (book.name, cell.coordinate, cell.value)
                    if isinstance(cell.value, str) and cell.value.lstrip("'").startswith(("=", "+", "-", "@")):
                        assert cell.value.startswith("'"), (book.name, cell.coordinate, cell.value)
                        hostile_cells += 1
    assert hostile_cells >= 1  # the quarantined name is shown, as text
