"""The model graph (pipelines/models.py, issue 18): every sql/ file declares itself, the runner
orders the models from what they read, and refuses an input nobody makes or models that read each
other in a circle, naming the files."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.audits import enforce
from pipelines.models import (
    KINDS,
    MODEL_LAYERS,
    ModelGraph,
    audits,
    graph,
    header,
    models_for,
    run_models,
)
from pipelines.models import SOURCES as SOURCES_DECLARED
from pipelines.settings import SQL_DIR, RunError

pytestmark = pytest.mark.unit


def write(sql_dir: Path, relpath: str, body: str, kind: str = "table") -> None:
    path = sql_dir / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"-- {path.stem}: a test model.\n-- grain: one row per thing.\n-- kind: {kind}\n{body}\n",
                    encoding="utf-8")


SOURCES = {"src_rows": "rows Python makes."}


def test_the_order_follows_from_what_each_model_reads(tmp_path):
    write(tmp_path, "staging/stg_a.sql", "select * from src_rows")
    write(tmp_path, "intermediate/int_c.sql", "with src_rows as (select 1 as x) select * from stg_a, src_rows")
    write(tmp_path, "intermediate/int_b.sql", "select * from int_c join stg_a using (x)")
    write(tmp_path, "intermediate/int_lone.sql", "select * from src_rows")
    g = ModelGraph(tmp_path, SOURCES, {})
    assert [m.name for m in g.models_for(["int_b"])] == ["stg_a", "int_c", "int_b"]  # int_lone: not needed
    assert [m.name for m in g.models_for(["int_b"], built=["stg_a"])] == ["int_c", "int_b"]
    assert g.models_for(["int_b"])[0].grain == "one row per thing"
    with pytest.raises(RunError, match="no model makes src_rows.*a source"):
        g.models_for(["src_rows"])


def test_an_input_that_is_neither_model_nor_source_is_refused_naming_the_file(tmp_path):
    write(tmp_path, "staging/stg_a.sql", "select * from src_rows")
    write(tmp_path, "intermediate/int_b.sql", "select * from stg_a join cur_rooster using (x)")
    g = ModelGraph(tmp_path, SOURCES, {})
    with pytest.raises(RunError, match=r"sql/intermediate/int_b.sql reads cur_rooster: neither a model"):
        g.models_for(["int_b"])
    with pytest.raises(RunError, match=r"sql/intermediate/int_b.sql reads cur_rooster"):
        g.check()


def test_models_that_read_each_other_in_a_circle_are_refused(tmp_path):
    write(tmp_path, "intermediate/int_a.sql", "select * from int_c")
    write(tmp_path, "intermediate/int_b.sql", "select * from int_a")
    write(tmp_path, "intermediate/int_c.sql", "select * from int_b union all select * from src_rows")
    with pytest.raises(RunError, match=r"in a circle: sql/intermediate/int_a.sql -> sql/intermediate/int_c.sql "
                                       r"-> sql/intermediate/int_b.sql -> sql/intermediate/int_a.sql"):
        ModelGraph(tmp_path, SOURCES, {}).check()


def test_a_model_without_kind_or_grain_is_refused_naming_the_file(tmp_path):
    (tmp_path / "staging").mkdir()
    (tmp_path / "staging" / "stg_a.sql").write_text("-- stg_a: no kind.\n-- grain: one row per a.\nselect 1\n")
    with pytest.raises(RunError, match=r"sql/staging/stg_a.sql has no `-- kind:` line"):
        ModelGraph(tmp_path, SOURCES, {})
    (tmp_path / "staging" / "stg_a.sql").write_text("-- stg_a: no grain.\n-- kind: view\nselect 1\n")
    with pytest.raises(RunError, match=r"sql/staging/stg_a.sql has no `-- grain:` line"):
        ModelGraph(tmp_path, SOURCES, {})


def test_the_header_reads_grain_in_prose_a_kind_with_its_reason_and_a_message_over_lines():
    text = ("-- int_x: what it is. grain: one row per\n-- person and month. More prose.\n"
            "-- kind: view (streamed, never held)\n-- name: other_x\nselect 1\n")
    assert header(text) == {"grain": "one row per person and month", "kind": "view (streamed, never held)",
                            "name": "other_x"}
    audit = "-- audit: lines\n-- message: {n} lines that\n--   go on\n-- Prose, not the message.\nselect 1\n"
    assert header(audit) == {"audit": "lines", "message": "{n} lines that go on"}


def test_run_models_makes_views_and_tables_as_each_model_says(tmp_path, monkeypatch):
    write(tmp_path, "staging/stg_a.sql", "select * from src_rows", kind="view")
    write(tmp_path, "intermediate/int_b.sql", "select x * 2 as y from stg_a")
    g = ModelGraph(tmp_path, SOURCES, {})
    monkeypatch.setattr("pipelines.models.graph", lambda: g)
    monkeypatch.setattr("pipelines.sqlrun.SQL_DIR", tmp_path)  # run_model reads the file from there
    con = duckdb.connect()
    con.execute("CREATE TABLE src_rows AS SELECT 21 AS x")
    assert run_models(con, ["int_b"]) == ["stg_a", "int_b"]
    kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall())
    assert kinds == {"src_rows": "BASE TABLE", "stg_a": "VIEW", "int_b": "BASE TABLE"}
    assert con.execute("SELECT y FROM int_b").fetchall() == [(42,)]


# --- the project's own sql/ ----------------------------------------------------------------------

def test_every_sql_file_declares_itself_and_every_input_is_known():
    g = graph()
    files = sorted(p.relative_to(SQL_DIR).as_posix() for layer in MODEL_LAYERS for p in (SQL_DIR / layer).glob("*.sql"))
    assert sorted(m.path for m in g.models.values()) == files
    for model in g.models.values():
        assert model.kind in KINDS and model.grain.startswith("one row per"), model.path
    assert {a.path for a in g.audit_files} == {p.relative_to(SQL_DIR).as_posix()
                                              for p in (SQL_DIR / "audits").glob("*.sql")}
    g.check()  # every model's and audit's inputs are models or declared sources; no circle
    read = set().union(*(g.inputs(m.path, m.text) for m in g.models.values()),
                       *(g.inputs(a.path, a.sql) for a in g.audit_files))
    # a declared source that no model reads is a stale declaration (bank_templates.csv: Python reads it)
    assert sorted(set(SOURCES_DECLARED) - read) == ["raw_bank_templates"]


def test_the_engine_reads_its_ledger_from_payment_ledger_sql_under_the_engines_name():
    ledger = graph().models["month_ledger"]
    assert ledger.path == "marts/payment_ledger.sql"
    order = [m.name for m in models_for(["month_ledger"])]
    assert order.index("int_fund_split") < order.index("month_ledger")
    assert order.index("int_units") < order.index("int_service_months") < order.index("int_basis_roster")


def test_an_audit_counts_the_rows_its_sql_returns_and_says_so_in_its_sentence():
    con = duckdb.connect()
    con.execute("CREATE TABLE month_ledger (payroll_month VARCHAR, service_month VARCHAR, program VARCHAR, "
                "line_type VARCHAR, id_number VARCHAR, approval_no VARCHAR, status VARCHAR, amount DECIMAL(18, 2), "
                "line_id VARCHAR, reissue_of VARCHAR[])")
    con.execute("CREATE TABLE hist_ledger AS SELECT *, NULL::VARCHAR AS payment_state FROM month_ledger")
    enforce(con, audits("engine_month"), "broken")  # nothing to find
    con.execute("INSERT INTO month_ledger (payroll_month, service_month, program, line_type, id_number, status, "
                "amount) VALUES ('2020-01', '2020-01', 'tekun', 'regular', 'A', 'payable', -1.00)")
    with pytest.raises(RunError, match=r"^broken: 1 negative amounts$"):
        enforce(con, audits("engine_month"), "broken")
