"""The month's lifecycle (issue 17, cases 1, 2 and 6): a recorded state machine
(computed → published → verified → released → returns_loaded → closed), months in order, one run of
a month at a time, and operational failures (a warehouse held by an analyst, a second run, a full
disk, kill -9 at every recorded transition) told in one sentence, leaving nothing releasable.

A small hand-made inbox: three tekun persons in 和平区 (210102), one of them (T3) enrolled from
February. Amounts (data/reference, Shenyang 2020-01..03): basic urban 852.00 per month, plus care
全自理 100.00; the price subsidy of tekun is not in these tests' arithmetic (we count regular lines).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from decimal import Decimal as D
from pathlib import Path

import duckdb
import pytest

from pipelines.lifecycle import NOT_PUBLISHED_MARKER, lock_path
from pipelines.warehouse_months import copy_warehouse, months_dir, point_views_here
from tests.helpers import make_id, query, roster_path, write_csv

C = "210102"
COMMON = ["region_code", "name", "id_number", "sex", "urban_rural", "bank_name", "bank_account", "account_holder",
          "enrolled_from", "enrolled_to", "approved_amount"]
TEKUN = COMMON + ["placement", "care_level", "institution_code"]
T1, T2, T3 = (make_id(C, "19400101", 1), make_id(C, "19410101", 2), make_id(C, "19420101", 3, male=False))


def tekun_rows(month: str) -> list[list]:
    rows = []
    for n, pid, enrolled in ((1, T1, "2019-06"), (2, T2, "2019-06"), (3, T3, "2020-02")):
        if month >= enrolled:
            rows.append([C, f"特困{n}", pid, "男" if n < 3 else "女", "城市", "中国工商银行",
                         "6222" + pid[6:14] + "0001", f"特困{n}", enrolled, "", "", "分散供养", "全自理", ""])
    return rows


def make_inbox(inbox: Path, months: list[str]) -> Path:
    for m in months:
        write_csv(roster_path(inbox, m, "tekun", f"{C}_tekun_{m.replace('-', '')}.csv"), TEKUN, tekun_rows(m))
    return inbox


def doudi(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ, DOUDI_OPERATOR="lifecycle-test")
    e.pop("DOUDI_FAULT_AT", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], env=e, capture_output=True, text=True,
                          timeout=600, check=False)


def paths(root: Path) -> list[str]:
    return ["--out", str(root / "out"), "--warehouse", str(root / "warehouse.duckdb")]


def run_args(root: Path, month: str, *extra: str) -> list[str]:
    return ["run", "--month", month, "--inbox", str(root / "inbox"), *paths(root), *extra]


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def one_sentence(result: subprocess.CompletedProcess) -> str:
    """A refusal: exit 1, one line on stderr starting with `doudi:`, no traceback."""
    assert result.returncode == 1, (result.returncode, result.stderr[-3000:])
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("doudi:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return lines[0]


def states(root: Path, month: str) -> list[tuple]:
    return query(root / "warehouse.duckdb", "SELECT from_state, to_state, supplement FROM month_state "
                 "WHERE payroll_month = ? ORDER BY seq", [month])


def regular_lines(root: Path, month: str) -> list[tuple]:
    return query(root / "warehouse.duckdb", "SELECT id_number, service_month, line_type, amount FROM payment_ledger "
                 "WHERE payroll_month = ? AND program = 'tekun' AND line_type IN ('regular', 'arrears') "
                 "AND status = 'payable' ORDER BY ALL", [month])


@pytest.fixture(scope="module")
def january(tmp_path_factory):
    """2020-01 run and published from an inbox holding 2020-01..2020-03."""
    root = tmp_path_factory.mktemp("lifecycle")
    make_inbox(root / "inbox", ["2020-01", "2020-02", "2020-03"])
    ok(doudi(*run_args(root, "2020-01")))
    return root


def copy_of(january: Path, tmp_path: Path) -> Path:
    """A copy of the January lab, its warehouse's views pointed at the copy's own month files (as
    doudi does the first time it opens a copied warehouse; a test may hold the copy open first)."""
    root = tmp_path / "lab"
    shutil.copytree(january, root)
    point_views_here(root / "warehouse.duckdb")
    return root


def test_a_failed_publish_is_never_released_and_its_rerun_starts_clean(january, tmp_path):
    """Case 1: an analyst holds the warehouse open read-only while 2020-02 runs. The run stops with
    one sentence; the payout files it wrote are marked not published; verify and release refuse
    them; once the analyst is gone the rerun publishes and the release goes through."""
    root = copy_of(january, tmp_path)
    analyst = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; "
                                f"c = duckdb.connect({str(root / 'warehouse.duckdb')!r}, read_only=True); "
                                "print('open', flush=True); time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    try:
        assert analyst.stdout.readline().strip() == "open"
        failed = one_sentence(doudi(*run_args(root, "2020-02")))
        assert "held open by" in failed and "2020-02" in failed and "rerun" in failed, failed
        payouts = root / "out" / "2020-02" / "payouts"
        assert (payouts / "manifest.json").exists() and (payouts / NOT_PUBLISHED_MARKER).exists()
    finally:
        analyst.kill()
        analyst.wait()
    assert "never published" in one_sentence(doudi("verify", "--month", "2020-02", *paths(root)))
    refused = one_sentence(doudi("release", "--month", "2020-02", "--by", "王科长", *paths(root)))
    assert "cannot be released" in refused or "never published" in refused, refused
    assert not (payouts / "released.json").exists()
    ok(doudi(*run_args(root, "2020-02")))
    assert not (payouts / NOT_PUBLISHED_MARKER).exists()
    ok(doudi("release", "--month", "2020-02", "--by", "王科长", *paths(root)))
    assert (payouts / "released.json").exists()
    assert states(root, "2020-02") == [(None, "computed", None), ("computed", "published", None),
                                       ("published", "verified", None), ("verified", "released", None)]
    who = query(root / "warehouse.duckdb", "SELECT who, run_id IS NOT NULL, recorded_at IS NOT NULL FROM month_state "
                "WHERE payroll_month = '2020-02' AND to_state = 'released'")
    assert who == [("王科长", True, True)]
    # March pays March: T1, T2 and T3 one regular line each, no arrears repeating February
    ok(doudi(*run_args(root, "2020-03")))
    lines = regular_lines(root, "2020-03")
    assert [(pid, s, t) for pid, s, t, _ in lines] == sorted([(T1, "2020-03", "regular"), (T2, "2020-03", "regular"),
                                                             (T3, "2020-03", "regular")])


def test_a_month_whose_predecessor_was_not_run_is_refused(january, tmp_path):
    """Case 2: 2020-03 before 2020-02 would pay T3's February as late-enrolment arrears, and again
    when February runs: refused, naming February; nothing of March is written."""
    root = copy_of(january, tmp_path)
    refused = one_sentence(doudi(*run_args(root, "2020-03")))
    assert "2020-02" in refused and "never published" in refused, refused
    assert not (root / "out" / "2020-03" / "payouts").exists()
    assert query(root / "warehouse.duckdb", "SELECT count(*) FROM payment_ledger WHERE payroll_month = '2020-03'") \
        == [(0,)]
    # in order, T3 is paid February once, in February's payroll
    ok(doudi(*run_args(root, "2020-02")))
    ok(doudi(*run_args(root, "2020-03")))
    t3 = query(root / "warehouse.duckdb", "SELECT payroll_month, service_month FROM payment_ledger WHERE id_number = ? "
               "AND program = 'tekun' AND line_type IN ('regular', 'arrears') ORDER BY ALL", [T3])
    assert t3 == [("2020-02", "2020-02"), ("2020-03", "2020-03")]


def test_a_new_history_mid_year_is_explicit_and_recorded(tmp_path):
    """An empty warehouse, an inbox holding January and February: February alone is refused; with
    --first-month it starts the history (recorded), pays February only, and January can never be
    run into that warehouse afterwards."""
    root = tmp_path / "lab"
    make_inbox(root / "inbox", ["2020-01", "2020-02"])
    refused = one_sentence(doudi(*run_args(root, "2020-02")))
    assert "2020-01" in refused and "--first-month" in refused, refused
    ok(doudi(*run_args(root, "2020-02", "--first-month")))
    note = query(root / "warehouse.duckdb", "SELECT DISTINCT note FROM month_state WHERE payroll_month = '2020-02'")
    assert len(note) == 1 and note[0][0].startswith("first month of the history"), note
    # T1 and T2 (enrolled 2019-06) get February only: no arrears reach before the history's first month
    assert [(pid, s, t) for pid, s, t, _ in regular_lines(root, "2020-02")] == sorted(
        [(T1, "2020-02", "regular"), (T2, "2020-02", "regular"), (T3, "2020-02", "regular")])
    before = one_sentence(doudi(*run_args(root, "2020-01")))
    assert "first month of this warehouse's history" in before and "2020-02" in before, before
    # a warehouse whose first month has no month before it in the inbox starts without the option
    fresh = tmp_path / "fresh"
    make_inbox(fresh / "inbox", ["2020-01"])
    ok(doudi(*run_args(fresh, "2020-01")))


def test_a_month_delivered_after_a_later_month_was_published_is_refused(tmp_path):
    """February's rosters are late: March is run without them (nothing of February in the inbox) and
    pays February's entitlements as arrears. When February arrives, running it would pay them again
    (found by an attack on the product: each person paid February twice), so it is refused in one
    sentence naming March; nobody is paid February twice. (A month already published may still be
    rerun before its release: tests/test_six_months.py reruns April after June.)"""
    root = tmp_path / "lab"
    make_inbox(root / "inbox", ["2020-01", "2020-03"])
    ok(doudi(*run_args(root, "2020-01")))
    ok(doudi(*run_args(root, "2020-03")))
    february = query(root / "warehouse.duckdb", "SELECT id_number, payroll_month, line_type FROM payment_ledger "
                     "WHERE service_month = '2020-02' AND status = 'payable' AND program = 'tekun' ORDER BY ALL")
    assert february == [(T1, "2020-03", "arrears"), (T2, "2020-03", "arrears"), (T3, "2020-03", "arrears")]
    make_inbox(root / "inbox", ["2020-02"])
    refused = one_sentence(doudi(*run_args(root, "2020-02")))
    assert "2020-03, a later month, is already published and paid 2020-02's entitlements" in refused, refused
    assert query(root / "warehouse.duckdb", "SELECT DISTINCT payroll_month FROM payment_ledger ORDER BY 1") == [
        ("2020-01",), ("2020-03",)]


def test_a_second_run_of_the_month_is_refused_naming_the_holder(january, tmp_path):
    """Case 6: two runs of 2020-02 at once: the second stops at once, naming the first (user, pid,
    host, since); the first finishes and its books are whole."""
    root = copy_of(january, tmp_path)
    env = dict(os.environ, DOUDI_OPERATOR="first-operator")
    env.pop("DOUDI_FAULT_AT", None)
    first = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *run_args(root, "2020-02")], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lock = lock_path(type("C", (), {"warehouse": root / "warehouse.duckdb", "month": "2020-02"})())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        if lock.exists() and lock.read_text().strip():
            break
        time.sleep(0.05)
    holder = json.loads(lock.read_text())
    second = one_sentence(doudi(*run_args(root, "2020-02")))
    assert first.wait(timeout=600) == 0, first.stderr.read()[-3000:]
    assert holder["pid"] == first.pid
    for part in ("being run already", "first-operator", f"pid {first.pid}", holder["host"], holder["since"]):
        assert part in second, (part, second)
    ok(doudi("verify", "--month", "2020-02", *paths(root)))


def test_an_airflow_run_holds_the_month_between_its_tasks(january, tmp_path):
    """Case 6 under Airflow: a DAG run is one process per task, so the flock alone would let a `doudi
    run` of the month in between two tasks. The run's setup task claims the month; while it stands,
    `doudi run` and another DAG run are refused naming it, and only the claimant's tasks work; its
    teardown gives the month back (another run's teardown does not); a dead run's claim is given
    back by hand, and its remaining tasks then stop."""
    from airflow.sdk.exceptions import AirflowFailException

    from pipelines import tasks
    from pipelines.lifecycle import claim_path

    root = copy_of(january, tmp_path)
    params = {"payroll_month": "2020-02", "inbox": str(root / "inbox"), "out": str(root / "out"),
              "warehouse": str(root / "warehouse.duckdb")}
    first, second = (tasks.resolve_run(params, None, run_id) for run_id in ("manual__first", "manual__second"))
    claim = claim_path(type("C", (), {"warehouse": root / "warehouse.duckdb", "month": "2020-02"})())

    tasks.claim_month(first)
    tasks.claim_month(first)  # a retry of the setup task by the same run
    assert claim.exists() and claim.stat().st_mode & 0o777 == 0o600
    refused = one_sentence(doudi(*run_args(root, "2020-02")))
    assert "being run already" in refused and "manual__first" in refused and "release-claim" in refused
    for task in (lambda: tasks.claim_month(second), lambda: tasks.stage(second, "ingest", "tekun")):
        with pytest.raises(AirflowFailException, match="manual__first"):
            task()
    assert tasks.stage(first, "ingest", "tekun")  # the claimant's own tasks work
    state = ok(doudi("state", "--month", "2020-02", *paths(root))).stdout
    assert "claimed by Airflow run manual__first" in state and "（北京时间）" in state and "+00:00" not in state

    assert tasks.release_month(second) is False and claim.exists()  # not another run's claim
    assert tasks.release_month(first) is True and not claim.exists()
    with pytest.raises(AirflowFailException, match="no longer holds the month's claim"):
        tasks.stage(first, "integrity")

    tasks.claim_month(second)  # a run that died without its teardown: given back by hand
    released = ok(doudi("release-claim", "--month", "2020-02", "--by", "王科长", *paths(root))).stdout
    assert "manual__second" in released and "王科长" in released and not claim.exists()
    assert "nothing to release" in ok(doudi("release-claim", "--month", "2020-02", "--by", "王科长",
                                            *paths(root))).stdout
    ok(doudi(*run_args(root, "2020-02")))
    assert not claim.exists()


# every recorded transition, killed just before and just after its row is written; then the
# operator's next command works: the killed command again (or, once recorded, the next step)
STEPS = [
    ("verified", lambda r: ["verify", "--month", "2020-02", *paths(r)]),
    ("released", lambda r: ["release", "--month", "2020-02", "--by", "王科长", *paths(r)]),
    ("returns_loaded", lambda r: ["returns", "--month", "2020-02", "--inbox", str(r / "inbox"), *paths(r)]),
    ("closed", lambda r: ["close", "--month", "2020-02", "--by", "王科长", *paths(r)]),
]


def _write_returns(root: Path) -> None:
    """2020-02's bank return file: every transfer of 2020-02 paid."""
    refs = query(root / "warehouse.duckdb", "SELECT payment_ref FROM payout_record WHERE payroll_month = '2020-02' "
                 "ORDER BY 1")
    assert refs
    write_csv(root / "inbox" / "2020-02" / "bank_returns" / "icbc_202002.csv", ["payment_ref", "status", "reason"],
              [[r[0], "成功", ""] for r in refs])


@pytest.fixture(scope="module")
def february(january, tmp_path_factory):
    """January's lab with 2020-02 run and published, and its bank return file in the inbox."""
    root = tmp_path_factory.mktemp("february") / "lab"
    shutil.copytree(january, root)
    ok(doudi(*run_args(root, "2020-02")))
    _write_returns(root)
    return root


@pytest.mark.parametrize("point", ["lifecycle.before:computed", "lifecycle.after:computed",
                                   "lifecycle.before:published", "lifecycle.after:published"])
def test_a_run_killed_at_its_transitions_leaves_nothing_releasable_and_reruns(january, tmp_path, point):
    root = copy_of(january, tmp_path)
    killed = doudi(*run_args(root, "2020-02"), env={"DOUDI_FAULT_AT": point})
    assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-3000:])
    payouts = root / "out" / "2020-02" / "payouts"
    # publish killed inside its transaction is rolled back whole, its transition with it
    assert "published" not in [s[1] for s in states(root, "2020-02")]
    assert (payouts / NOT_PUBLISHED_MARKER).exists()
    one_sentence(doudi("release", "--month", "2020-02", "--by", "王科长", *paths(root)))
    assert not (payouts / "released.json").exists()
    ok(doudi(*run_args(root, "2020-02")))
    ok(doudi("release", "--month", "2020-02", "--by", "王科长", *paths(root)))
    assert [s[1] for s in states(root, "2020-02")][-3:] == ["published", "verified", "released"]


