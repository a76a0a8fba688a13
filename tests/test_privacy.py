"""Personal data stays owner-only (issue 17, case 4): free text typed outside doudi (a registry
remark, a bank's return reason, a caseworker's clearance note) is shown with its ID numbers and
accounts masked, separators and all, in every report and in the analyst database; and every file
a run leaves, finished or killed, is owner-only wherever it holds a full ID number or account."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from python_calamine import CalamineWorkbook

from pipelines.cli import main as doudi
from tests.helpers import context, query, roster_path, run, write_csv
from tests.test_engine_golden import TEKUN, C, acct, common, person

# separators people type inside numbers: the issue's own examples
SPACED = re.compile(r"^(\d{6})(\d{8})(\d{3}[0-9X])$")
PLANTED_ACCOUNT = "6222-0202-0011-2233-001"


def spaced_id(id_number: str) -> str:
    """`210102194001010039` written as `210102 19400101 0039`."""
    return " ".join(SPACED.match(id_number).groups())


def masked_id(id_number: str) -> str:
    return id_number[:6] + "*" * 8 + id_number[-4:]


def masked_account(account: str) -> str:
    digits = account.replace("-", "").replace(" ", "")
    return "*" * (len(digits) - 4) + digits[-4:]


def report_texts(out: Path) -> dict[str, str]:
    """Every report under out/ as text: HTML and JSON as written, workbooks cell by cell."""
    texts = {}
    for path in sorted(out.glob("*/reports/**/*")):
        if path.suffix in (".html", ".json", ".csv", ".md", ".txt"):
            texts[str(path)] = path.read_text(encoding="utf-8")
        elif path.suffix == ".xlsx":
            wb = CalamineWorkbook.from_path(str(path))
            texts[str(path)] = "\n".join("\t".join(str(c) for c in row) for sheet in wb.sheet_names
                                         for row in wb.get_sheet_by_name(sheet).to_python())
    return texts


def analyst_texts(analyst_db: Path) -> dict[str, str]:
    """Every text value of every table of the analyst database, one string per table."""
    con = duckdb.connect(str(analyst_db), read_only=True)
    try:
        texts = {}
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall():
            cols = [c for c, t in con.execute("SELECT column_name, data_type FROM duckdb_columns() "
                                              "WHERE table_name = ?", [table]).fetchall() if t == "VARCHAR"]
            if cols:
                rows = con.execute(f"SELECT {', '.join(f'coalesce({c}, {chr(39)}{chr(39)})' for c in cols)} "
                                   f"FROM {table}").fetchall()
                texts[table] = "\n".join("\t".join(r) for r in rows)
    finally:
        con.close()
    return texts


def unmasked_forms(number: str) -> set[str]:
    """A number as it may be written: plain, and with the separators people type."""
    digits = number.replace("-", "").replace(" ", "")
    forms = {digits, number}
    if SPACED.match(digits):
        forms |= {spaced_id(digits), "-".join(SPACED.match(digits).groups())}
    return forms


def test_free_text_numbers_are_masked_in_every_report_and_the_analyst_database(tmp_path):
    on_registry, named, failing, cleared = (person(61, "19400101"), person(62, "19410101"),
                                            person(63, "19420101", False), person(64, "19430101"))
    inbox, wh, out = tmp_path / "inbox", tmp_path / "warehouse.duckdb", tmp_path / "out"
    tekun = [common(on_registry) + ["分散供养", "全自理", ""], common(named) + ["分散供养", "全自理", ""],
             common(failing) + ["分散供养", "全自理", ""],
             common(cleared, holder="李某某") + ["分散供养", "全自理", ""]]
    for month in ("2020-01", "2020-02"):
        write_csv(roster_path(inbox, month, "tekun", f"{C}_tekun_{month.replace('-', '')}.csv"), TEKUN, tekun)
    # the payroll office's remark names another person's ID (spaced) and a salary card (dashed)
    remark = f"核查编号 {spaced_id(named['id'])}，工资卡 {PLANTED_ACCOUNT}"
    write_csv(inbox / "2020-01" / "registry" / "public_payroll.csv", ["id_number", "name", "employer", "remark"],
              [[on_registry["id"], on_registry["name"], "和平区教育局", remark]])
    run(tmp_path, "2020-01")
    ref = query(wh, "SELECT DISTINCT payment_ref FROM payment_ledger WHERE payroll_month = '2020-01' "
                    "AND id_number = ?", [failing["id"]])[0][0]
    assert doudi(["release", "--month", "2020-01", "--out", str(out), "--warehouse", str(wh), "--by", "财务科"]) == 0
    # the bank's reason quotes the closed account, spaced; the caseworker's note, the spouse's card
    failing_account = " ".join(re.findall(".{1,4}", acct(failing)))
    write_csv(inbox / "2020-02" / "bank_returns" / "ICBC_202001_回盘.csv", ["payment_ref", "status", "reason"],
              [[ref, "失败", f"账户 {failing_account} 已销户"]])
    assert doudi(["returns", "--month", "2020-02", "--inbox", str(inbox), "--out", str(out),
                  "--warehouse", str(wh)]) == 0
    assert doudi(["clear", "--month", "2020-02", "--program", "tekun", "--id", cleared["id"],
                  "--hold-reason", "account_holder_mismatch", "--by", "王科长", "--warehouse", str(wh),
                  "--note", f"配偶账户 {PLANTED_ACCOUNT}，经入户核实"]) == 0
    run(tmp_path, "2020-02")

    # the planted texts are where an auditor looks, masked
    exceptions = {m: (out / m / "reports" / "exceptions.html").read_text(encoding="utf-8")
                  for m in ("2020-01", "2020-02")}
    assert f"核查编号 {masked_id(named['id'])}，工资卡 {masked_account(PLANTED_ACCOUNT)}" in exceptions["2020-01"]
    assert f"账户 {masked_account(acct(failing))} 已销户" in exceptions["2020-02"]
    assert f"配偶账户 {masked_account(PLANTED_ACCOUNT)}，经入户核实" in exceptions["2020-02"]
    recon_jan = (out / "2020-01" / "reports" / "reconciliation.html").read_text(encoding="utf-8")
    assert f"账户 {masked_account(acct(failing))} 已销户" in recon_jan  # the refreshed report's failures
    analyst = analyst_texts(tmp_path / "warehouse_analyst.duckdb")
    assert f"配偶账户 {masked_account(PLANTED_ACCOUNT)}" in analyst["a_fact_finding"]

    # and nowhere, in any form, in full
    people = (on_registry, named, failing, cleared)
    secrets = set().union(*(unmasked_forms(p["id"]) | unmasked_forms(acct(p)) for p in people),
                          unmasked_forms(PLANTED_ACCOUNT), {failing_account})
    shown = {**report_texts(out), **analyst_texts(tmp_path / "warehouse_analyst.duckdb")}
    assert len(shown) > 5
    leaks = {(where, s) for where, text in shown.items() for s in secrets if s in text}
    assert leaks == set()
    # nor on the operator's terminal, where `doudi explain` quotes the findings
    from pipelines.explain import explain

    told = explain(context(tmp_path, "2020-02"), cleared["id"])
    assert f"配偶账户 {masked_account(PLANTED_ACCOUNT)}" in told
    assert [s for s in secrets if s in told] == []


@pytest.mark.unit
@pytest.mark.parametrize(("text", "shown"), [
    # an ID in groups, plain, with a lowercase check character; an account in dashed and spaced groups
    ("身份证 210102 19400101 0039 号", "身份证 210102********0039 号"),
    ("210102-19400101-003x", "210102********003X"),
    ("卡号6222020200112233001，", "卡号" + "*" * 15 + "3001，"),
    ("6222-0202-0011-2233-001 销户", "*" * 15 + "3001 销户"),
    ("6222 0202 0011 2233", "*" * 12 + "2233"),
    # what is no ID or account stays as written: months, dates, amounts, short numbers
    ("2020-03 2020-04 2020-05 各补发 1152.00 元", "2020-03 2020-04 2020-05 各补发 1152.00 元"),
    ("更正单 2020-5-3，电话 13800001111", "更正单 2020-5-3，电话 13800001111"),
    ("", ""),
])
def test_one_macro_masks_ids_and_accounts_in_free_text_whatever_the_separators(text, shown):
    from pipelines.sqlrun import connect

    con = connect()
    try:
        assert con.execute("SELECT mask_long_numbers(?)", [text]).fetchone()[0] == shown
        assert con.execute("SELECT mask_long_numbers(NULL)").fetchone()[0] is None
    finally:
        con.close()


# --- every file a run leaves, finished or killed ------------------------------------------------

OPERATOR_UMASK = 0o022  # the usual login default: new files 0644, readable by every local user
NUMBER_RE = re.compile(rb"[0-9]{12,30}X?")


def doudi_process(args: list[str], env: dict) -> subprocess.CompletedProcess:
    """The doudi command as an operator starts it, from a shell with the usual umask."""
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600, check=False, preexec_fn=lambda: os.umask(OPERATOR_UMASK))


def run_args(root: Path, inbox: Path, month: str) -> list[str]:
    return ["run", "--month", month, "--inbox", str(inbox), "--out", str(root / "out"),
            "--warehouse", str(root / "warehouse.duckdb")]


def readable_bytes(path: Path) -> bytes:
    """What a reader of the file learns: its bytes, and for the zipped and columnar formats their
    contents (an XLSX's sheets, a Parquet file's rows)."""
    import zipfile

    data = path.read_bytes()
    if data[:2] == b"PK":
        with zipfile.ZipFile(path) as z:
            data += b"".join(z.read(n) for n in z.namelist())
    elif data[:4] == b"PAR1" and data[-4:] == b"PAR1":
        con = duckdb.connect()
        try:
            rows = con.execute("SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
        finally:
            con.close()
        data += repr(rows).encode()
    return data


def exposed(root: Path, secrets: set[bytes]) -> list[tuple[str, str, int]]:
    """Files (and side files) under root that anyone but the owner can read and that hold a full ID
    number or account of the inbox's people: (path, mode, how many), one per file."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and stat.S_IMODE(path.stat().st_mode) & 0o077:
            hits = set(NUMBER_RE.findall(readable_bytes(path))) & secrets
            if hits:
                found.append((str(path.relative_to(root)), oct(stat.S_IMODE(path.stat().st_mode)), len(hits)))
    return found


