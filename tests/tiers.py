"""Test tiers (issue 18): every test is exactly one of

    unit      no month is run: pure functions, SQL macros and models on an in-memory DuckDB, list checks
    stage     one stage or a few, in-process, on small inputs; never a whole month through every stage
    e2e       whole months in-process: run_month, `doudi run` through the CLI, multi-month histories,
              the model-vs-engine property
    external  other programs: `airflow dags test`, CLI subprocesses, LibreOffice, Chromium, kill -9

`make test` runs them in that order, one pytest each; `make test-fast` runs unit and stage.

A test's tier is the heaviest of
  - its own mark (`@pytest.mark.unit`), or else its module's (`pytestmark = pytest.mark.unit`);
  - what its code and the code of its fixtures call (CALLS), followed through the helpers in tests/:
    a test that calls tests.helpers.run calls run_month, so it is e2e wherever it sits.
Collection stops, naming the tests, when a test has no mark and calls nothing of CALLS, when its own
marks name two tiers, or when its own mark is lighter than what it calls. So a mark is needed where
the calls say nothing (a pure function: unit) or too little (Airflow parsing the DAG files: stage),
and can never hide a month or a process a test starts.
"""

from __future__ import annotations

import dis
import importlib
import inspect
from types import CodeType, FunctionType, ModuleType

import pytest

TIERS = ("unit", "stage", "e2e", "external")  # lightest first: the order `make test` runs them in
RANK = {t: i for i, t in enumerate(TIERS)}

# What a call says about the test that makes it: a dotted name covers everything under it
# (`subprocess` covers subprocess.run and Popen; `pipelines.tasks` every task body of the DAGs).
CALLS = {
    "subprocess": "external",
    "pipelines.monthly.run_month": "e2e",
    "pipelines.monthly.stages": "e2e",
    "pipelines.monthly.partitioned_stages": "e2e",
    "pipelines.stages.call": "stage",
    "pipelines.cli.main": "stage",  # a command; `run` makes it e2e (CLI_RUN)
    "pipelines.tasks": "stage",
    "pipelines.reference.check_reference": "stage",
    "pipelines.ingest.ingest_program": "stage",
    "pipelines.validate.validate_program": "stage",
    "pipelines.validate.validate_partition": "stage",
    "pipelines.validate.combine_validation": "stage",
    "pipelines.partitions.plan_compute_partitions": "stage",
    "pipelines.integrity.check_integrity": "stage",
    "pipelines.linkage.find_near_duplicates": "stage",
    "pipelines.compute.compute_payments": "stage",
    "pipelines.compute.compute_partition": "stage",
    "pipelines.compute.combine_compute": "stage",
    "pipelines.payout.write_payouts": "stage",
    "pipelines.payout.release": "stage",
    "pipelines.warehouse.publish_month": "stage",
    "pipelines.report.reconcile_and_report": "stage",
    "pipelines.bank_returns.load_bank_returns": "stage",
    "pipelines.simulate.simulate": "stage",
    "pipelines.explain.explain": "stage",
    "pipelines.generate.generate": "stage",  # the sample generator writes months of rosters
}
CLI_RUN = "run"  # doudi(["run", ...]) in the code that calls the CLI: a whole month


def _covers(name: str) -> str | None:
    """The CALLS entry a dotted name falls under."""
    for key in CALLS:
        if name == key or name.startswith(key + "."):
            return key
    return None


def _dotted(obj) -> str | None:
    if isinstance(obj, ModuleType):
        return obj.__name__
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and callable(obj):
        return f"{module}.{qualname}"
    return None


def _ours(obj) -> bool:
    """A function of the test suite (a helper, a fixture, a test), whose code is followed; the code
    of pipelines/ is not (run_month itself calls every stage)."""
    if not isinstance(obj, FunctionType):
        return False
    module = obj.__module__ or ""
    return module.split(".")[0] == "tests" or module.rpartition(".")[2].startswith(("test_", "conftest"))


def _inner(func):
    """The test's own function behind hypothesis's and functools' wrappers."""
    func = getattr(getattr(func, "hypothesis", None), "inner_test", func)
    func = inspect.unwrap(getattr(func, "__func__", func))
    return func


def _strings(consts):
    """The string constants, also those folded into a tuple (["run", "--month", "2020-01"])."""
    for c in consts:
        if isinstance(c, str):
            yield c
        elif isinstance(c, (tuple, frozenset)):
            yield from _strings(c)


_direct: dict[CodeType, tuple[dict[str, str], set[str], list]] = {}