@pytest.mark.parametrize("moment", ["before", "after"])
@pytest.mark.parametrize("state", [s for s, _ in STEPS])
def test_a_kill_at_each_later_transition_leaves_a_state_the_next_command_continues(february, tmp_path, state,
                                                                                  moment):
    root = copy_of(february, tmp_path)
    order = [s for s, _ in STEPS]
    for _, command in STEPS[:order.index(state)]:
        ok(doudi(*command(root)))
    command = dict(STEPS)[state](root)
    killed = doudi(*command, env={"DOUDI_FAULT_AT": f"lifecycle.{moment}:{state}"})
    assert killed.returncode == -signal.SIGKILL, (state, moment, killed.stderr[-3000:])
    if moment == "before":
        ok(doudi(*command))
    for _, later in STEPS[order.index(state) + 1:]:
        ok(doudi(*later(root)))
    final = [s[1] for s in states(root, "2020-02")]
    assert final[-4:] == ["verified", "released", "returns_loaded", "closed"], final
    payouts = root / "out" / "2020-02" / "payouts"
    assert (payouts / "released.json").exists() and not (payouts / NOT_PUBLISHED_MARKER).exists()
    paid = query(root / "warehouse.duckdb", "SELECT DISTINCT payment_state FROM payment_ledger "
                 "WHERE payroll_month = '2020-02' AND status = 'payable'")
    assert paid == [("paid",)]
    # closed is final: neither a rerun nor a supplementary run changes the month
    assert "closed" in one_sentence(doudi(*run_args(root, "2020-02", "--supplementary")))


