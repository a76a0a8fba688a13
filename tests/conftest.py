"""Shared fixtures: a small generated inbox and its four months run through the pipeline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.tiers import pytest_collection_modifyitems  # noqa: F401  (every test gets its tier)

PROJECT = Path(__file__).resolve().parent.parent
MONTHS = ["2020-01", "2020-02", "2020-03", "2020-04"]
os.environ.setdefault("AIRFLOW_HOME", str(PROJECT / ".airflow"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# the paying side of the tests' payout files, as the Makefile sets it for `make demo` and `make test`:
# clearly a test account (doudi has no default, and refuses to write pain.001 without one)
os.environ.setdefault("DOUDI_DEBTOR_ACCOUNT", "TEST-DEBTOR-0000000001")
os.environ.setdefault("DOUDI_DEBTOR_BIC", "TESTCNBJ")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test's captured stderr first: doudi's one-sentence error is there, and a month's run
    prints pages of stdout before it, which a CI log that keeps only part of the output cuts."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        report.sections.sort(key=lambda section: "stderr" not in section[0])


@pytest.fixture(scope="session")
def sample_inbox(tmp_path_factory) -> Path:
    from pipelines.generate import generate

    inbox = tmp_path_factory.mktemp("sample") / "inbox"
    generate(inbox, "2020-01..2020-04", persons=800, seed=11)
    return inbox


@pytest.fixture(scope="session")
def four_months(tmp_path_factory, sample_inbox) -> dict:
    """The sample inbox run for 2020-01..2020-04 with the CLI's stage functions."""
    from pipelines.monthly import run_month
    from tests.helpers import context

    tmp = tmp_path_factory.mktemp("run")
    results = {}
    for m in MONTHS:
        results[m] = run_month(context(tmp, m, inbox=sample_inbox))
    return {"tmp": tmp, "inbox": sample_inbox, "results": results, "warehouse": tmp / "warehouse.duckdb",
            "out": tmp / "out"}