def loose_folders(root: Path) -> list[str]:
    """DuckDB's spill folders that are not owner-only (the files DuckDB puts there are its own)."""
    return [str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_dir() and (p.name == "duckdb_tmp" or p.name.endswith(".tmp"))
            and stat.S_IMODE(p.stat().st_mode) != 0o700]


@pytest.fixture(scope="module")
def privacy_lab(tmp_path_factory):
    """A small generated inbox and its people's ID numbers and accounts; 2020-01 published."""
    from pipelines.generate import generate

    lab = tmp_path_factory.mktemp("privacy")
    generate(lab / "inbox", "2020-01..2020-02", persons=200, seed=17)
    env = dict(os.environ, DOUDI_OPERATOR="privacy-test")
    env.pop("DOUDI_FAULT_AT", None)
    first = lab / "first"
    done = doudi_process(run_args(first, lab / "inbox", "2020-01"), env)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = query(first / "warehouse.duckdb", "SELECT id_number FROM roster_row WHERE length(id_number) = 18 "
                                             "UNION SELECT bank_account FROM roster_row "
                                             "WHERE length(bank_account) >= 12")
    secrets = {r[0].encode() for r in rows}
    assert len(secrets) > 150
    return {"lab": lab, "env": env, "first": first, "secrets": secrets}