def test_a_full_disk_at_publish_is_one_sentence_and_leaves_nothing_releasable(january, tmp_path):
    """Case 6: the warehouse on a disk with no room left (a small tmpfs, filled): one sentence,
    exit 1, the payout files not releasable; with room again, the rerun and the release work."""
    root = copy_of(january, tmp_path)
    disk = tmp_path / "disk"
    disk.mkdir()
    month_files = sum(p.stat().st_size for p in months_dir(root / "warehouse.duckdb").rglob("*.parquet"))
    size = 3 * ((root / "warehouse.duckdb").stat().st_size + month_files) + (64 << 20)  # room for the rerun
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip("a small disk needs mount (root)")
    try:
        copy_warehouse(root / "warehouse.duckdb", disk / "warehouse.duckdb")
        filler = disk / "filler"
        with open(filler, "wb") as fh:  # leave about 16 KB free
            free = shutil.disk_usage(disk).free - (16 << 10)
            fh.write(b"\0" * max(free, 0))
        args = ["--out", str(root / "out"), "--warehouse", str(disk / "warehouse.duckdb")]
        full = one_sentence(doudi("run", "--month", "2020-02", "--inbox", str(root / "inbox"), *args))
        assert "disk is full" in full and "2020-02" in full, full
        # the disk fills before the commit (nothing published: not releasable), or after it, at the
        # checkpoint (the month is published, the sentence says so, and verify is what to run next)
        if "nothing of 2020-02 was published" in full:
            one_sentence(doudi("release", "--month", "2020-02", "--by", "王科长", *args))
            assert not (root / "out" / "2020-02" / "payouts" / "released.json").exists()
        else:
            assert "2020-02 was published, but then the disk is full" in full, full
        filler.unlink()
        ok(doudi("run", "--month", "2020-02", "--inbox", str(root / "inbox"), *args))
        ok(doudi("release", "--month", "2020-02", "--by", "王科长", *args))
        con = duckdb.connect(str(disk / "warehouse.duckdb"), read_only=True)
        try:
            assert con.execute("SELECT count(*) FROM run_log WHERE payroll_month = '2020-02'").fetchone()[0] == 1
        finally:
            con.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_an_operations_scenario_through_doudi_commands_only(tmp_path):
    """A year as an operator lives it, through `doudi` only, the books checked after every step: a
    publish that fails (an analyst holds the warehouse), its attempted release and verify, a month
    run out of order, the clean rerun, bank returns, a supplementary batch for a released month, a
    run killed at a transition, closing a month; in June May's return file is loaded, delivered
    again under another name (recognised, not loaded twice), withdrawn, and replaced by the bank's
    corrected file; then the months to December. Nobody is paid twice, no return state is lost,
    and what each person is paid is what the rosters say: T1, T2 from January, T3 from February, T4
    (added to February by the county's corrected file after its release) from February."""
    root = tmp_path / "ops"
    year = [f"2020-{m:02d}" for m in range(1, 13)]
    inbox = make_inbox(root / "inbox", year)
    t4 = make_id(C, "19430101", 4)
    t4_row = [C, "特困4", t4, "男", "城市", "中国工商银行", "6222" + t4[6:14] + "0001", "特困4", "2020-02", "", "",
              "分散供养", "全自理", ""]
    for m in year[2:]:  # the county lists T4 from March on
        write_csv(roster_path(inbox, m, "tekun", f"{C}_tekun_{m.replace('-', '')}.csv"), TEKUN,
                  tekun_rows(m) + [t4_row])
    release = lambda m: doudi("release", "--month", m, "--by", "财政局", *paths(root))  # noqa: E731

    def books(only: str | None = None) -> None:
        """Every published month (or only the one just run) verifies; no (person, program, month, line
        type) is payable twice."""
        published = sorted({r[0] for r in query(root / "warehouse.duckdb", "SELECT payroll_month FROM run_log")})
        for m in [only] if only else published:
            ok(doudi("verify", "--month", m, *paths(root)))
        twice = query(root / "warehouse.duckdb", "SELECT id_number, program, service_month, line_type FROM "
                      "payment_ledger WHERE status = 'payable' GROUP BY ALL HAVING count(*) > 1")
        assert twice == []

    ok(doudi(*run_args(root, "2020-01")))
    ok(release("2020-01"))
    books()
    # February: the analyst's session holds the warehouse; the run stops in one sentence
    analyst = subprocess.Popen([sys.executable, "-c", "import duckdb, time; "
                                f"c = duckdb.connect({str(root / 'warehouse.duckdb')!r}, read_only=True); "
                                "print('open', flush=True); time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    try:
        assert analyst.stdout.readline().strip() == "open"
        assert "held open by" in one_sentence(doudi(*run_args(root, "2020-02")))
    finally:
        analyst.kill()
        analyst.wait()
    one_sentence(release("2020-02"))
    one_sentence(doudi("verify", "--month", "2020-02", *paths(root)))
    books()
    # March before February: refused, naming February
    assert "2020-02" in one_sentence(doudi(*run_args(root, "2020-03")))
    ok(doudi(*run_args(root, "2020-02")))
    ok(release("2020-02"))
    books()
    _write_returns(root)
    ok(doudi("returns", "--month", "2020-02", "--inbox", str(inbox), *paths(root)))
    # the county's corrected February adds T4: a supplementary batch S1, then released
    write_csv(roster_path(inbox, "2020-02", "tekun", f"{C}_tekun_202002_v2.csv"), TEKUN,
              tekun_rows("2020-02") + [t4_row])
    one_sentence(doudi(*run_args(root, "2020-02")))  # a plain rerun of a released month is refused
    ok(doudi(*run_args(root, "2020-02", "--supplementary")))
    ok(release("2020-02"))
    books()
    # March killed just after its files are recorded computed: nothing to release; the rerun works
    killed = doudi(*run_args(root, "2020-03"), env={"DOUDI_FAULT_AT": "lifecycle.after:computed"})
    assert killed.returncode == -signal.SIGKILL
    one_sentence(release("2020-03"))
    ok(doudi(*run_args(root, "2020-03")))
    ok(release("2020-03"))
    # the returns of February's S1 batch too; then February is closed
    _write_returns(root)
    ok(doudi("returns", "--month", "2020-02", "--inbox", str(inbox), *paths(root)))
    ok(doudi("close", "--month", "2020-02", "--by", "财政局", *paths(root)))
    ok(doudi(*run_args(root, "2020-04")))
    books()
    ok(release("2020-04"))
    ok(doudi(*run_args(root, "2020-05")))
    books("2020-05")
    ok(release("2020-05"))
    # June: May's return file (every transfer paid), delivered twice, withdrawn, corrected
    wh = root / "warehouse.duckdb"
    may_refs = [r[0] for r in query(wh, "SELECT payment_ref FROM payout_record WHERE payroll_month = '2020-05' "
                                        "ORDER BY 1")]
    folder = inbox / "2020-06" / "bank_returns"
    write_csv(folder / "icbc_202005.csv", ["payment_ref", "status", "reason"], [[r, "成功", ""] for r in may_refs])

    def may_states() -> set:
        return {r[0] for r in query(wh, "SELECT DISTINCT payment_state FROM payment_ledger WHERE payroll_month = "
                                        "'2020-05' AND status = 'payable'")}

    returns = ("returns", "--month", "2020-06", "--inbox", str(inbox), *paths(root))
    ok(doudi(*returns))
    assert may_states() == {"paid"}
    shutil.copy(folder / "icbc_202005.csv", folder / "icbc_202005_重发.csv")
    assert "has the bytes of" in ok(doudi(*returns)).stdout
    assert query(wh, "SELECT count(*) FROM bank_return_received WHERE received_month = '2020-06'") == [(len(may_refs),)]
    ok(doudi("withdraw-return", "--month", "2020-06", "--file", "icbc_202005.csv", "--by", "财政局",
             "--reason", "银行来函撤回该回盘文件", "--inbox", str(inbox), *paths(root)))
    assert may_states() == {"sent"}
    write_csv(folder / "icbc_202005_更正.csv", ["payment_ref", "status", "reason"],
              [[r, "成功", "更正"] for r in may_refs])
    ok(doudi(*returns))
    assert may_states() == {"paid"}
    for m in year[5:]:
        ok(doudi(*run_args(root, m)))
        books(m)
        ok(release(m))
    books()
    # no return state lost: May stays paid through December, its withdrawal and its files recorded
    assert may_states() == {"paid"}
    assert query(wh, "SELECT source_file, status FROM bank_return_file WHERE received_month = '2020-06' "
                     "ORDER BY load_id") == [("bank_returns/icbc_202005.csv", "loaded"),
                                             ("bank_returns/icbc_202005_重发.csv", "duplicate"),
                                             ("bank_returns/icbc_202005_更正.csv", "loaded")]
    assert query(wh, "SELECT count(*) FROM bank_return_withdrawal") == [(1,)]
    paid = query(root / "warehouse.duckdb", "SELECT id_number, service_month FROM payment_ledger WHERE program = "
                 "'tekun' AND status = 'payable' AND line_type = 'regular' ORDER BY ALL")
    months = year
    expected = sorted([(T1, m) for m in months] + [(T2, m) for m in months] + [(T3, m) for m in months[1:]]
                      + [(t4, m) for m in months[1:]])
    assert paid == expected
    # the 2020 raise (basic 852 → 895 from 2020-01, first paid in April): April's back pay is
    # 43.00 for each month paid before, once: T1, T2 January to March, T3 and T4 February and March
    back_pay = query(root / "warehouse.duckdb", "SELECT id_number, service_month, amount FROM payment_ledger "
                     "WHERE program = 'tekun' AND status = 'payable' AND line_type = 'arrears' ORDER BY ALL")
    assert back_pay == sorted((pid, m, D("43.00")) for pid, m in expected if m < "2020-04")
    assert [s[1:] for s in states(root, "2020-02")][-7:] == [
        ("returns_loaded", None), ("supplementary_computed", "S1"), ("supplementary_published", "S1"),
        ("supplementary_verified", "S1"), ("released", "S1"), ("returns_loaded", None), ("closed", None)]
    # analysts see each month's life as the warehouse records it, not as of its last publish
    analyst_states = query(root / "warehouse_analyst.duckdb", "SELECT seq, payroll_month, to_state FROM a_month_state "
                           "ORDER BY seq")
    assert analyst_states == query(wh, "SELECT seq, payroll_month, to_state FROM month_state ORDER BY seq")
    assert ("2020-02", "closed") in {r[1:] for r in analyst_states}


def _late_enrolment_lab(root: Path) -> str:
    """January and February published; T4, enrolled from January, is first listed in February,
    which pays his January as arrears. Returns T4's ID number."""
    inbox = make_inbox(root / "inbox", ["2020-01", "2020-02"])
    t4 = make_id(C, "19430101", 4)
    write_csv(roster_path(inbox, "2020-02", "tekun", f"{C}_tekun_202002.csv"), TEKUN,
              tekun_rows("2020-02") + [_t4_row(t4)])
    return t4


def _t4_row(t4: str) -> list:
    return [C, "特困4", t4, "男", "城市", "中国工商银行", "6222" + t4[6:14] + "0001", "特困4", "2020-01", "", "",
            "分散供养", "全自理", ""]


def _t4_january(root: Path, t4: str) -> list[tuple]:
    return query(root / "warehouse.duckdb", "SELECT payroll_month, line_type FROM payment_ledger WHERE id_number = ? "
                 "AND program = 'tekun' AND service_month = '2020-01' AND line_type IN ('regular', 'arrears') "
                 "AND status = 'payable' ORDER BY ALL", [t4])


def test_a_published_month_rerun_on_changed_inputs_after_a_later_month_is_refused(tmp_path):
    """January is published, then February, which pays T4's January as arrears (he was first
    listed in February). The county then adds T4 to January's rosters: rerunning January, still
    unreleased, would pay his January a second time (found by this session's own probe: it did).
    Refused in one sentence naming February and the new file; January's files and ledger stand,
    releasable as published. The same inputs still rerun, byte for byte. A change the inbox's
    rosters do not show (a death reported in January's registry folder after February was
    published) is stopped at publish: nothing published, January not releasable until it is rerun
    as it was."""
    root = tmp_path / "lab"
    t4 = _late_enrolment_lab(root)
    ok(doudi(*run_args(root, "2020-01")))
    ok(doudi(*run_args(root, "2020-02")))
    assert _t4_january(root, t4) == [("2020-02", "arrears")]
    payouts = root / "out" / "2020-01" / "payouts"
    before = {p.name: p.read_bytes() for p in sorted(payouts.iterdir())}

    ok(doudi(*run_args(root, "2020-01")))  # the same inputs: reproduced, still allowed
    assert {p.name: p.read_bytes() for p in sorted(payouts.iterdir())} == before

    write_csv(roster_path(root / "inbox", "2020-01", "tekun", f"{C}_tekun_202001_v2.csv"), TEKUN,
              tekun_rows("2020-01") + [_t4_row(t4)])
    refused = one_sentence(doudi(*run_args(root, "2020-01")))
    assert "2020-02, a later month, was computed from 2020-01's ledger as published" in refused, refused
    assert f"{C}_tekun_202001_v2.csv is new" in refused, refused
    assert _t4_january(root, t4) == [("2020-02", "arrears")]
    assert {p.name: p.read_bytes() for p in sorted(payouts.iterdir())} == before
    assert states(root, "2020-01")[-1][1] == "published"
    (roster_path(root / "inbox", "2020-01", "tekun", f"{C}_tekun_202001_v2.csv")).unlink()

    # T1's death in December, reported in January's registry folder only now: the ledger would change
    deaths = root / "inbox" / "2020-01" / "registry" / "deaths.csv"
    write_csv(deaths, ["id_number", "name", "death_date", "source"], [[T1, "特困1", "2019-12-05", "公安"]])
    publications = query(root / "warehouse.duckdb", "SELECT count(*) FROM run_log WHERE payroll_month = '2020-01'")
    refused = one_sentence(doudi(*run_args(root, "2020-01")))
    assert "changes the ledger it was published with" in refused and "2020-02" in refused, refused
    assert query(root / "warehouse.duckdb", "SELECT count(*) FROM run_log WHERE payroll_month = '2020-01'") == \
        publications
    assert _t4_january(root, t4) == [("2020-02", "arrears")]
    assert query(root / "warehouse.duckdb", "SELECT count(*) FROM payment_ledger WHERE payroll_month = '2020-01' "
                 "AND id_number = ? AND status = 'payable'", [T1])[0][0] > 0  # January as published
    one_sentence(doudi("release", "--month", "2020-01", "--by", "财政局", *paths(root)))
    deaths.unlink()
    ok(doudi(*run_args(root, "2020-01")))  # rerun as it was: published again, releasable
    assert {p.name: p.read_bytes() for p in sorted(payouts.iterdir())} == before
    ok(doudi("release", "--month", "2020-01", "--by", "财政局", *paths(root)))
    assert _t4_january(root, t4) == [("2020-02", "arrears")]


def test_a_supplementary_run_never_pays_a_month_a_later_payroll_paid(tmp_path):
    """January released, February published and paying T4's January as arrears; the county's
    corrected January adds T4. The supplementary batch pays his January price subsidy (no later
    payroll paid it) but not his January allowance again: a finding names February's payment, and
    February may then be rerun only to the same ledger."""
    root = tmp_path / "lab"
    t4 = _late_enrolment_lab(root)
    ok(doudi(*run_args(root, "2020-01")))
    ok(doudi("release", "--month", "2020-01", "--by", "财政局", *paths(root)))
    ok(doudi(*run_args(root, "2020-02")))
    write_csv(roster_path(root / "inbox", "2020-01", "tekun", f"{C}_tekun_202001_v2.csv"), TEKUN,
              tekun_rows("2020-01") + [_t4_row(t4)])
    ok(doudi(*run_args(root, "2020-01", "--supplementary")))
    assert _t4_january(root, t4) == [("2020-02", "arrears")]
    supplement = query(root / "warehouse.duckdb", "SELECT line_type, status FROM payment_ledger WHERE id_number = ? "
                       "AND payroll_month = '2020-01'", [t4])
    assert supplement == [("price_subsidy", "payable")]
    finding = query(root / "warehouse.duckdb", "SELECT detail FROM finding WHERE payroll_month = '2020-01' "
                    "AND finding_type = 'paid_by_later_payroll' AND id_number = ?", [t4])
    assert len(finding) == 1 and "2020-02 月已为 2020-01 发放 952.00 元" in finding[0][0], finding
    ok(doudi("verify", "--month", "2020-01", *paths(root)))
    # February, not yet released, may no longer change what it paid: the supplement relied on it (a
    # corrected February without T4 would leave his January paid by nobody)
    write_csv(roster_path(root / "inbox", "2020-02", "tekun", f"{C}_tekun_202002_v2.csv"), TEKUN,
              tekun_rows("2020-02"))
    refused = one_sentence(doudi(*run_args(root, "2020-02")))
    assert "the supplementary run of 2020-01 was computed from 2020-02's ledger" in refused, refused
    assert _t4_january(root, t4) == [("2020-02", "arrears")]


def test_a_publish_killed_after_its_commit_is_finished_before_verify_and_release(january, tmp_path):
    """February is killed just after its commit: the month is in the warehouse, but its dimensions
    and the analyst database are January's (T3, first listed in February, is in neither). `doudi
    verify` builds them first, says so, and verifies; the release finds nothing owed."""
    root = copy_of(january, tmp_path)
    wh, analyst = root / "warehouse.duckdb", root / "warehouse_analyst.duckdb"
    killed = doudi(*run_args(root, "2020-02"), env={"DOUDI_FAULT_AT": "publish.after_commit"})
    assert killed.returncode == -signal.SIGKILL
    assert states(root, "2020-02")[-1][1] == "published"

    def t3_known() -> tuple[int, int, int]:
        return (query(wh, "SELECT count(*) FROM dim_person WHERE id_number = ?", [T3])[0][0],
                query(analyst, "SELECT count(*) FROM a_fact_payment WHERE payroll_month = '2020-02'")[0][0],
                query(wh, "SELECT count(*) FROM derived_pending")[0][0])

    assert t3_known() == (0, 0, 1)
    verified = ok(doudi("verify", "--month", "2020-02", *paths(root)))
    assert "the publish of 2020-02 was interrupted after its commit" in verified.stdout, verified.stdout
    dim, payments, pending = t3_known()
    assert dim == 1 and payments > 0 and pending == 0
    released = ok(doudi("release", "--month", "2020-02", "--by", "财政局", *paths(root)))
    assert "interrupted" not in released.stdout
