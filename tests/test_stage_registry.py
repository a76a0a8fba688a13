"""Issue 18: the stages are declared once (pipelines/stages.py), artefact paths are spelled once
(pipelines/artefacts.py), and no module imports a stage module but the orchestration."""

from __future__ import annotations

import ast

import pytest

from pipelines import stages
from tests.conftest import PROJECT

STAGE_NAMES = [s.name for s in stages.STAGES]
# the modules that run the stages in order, and so import them
ORCHESTRATION = {"monthly", "tasks", "cli", "stages"}
# stage modules the registry reaches through a wrapper (ingest: stages.ingest_program), and the
# bank_returns DAG's stage
OTHER_STAGE_MODULES = {"ingest", "bank_returns"}
# imports left as they are, with the reason
KNOWN = {
    ("warehouse", "bank_returns"): "publish matches returns received before a rerun and checks answered refs",
    ("bank_returns", "ingest"): "decode_text (publish rewrite: pipelines.io)",
    ("bank_returns", "payout"): "released_batches (publish rewrite: pipelines.lifecycle)",
    ("watch", "integrity"): "the watch list reads the registries as integrity does (_read_registry_csv)",
    ("simulate", "compute"): "a simulation reruns the payment engine on scenario reference data",
}


def _stage_modules() -> set[str]:
    """The modules whose functions the registry names, and the bank_returns DAG's."""
    # a cut's plan is not a stage: pipelines/partitions.py, how a month is cut, is shared
    dotted = [s.run for s in stages.STAGES] + [f for s in stages.STAGES if s.cut for f in (s.cut.part, s.cut.combine)]
    return {d.partition(":")[0].removeprefix("pipelines.") for d in dotted} - ORCHESTRATION | OTHER_STAGE_MODULES


def _imports(path) -> set[str]:
    """Every pipelines module a file imports, at its top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pipelines"):
            if node.module == "pipelines":
                out |= {a.name for a in node.names}
            else:
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("pipelines.")}
    return out


@pytest.mark.unit
def test_no_module_imports_a_stage_module_but_the_orchestration():
    stage_modules = _stage_modules()
    assert {"reference", "ingest", "validate", "integrity", "compute", "payout", "warehouse", "report"} <= stage_modules
    wrong = []
    for path in sorted((PROJECT / "pipelines").glob("*.py")):
        me = path.stem
        if me in ORCHESTRATION:
            continue
        for other in sorted(_imports(path) & stage_modules - {me}):
            if (me, other) not in KNOWN:
                wrong.append(f"{me} imports {other}")
    assert wrong == []


@pytest.mark.unit
def test_no_import_circle_among_pipelines_modules_outside_the_orchestration():
    graph = {p.stem: _imports(p) - {p.stem} for p in (PROJECT / "pipelines").glob("*.py")
             if p.stem not in ORCHESTRATION}
    # partitions and validate imported each other: the circle the issue names, gone for good
    assert "validate" not in graph["partitions"]
    state: dict[str, int] = {}
    circles = []

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                circles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert circles == []


def _literal_sequences(path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            words = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            yield words


@pytest.mark.unit
def test_the_stage_order_is_written_once():
    """No list of stage names outside the registry: the DAG, `doudi run`, bench and the tests derive it."""
    files = [*(PROJECT / "pipelines").glob("*.py"), *(PROJECT / "dags").glob("*.py"), PROJECT / "bench" / "run.py",
             *(PROJECT / "tests").glob("test_*.py")]
    names = set(STAGE_NAMES)
    lists = [f"{p.relative_to(PROJECT)}: {words}" for p in files if p.name not in ("stages.py", "test_stage_registry.py")
             for words in _literal_sequences(p) if len(names & set(words)) >= 3]
    assert lists == []


# the analysts' database and bank returns still spell their own paths
PATH_SPELLERS = {"artefacts.py", "analyst.py", "bank_returns.py"}


@pytest.mark.unit
def test_artefact_file_names_are_spelled_only_in_artefacts():
    spelled = ("roster.parquet", "ledger.parquet", "findings.parquet", "payment_refs.parquet", "records.parquet",
               "reference_check.json", "policy_resolved.json", "manifest.json", "released.json", "deaths_known.parquet",
               "receivables.parquet", "registry.parquet", "files.parquet", "gx.json", "lifecycle.json")
    found = []
    for path in (PROJECT / "pipelines").glob("*.py"):
        if path.name in PATH_SPELLERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in spelled:
                found.append(f"{path.name}:{node.lineno} {node.value}")
            elif isinstance(node, ast.JoinedStr):
                tail = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
                if any(tail.endswith("." + s) or tail.endswith(s) for s in spelled):
                    found.append(f"{path.name}:{node.lineno} {tail}")
    assert found == []


@pytest.mark.unit
def test_every_read_has_a_writer_before_it():
    """The registry is consistent: a stage reads only what an earlier stage writes."""
    for i, stage in enumerate(stages.STAGES):
        for artefact in stage.reads:
            assert stages.STAGES.index(stages.writer_of(artefact)) < i, (stage.name, artefact.name)


@pytest.mark.stage  # Airflow parses the DAG file in-process
def test_the_dag_is_the_registry_in_order():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(PROJECT / "dags")).dags["monthly_disbursement"]
    expected = []
    for s in stages.STAGES:
        expected += [f"plan_{s.name}", s.name, f"combine_{s.name}"] if s.cut else [s.name]
    order = [t.task_id for t in dag.topological_sort()] if hasattr(dag, "topological_sort") else None
    if order is None:  # Airflow 3: follow the stage chain from the first stage
        order = _chain(dag, expected[0])
    assert [t for t in order if t in expected] == expected
    for s in stages.STAGES:
        task = dag.get_task(s.name)
        assert task.task_group.group_id == s.group
        assert task.is_mapped == bool(s.cut or s.per_program)
    writer = {s.name if not s.cut else f"combine_{s.name}": s for s in stages.STAGES}
    for task_id, s in writer.items():
        assert {o.uri.rstrip("/") for o in dag.get_task(task_id).outlets} == \
            {a.asset_uri.rstrip("/") for a in s.writes if a.asset_uri}


def _chain(dag, first):
    order, task = [first], dag.get_task(first)
    while True:
        nxt = sorted(t for t in task.downstream_task_ids if t != "release_month")
        if not nxt:
            return order
        # a plan task leads to its mapped task and its combine: the mapped task first
        task = dag.get_task(min(nxt, key=lambda t: len(dag.get_task(t).upstream_task_ids)))
        order.append(task.task_id)


def test_a_missing_input_names_the_file_and_the_stage_that_writes_it(tmp_path):
    from pipelines.settings import RunContext, RunError

    ctx = RunContext(month="2020-01", inbox=str(tmp_path / "inbox"), reference=PROJECT / "data" / "reference",
                     out=tmp_path / "out", warehouse=tmp_path / "warehouse.duckdb")
    with pytest.raises(RunError) as raised:
        stages.call(ctx, stages.BY_NAME["integrity"])
    message = str(raised.value)
    assert message.startswith("integrity needs the validated rosters (")
    assert "dibao.parquet), which the validate stage writes: run validate for 2020-01 first" in message
    assert "\n" not in message
