"""The test tiers (tests/tiers.py): every test gets exactly one, a test without one stops collection,
and `-m <tier>` selects each test in exactly one tier. Small test files collected by an inner pytest
(pytester, in this process): nothing of them runs."""

from __future__ import annotations

import importlib
import tomllib

import pytest

import pipelines.cli  # noqa: F401  (imported here, once: pytester forgets what an inner run imports,
import tests.helpers  # noqa: F401   and native modules such as pyarrow must not be imported twice)
from tests.conftest import PROJECT
from tests.tiers import CALLS, TIERS

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.unit


@pytest.fixture
def tiered(pytester):
    """An inner project with the tiers registered as in pyproject.toml and the conftest hook."""
    pytester.makeini("[pytest]\naddopts = --strict-markers\nmarkers =\n" + "".join(f"    {t}\n" for t in TIERS))
    pytester.makeconftest("from tests.tiers import pytest_collection_modifyitems  # noqa: F401\n")
    return pytester


def collected(pytester, *args) -> set[str]:
    result = pytester.runpytest("--collect-only", "-q", *args)
    assert result.ret == 0, result.outlines
    return {line.split("::")[1] for line in result.outlines if "::" in line}


def test_a_test_without_a_tier_stops_collection_and_is_named(tiered):
    tiered.makepyfile(test_new="def test_forgotten():\n    assert True\n\n"
                               "import pytest\n\n@pytest.mark.unit\ndef test_marked():\n    assert True\n")
    result = tiered.runpytest("--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = "\n".join(result.errlines)
    assert "test_new.py::test_forgotten: no tier" in errors
    assert "test_marked" not in errors


def test_marks_and_calls_give_each_test_one_tier(tiered):
    tiered.makepyfile(test_mixed='''
import subprocess

import pytest

from pipelines.cli import main as doudi
from pipelines.monthly import run_month

pytestmark = pytest.mark.unit  # the module's default


def test_pure():
    assert 1 + 1 == 2


@pytest.mark.stage
def test_marked_stage():
    assert True


def test_names_run_month():
    assert callable(run_month)


def _helper():
    return subprocess.run(["true"])


def test_calls_a_helper_that_starts_a_program():
    assert callable(_helper)
    _helper


def test_a_cli_command():
    assert callable(lambda: doudi(["verify", "--month", "2020-01"]))


def test_the_cli_run():
    assert callable(lambda: doudi(["run", "--month", "2020-01"]))


@pytest.fixture
def month():
    from tests.helpers import run

    return run


def test_uses_a_fixture_that_runs_a_month(month):
    assert month


@pytest.mark.parametrize("n", [1, 2])
def test_cases(n):
    assert n
''')
    items, _ = tiered.inline_genitems()
    # one tier mark each, wherever it came from: the module's mark is gone from the tests it did not decide
    tiers = {item.name: [m.name for m in item.iter_markers() if m.name in TIERS] for item in items}
    assert tiers == {"test_pure": ["unit"], "test_cases[1]": ["unit"], "test_cases[2]": ["unit"],
                     "test_marked_stage": ["stage"], "test_a_cli_command": ["stage"],
                     "test_names_run_month": ["e2e"], "test_the_cli_run": ["e2e"],
                     "test_uses_a_fixture_that_runs_a_month": ["e2e"],
                     "test_calls_a_helper_that_starts_a_program": ["external"]}
    # and -m selects by them
    assert collected(tiered, "-m", "unit or external") == {"test_pure", "test_cases[1]", "test_cases[2]",
                                                          "test_calls_a_helper_that_starts_a_program"}


def test_a_mark_lighter_than_what_the_test_calls_is_refused(tiered):
    tiered.makepyfile(test_wrong='''
import pytest

from tests.helpers import run


@pytest.fixture
def month():
    return run


@pytest.mark.unit
def test_claims_unit(month):
    assert month


@pytest.mark.unit
@pytest.mark.stage
def test_two_tiers():
    assert True
''')
    result = tiered.runpytest("--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = "\n".join(result.errlines)
    assert "test_claims_unit: marked unit, but calls fixture month -> run" in errors and "e2e" in errors
    assert "test_two_tiers: marked with two tiers: ['stage', 'unit']" in errors


def test_pyproject_registers_the_tiers_strictly_in_order():
    options = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in options["addopts"].split()
    assert [m.split(":")[0] for m in options["markers"]] == list(TIERS)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_call_that_decides_a_tier_still_exists(name):
    """A stage renamed or moved must be renamed here too: else the tests that call it lose their tier."""
    module, _, attr = name.rpartition(".")
    try:
        importlib.import_module(name)
    except ImportError:
        assert module and callable(getattr(importlib.import_module(module), attr, None)), name
