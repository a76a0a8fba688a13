"""Every command of README.md, exactly as written (issue 21), in a temporary copy of the checkout the
README assumes: .venv/ and dags/ of this project, its Makefile, a small generated inbox under
data/ (the README's /data/...), and the DOUDI_* paths the Makefile exports pointed there, so nothing
touches var/ or .airflow/ of the checkout. No AIRFLOW_* variable is set: an operator outside make has
none, and `airflow dags test` must still be quiet and load only dags/.

A README command is run unless SKIPPED names it with a reason; a command that cannot run as written
fails the test, so a new command in the README is either run here or listed."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import PROJECT

pytestmark = pytest.mark.external

README = PROJECT / "README.md"
LANGUAGES = {"sh", "text", "sql"}  # every fenced block says what it is: commands are in ```sh
SKIPPED = {  # a command's start -> why this test does not run it
    "make demo": "reinstalls .venv/ and runs four 3,000-person months through Airflow: this test runs the "
                 "demo's steps (generate, the months, airflow dags test, verify) on a small inbox",
    "make test": "the whole suite, this test included",
    "make test-fast": "the unit and stage tiers of the suite",
    "make model-check": "a test of the suite (tests/test_model_vs_engine.py)",
    "make mutation": "tools/mutation.py: minutes of planted mutants, checked by tests/test_mutation_list.py",
    "make celery-check": "starts PostgreSQL, Redis and two Celery workers; deploy/celery/run.sh checks itself",
}
PERSONS = "200"  # the sample inbox: small, the README's generator


def readme_commands(text: str) -> list[str]:
    """The shell commands of the README's ```sh blocks, continuation lines joined, comments dropped."""
    commands: list[str] = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M):
        pending = ""
        for line in block.splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if pending and line.lstrip().startswith("#"):  # a comment continuing the line above
                continue
            pending += line.rstrip()
            if pending.endswith("\\"):
                pending = pending[:-1]
                continue
            commands.append(re.sub(r"\s+#(?=[^\"']*$).*$", "", pending).strip())
            pending = ""
    return commands


def _skipped(command: str) -> str | None:
    return next((why for start, why in SKIPPED.items() if re.match(re.escape(start) + r"(\s|$)", command)), None)


@pytest.mark.unit
def test_every_fenced_block_says_what_it_holds_and_skips_are_current():
    text = README.read_text(encoding="utf-8")
    fences = re.findall(r"^```(\S*)", text, flags=re.M)
    openings = fences[0::2]
    assert set(openings) <= LANGUAGES, f"README blocks must be ```sh, ```text or ```sql: {set(openings)}"
    commands = readme_commands(text)
    assert commands and all("\\" not in c and "\n" not in c for c in commands)
    stale = [start for start in SKIPPED if not any(_skipped(c) == SKIPPED[start] for c in commands)]
    assert stale == [], "SKIPPED names commands the README no longer has"


def _copy_of_checkout(root: Path) -> None:
    """The folder the README's commands run in: the venv and DAGs of this project, its Makefile (dated
    before the venv's install, so that make sees an installed project), the reference tables."""
    venv = Path(sys.prefix)
    (root / ".venv").symlink_to(venv)
    (root / "dags").symlink_to(PROJECT / "dags")
    installed = (venv / ".installed").stat().st_mtime if (venv / ".installed").exists() else 0
    for name in ("Makefile", "pyproject.toml", "requirements.lock"):
        shutil.copy2(PROJECT / name, root / name)
        os.utime(root / name, (installed - 3600, installed - 3600))
    shutil.copytree(PROJECT / "data" / "reference", root / "data" / "reference")