def _names_in(code: CodeType, namespace: dict) -> tuple[dict[str, str], set[str], list]:
    """What one code object names (dotted name -> how it is written), its string constants, and the
    code it leads to: nested functions and lambdas, and the functions of tests/ it names."""
    if code in _direct:
        return _direct[code]
    names: dict[str, str] = {}
    follow: list = [(c, namespace, c.co_name) for c in code.co_consts if isinstance(c, CodeType)]
    strings = set(_strings(code.co_consts))
    modules: list[str] = []
    imported: list[str] = [i.argval for i in dis.get_instructions(code) if i.opname == "IMPORT_NAME"]
    for word in code.co_names:
        obj = namespace.get(word)
        if obj is None:
            continue
        dotted = _dotted(obj)
        if dotted:
            names.setdefault(dotted, word)
            if isinstance(obj, ModuleType):
                modules.append(dotted)
        if _ours(obj):
            follow.append((obj.__code__, obj.__globals__, word))
    for module in modules + imported:
        names.setdefault(module, module)
        for word in code.co_names:
            names.setdefault(f"{module}.{word}", f"{module}.{word}")
        if module.split(".")[0] == "tests":  # a helper imported inside a function
            mod = importlib.import_module(module)
            for word in code.co_names:
                obj = getattr(mod, word, None)
                if _ours(obj):
                    follow.append((obj.__code__, obj.__globals__, word))
    _direct[code] = (names, strings, follow)
    return _direct[code]


def called_tier(starts: list[tuple[CodeType, dict, str]]) -> tuple[str | None, str]:
    """The heaviest tier CALLS gives what the code reaches from `starts`, and the path to it."""
    best, why = None, ""
    strings: set[str] = set()
    cli_path = ""
    seen: set[CodeType] = set()
    queue = [(code, namespace, label) for code, namespace, label in starts]
    while queue:
        code, namespace, path = queue.pop(0)
        if code in seen:
            continue
        seen.add(code)
        names, consts, follow = _names_in(code, namespace)
        strings |= consts
        for dotted, written in names.items():
            key = _covers(dotted)
            if key is None:
                continue
            tier = CALLS[key]
            if key == "pipelines.cli.main":
                cli_path = f"{path} -> {written}"
            if best is None or RANK[tier] > RANK[best]:
                best, why = tier, f"{path} -> {written} ({key})"
        queue += [(c, ns, f"{path} -> {label}") for c, ns, label in follow]
    if cli_path and CLI_RUN in strings and RANK["e2e"] > RANK[best]:
        best, why = "e2e", f"{cli_path} with {CLI_RUN!r} (doudi run)"
    return best, why


def _starts(item) -> list[tuple[CodeType, dict, str]]:
    """The test's function and the functions of the tests/ fixtures it uses, directly or not."""
    func = _inner(item.obj)
    starts = [(func.__code__, func.__globals__, item.name)] if hasattr(func, "__code__") else []
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    for name in getattr(item, "fixturenames", ()):
        if name in defs and defs[name]:
            fixture = _inner(defs[name][-1].func)
            if _ours(fixture):
                starts.append((fixture.__code__, fixture.__globals__, f"fixture {name}"))
    return starts


def _tier_marks(node) -> list[str]:
    return [m.name for m in node.own_markers if m.name in RANK]


def resolve(item) -> tuple[str | None, str | None]:
    """(tier, None), or (None, what is wrong) for a test collection must refuse."""
    own = _tier_marks(item)
    inherited = next((marks for node in reversed(item.listchain()[:-1]) if (marks := _tier_marks(node))), [])
    if len(set(own)) > 1 or (not own and len(set(inherited)) > 1):
        return None, f"marked with two tiers: {sorted(set(own or inherited))}"
    marked = (own or inherited or [None])[0]
    called, why = called_tier(_starts(item))
    if marked is None and called is None:
        return None, ("no tier: mark it @pytest.mark.unit, stage, e2e or external (tests/tiers.py), "
                      "or pytestmark = pytest.mark.<tier> for its module")
    if own and called and RANK[called] > RANK[own[0]]:
        return None, f"marked {own[0]}, but calls {why}: {called}"
    if marked is None or (called is not None and RANK[called] > RANK[marked]):
        return called, None
    return marked, None


@pytest.hookimpl(tryfirst=True)  # before -m selects by the marks this sets
def pytest_collection_modifyitems(session, config, items):
    tiers, problems = {}, {}
    for item in items:
        tier, problem = resolve(item)
        if problem:  # once per test function, however many cases it is parametrized with
            problems.setdefault(f"{item.nodeid.split('[')[0]}: {problem}", None)
        tiers[item] = tier
    if problems:
        raise pytest.UsageError("every test needs exactly one tier (tests/tiers.py):\n  " + "\n  ".join(problems))
    # one tier mark per test, on the test: a module's mark is only its tests' default
    for item in items:
        for node in item.listchain():
            node.own_markers[:] = [m for m in node.own_markers if m.name not in RANK]
    for item, tier in tiers.items():
        item.add_marker(getattr(pytest.mark, tier))