def test_a_finished_run_leaves_no_personal_data_readable_by_others(privacy_lab):
    first = privacy_lab["first"]
    assert exposed(first, privacy_lab["secrets"]) == []
    assert loose_folders(first) == []
    # the two databases, the folders of outputs: owner-only from birth
    for path in (first / "warehouse.duckdb", first / "warehouse_analyst.duckdb"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for folder in (first / "out", first / "out" / "2020-01" / "reports", first / "out" / "2020-01" / "_work"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


@pytest.mark.parametrize("point", ["publish.after_commit", "payout.after_first_file",
                                   "report.after_xlsx"])
def test_a_killed_run_leaves_no_personal_data_readable_by_others(privacy_lab, point):
    import shutil

    root = privacy_lab["lab"] / f"kill-{point}"
    shutil.copytree(privacy_lab["first"], root)
    inbox = privacy_lab["lab"] / "inbox"
    killed = doudi_process(run_args(root, inbox, "2020-02"), dict(privacy_lab["env"], DOUDI_FAULT_AT=point))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    if point == "publish.after_commit":
        # the committed month is in its month files (full ID numbers and accounts and all), named by
        # the write-ahead log: both owner-only
        wal = root / "warehouse.duckdb.wal"
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600
        rosters = list((root / "warehouse_months" / "roster_row").glob("2020-02-*.parquet"))
        assert rosters and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in rosters)
    assert exposed(root, privacy_lab["secrets"]) == []
    assert loose_folders(root) == []
    # the rerun that finishes the month leaves nothing readable either
    rerun = doudi_process(run_args(root, inbox, "2020-02"), privacy_lab["env"])
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert exposed(root, privacy_lab["secrets"]) == []
    reports = report_texts(root / "out")
    assert {w for w, text in reports.items() if set(NUMBER_RE.findall(text.encode())) & privacy_lab["secrets"]} \
        == set()
    analyst = analyst_texts(root / "warehouse_analyst.duckdb")
    assert {t for t, text in analyst.items() if set(NUMBER_RE.findall(text.encode())) & privacy_lab["secrets"]} \
        == set()


def test_files_are_owner_only_while_they_are_written(privacy_lab):
    """Temporary Parquet and workbooks, the analyst database under construction and the WAL are
    owner-only from their first byte, not only once renamed into place: watched during a run."""
    import shutil
    import time

    root = privacy_lab["lab"] / "watched"
    shutil.copytree(privacy_lab["first"], root)
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli",
                             *run_args(root, privacy_lab["lab"] / "inbox", "2020-02")],
                            env=privacy_lab["env"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: os.umask(OPERATOR_UMASK))
    seen: dict[str, int] = {}
    while proc.poll() is None:
        for path in [*root.rglob(".*.tmp-*"), *root.glob("*.wal")]:
            try:
                mode = stat.S_IMODE(path.stat().st_mode)
            except FileNotFoundError:  # renamed or removed between listing and stat
                continue
            seen[re.sub(r"tmp-\d+", "tmp-PID", str(path.relative_to(root)))] = mode
        time.sleep(0.005)
    assert proc.returncode == 0
    # the run was watched while it wrote Parquet, its payout files and the analyst database
    assert any(name.endswith(".parquet.tmp-PID") for name in seen), seen
    assert ".warehouse_analyst.duckdb.tmp-PID" in seen, seen
    assert {name: oct(mode) for name, mode in seen.items() if mode != 0o600} == {}