def _sh(command: str, root: Path, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=root, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _ok(command: str, root: Path, env: dict, timeout: int = 300) -> str:
    proc = _sh(command, root, env, timeout)
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def _prepare_history(root: Path, env: dict) -> dict[str, str]:
    """What the README's examples stand on: 2020-01..04 run, 2020-01 released and a bank return file of
    it loaded in 2020-02, a death learnt late (a receivable). Returns the placeholders' values."""
    data = root / "data"
    _ok(f".venv/bin/doudi generate --inbox {data}/inbox --months 2020-01..2020-05 --persons {PERSONS} --seed 7",
        root, env)
    for month in ("2020-01", "2020-02", "2020-03"):
        _ok(f".venv/bin/doudi run --month {month}", root, env)
    # a death reported in 2020-04, dated before 2020-02: what 2020-02 and 2020-03 paid becomes receivable
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        dead = con.execute("SELECT l.id_number, max(r.name) FROM payment_ledger l JOIN roster_row r "
                           "USING (id_number) WHERE l.program = 'tekun' AND l.status = 'payable' "
                           "AND l.payroll_month = '2020-03' GROUP BY 1 ORDER BY 1 LIMIT 1").fetchone()
    with open(data / "inbox" / "2020-04" / "registry" / "deaths.csv", "a", encoding="utf-8", newline="") as f:
        csv.writer(f).writerow([dead[0], dead[1], "2020-01-20", "公安户籍注销"])
    _ok(".venv/bin/doudi run --month 2020-04", root, env)
    _ok(".venv/bin/doudi release --month 2020-01 --by 财务科", root, env)
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        refs = [r[0] for r in con.execute("SELECT payment_ref FROM payout_record WHERE payroll_month = '2020-01' "
                                          "AND bank_code = 'ICBC' ORDER BY 1 LIMIT 3").fetchall()]
        held = con.execute("SELECT min(id_number) FROM payment_ledger WHERE payroll_month = '2020-04' AND "
                           "program = 'dibao' AND hold_reason = 'account_holder_mismatch'").fetchone()[0]
        reported = con.execute("SELECT min(id_number) FROM registry_entry WHERE registry = 'deaths' "
                               "AND payroll_month = '2020-03'").fetchone()[0]
        receivable = con.execute("SELECT receivable_id FROM receivable ORDER BY amount DESC, 1 LIMIT 1").fetchone()
    assert refs and held and reported and receivable, (refs, held, reported, receivable)
    returns = data / "inbox" / "2020-02" / "bank_returns"
    returns.mkdir(parents=True)
    (returns / "ICBC_202001_回盘.csv").write_text(
        "payment_ref,status,reason\n" + "".join(f"{ref},成功,\n" for ref in refs), encoding="utf-8")
    _ok(".venv/bin/doudi returns --month 2020-02 --by 财务科", root, env)
    return {"clear": held, "withdraw": reported, "recover": receivable[0]}


def test_every_readme_command_runs_as_written(tmp_path):
    root = tmp_path / "doudi"
    root.mkdir()
    _copy_of_checkout(root)
    data = root / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DOUDI_"))}
    env.update(PYTHONPATH=str(PROJECT), DOUDI_INBOX=f"{data}/inbox", DOUDI_OUT=f"{data}/out",
               DOUDI_WAREHOUSE=f"{data}/warehouse.duckdb", DOUDI_REFERENCE=f"{data}/reference",
               # the paying side the Makefile exports for the demo and the tests: clearly a test account
               DOUDI_DEBTOR_ACCOUNT="TEST-DEBTOR-0000000001", DOUDI_DEBTOR_BIC="TESTCNBJ")
    placeholders = _prepare_history(root, env)

    ran, skipped = [], []
    for written in readme_commands(README.read_text(encoding="utf-8")):
        if _skipped(written):
            skipped.append(written)
            continue
        # the README's example paths and placeholders, in this copy
        command = written.replace("/data/", f"{data}/")
        doudi = re.match(r"\.venv/bin/doudi (\S+)", command)
        if doudi and doudi.group(1) in placeholders:
            command = re.sub(r"<ID>|<receivable_id>", placeholders[doudi.group(1)], command)
        assert "<" not in command.replace("<<", ""), f"a placeholder this test cannot fill: {written}"
        if command.startswith("export "):  # the variables stay set for the commands after it
            proc = _sh(f"{command} && env -0", root, env)
            assert proc.returncode == 0, proc.stderr
            env = dict(item.split("=", 1) for item in proc.stdout.split("\0") if "=" in item)
            ran.append(written)
            continue
        output = _ok(command, root, env, timeout=600)
        ran.append(written)
        if doudi and doudi.group(1) == "run":
            assert re.search(r"^2020-05: \d+ transfers", output, flags=re.M), output
            assert "next:      doudi verify --month 2020-05" in output, output
        elif doudi and doudi.group(1) == "verify":
            assert "files match the manifest" in output and "equal to the ledger" in output, output
        elif "airflow dags test" in command:
            # quiet, as under make: no example DAGs, a handful of warnings, not a thousand log lines
            assert len(output.splitlines()) <= 20, output[-3000:]
            assert "example_" not in output and "state=failed" not in output, output[-3000:]
            config = (root / ".airflow" / "airflow.cfg").read_text(encoding="utf-8")
            assert "load_examples = False" in config and f"dags_folder = {root}/dags" in config
        elif doudi:
            assert output.strip(), f"{written}: says nothing"
    assert any("airflow dags test" in c for c in ran) and any("doudi run" in c for c in ran)
    assert len(skipped) == len(SKIPPED), skipped
