"""The suites evaluated in DuckDB (pipelines/expectations_sql.py) against Great Expectations itself
on pandas (tests/gx_oracle.py), issue 22: the same rows break the same expectations, with the same
counts, on edge values of every expectation type the suites use and on the test inboxes (the
generated months with their planted defects, every malformed-input case, temporary-assistance
cases), for every program.
"""

from __future__ import annotations

import copy
import json
import shutil

import pytest

from pipelines.expectations_sql import KNOWN_KWARGS, evaluate, translate, unexpected_rows_sql
from pipelines.settings import EXPECTATIONS_DIR, RunError
from tests.gx_oracle import validate_frame

ORACLE_FORMAT = {"result_format": "COMPLETE", "unexpected_index_column_names": ["row_key"],
                 "partial_unexpected_count": 0, "return_unexpected_index_query": False}


def by_sql(con, table: str, suite: list[dict], parameters: dict) -> tuple[set, list[int]]:
    """{(expectation index, row_key)} of the failing rows, and each expectation's unexpected count."""
    outcomes = evaluate(con, table, suite, parameters)
    rows_sql = unexpected_rows_sql(table, outcomes, ["row_key"])
    failing = set(con.execute(rows_sql).fetchall()) if rows_sql else set()
    return failing, [o.unexpected_count for o in outcomes]


def by_gx(frame, suite: list[dict], parameters: dict, name: str) -> tuple[set, list[int]]:
    """The same from GX on the pandas frame (each expectation tagged with its index in meta)."""
    tagged = copy.deepcopy(suite)
    for i, e in enumerate(tagged):
        e["meta"] = {**(e.get("meta") or {}), "index": i}
    result = validate_frame(name, frame, tagged, parameters, ORACLE_FORMAT)
    failing, counts = set(), [0] * len(suite)
    for r in result.results:
        i = r.expectation_config.meta["index"]
        counts[i] = r.result.get("unexpected_count") or 0
        for item in r.result.get("unexpected_index_list") or []:
            key = item["row_key"] if isinstance(item, dict) else int(frame["row_key"].iloc[item])
            failing.add((i, int(key)))
    return failing, counts


def assert_same(con, table: str, suite: list[dict], parameters: dict, name: str) -> set:
    frame = con.execute(f"SELECT * FROM {table}").df()
    sql = by_sql(con, table, suite, parameters)
    gx = by_gx(frame, suite, parameters, name)
    if sql != gx:
        def show(failing):
            return {(suite[i]["type"], json.dumps(suite[i]["kwargs"], ensure_ascii=False), k) for i, k in failing}
        raise AssertionError(f"{name}: SQL and GX disagree\n only SQL: {sorted(show(sql[0] - gx[0]))}\n"
                             f" only GX: {sorted(show(gx[0] - sql[0]))}\n counts SQL {sql[1]}\n counts GX  {gx[1]}")
    return sql[0]


# ---------------------------------------------------------------------------------------- edge values
def _e(kind, **kwargs):
    return {"type": kind, "kwargs": kwargs, "meta": {}}


def _when(column, value):
    return {"type": "comparison", "column": {"name": column}, "operator": "==", "parameter": value}


EDGE_TABLE = """
CREATE TABLE edge AS SELECT * FROM (VALUES
 (1, NULL,  'x',  '男',  TRUE,  '210102194501010019', '王伟',       -1.5, NULL, '2020-01', '2020-01', 'a',  'a',  3,    3,    '集中供养'),
 (2, 'x',   NULL, '女',  FALSE, '21010219450101001X', '=SUM(A1)',   0.0,  0,    '2020-02', '2020-03', 'a',  'b',  2,    3,    '分散供养'),
 (3, '',    '',   NULL,  NULL,  '21010219450101001x', '-1',         12.0, 12,   NULL,      '2020-01', NULL, 'b',  NULL, 2,    NULL),
 (4, NULL,  'y',  ' 男', TRUE,  '２１０１０２１９４５０１０１００１９', '王' || chr(7) || '伟', 13.0, 13, NULL, NULL, NULL, NULL, 1, NULL, '集中供养'),
 (5, NULL,  'y',  'x',   FALSE, '2101021945010100',   chr(9) || '王', NULL, -1,   '2020-05', '2020-05', 'c',  'c',  4,    4,    'x'),
 (6, NULL,  NULL, '女',  TRUE,  NULL,                 NULL,       5.0,  6,    '2020-04', '2020-06', 'a',  'a',  NULL, NULL, '集中供养')
) t(row_key, must_be_null, must_not_be_null, sex, flag, id_number, name, amount, lag, to_m, from_m, a, b,
    size, members, placement)
"""
EDGE_SUITE = [
    _e("expect_column_values_to_be_null", column="must_be_null"),
    _e("expect_column_values_to_not_be_null", column="must_not_be_null"),
    _e("expect_column_values_to_be_in_set", column="sex", value_set=["男", "女"]),
    _e("expect_column_values_to_be_in_set", column="flag", value_set=[True]),
    _e("expect_column_values_to_be_in_set", column="placement", value_set={"$PARAMETER": "placements"}),
    _e("expect_column_values_to_match_regex", column="id_number", regex="^[0-9]{17}[0-9X]$"),
    _e("expect_column_values_to_not_match_regex", column="name",
       regex="^[=+\\-@\\t\\r]|[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f]"),
    _e("expect_column_values_to_be_between", column="amount", min_value=0),
    _e("expect_column_values_to_be_between", column="lag", min_value=0, max_value=12),
    _e("expect_column_pair_values_a_to_be_greater_than_b", column_A="to_m", column_B="from_m", or_equal=True),
    _e("expect_column_pair_values_a_to_be_greater_than_b", column_A="size", column_B="members", or_equal=False,
       ignore_row_if="either_value_is_missing"),
    _e("expect_column_pair_values_to_be_equal", column_A="a", column_B="b", ignore_row_if="either_value_is_missing"),
    _e("expect_column_pair_values_to_be_equal", column_A="b", column_B="a"),  # default: both missing dropped
    _e("expect_compound_columns_to_be_unique", column_list=["a", "placement"]),
    # row conditions: a boolean, a string; a null condition value leaves the row out
    _e("expect_column_values_to_not_be_null", column="id_number", row_condition=_when("flag", True)),
    _e("expect_column_values_to_be_in_set", column="sex", value_set=["男"], row_condition=_when("placement", "集中供养")),
]
EDGE_PARAMETERS = {"placements": ["集中供养", "分散供养"]}


@pytest.mark.unit
def test_every_type_the_suites_use_has_an_edge_case_here():
    suites = [json.loads(p.read_text(encoding="utf-8"))["expectations"] for p in EXPECTATIONS_DIR.glob("*.json")]
    used = {e["type"] for suite in suites for e in suite}
    assert used <= {e["type"] for e in EDGE_SUITE} == set(KNOWN_KWARGS)


@pytest.mark.unit
def test_edge_values_break_the_same_expectations_in_sql_and_in_gx():
    import duckdb

    con = duckdb.connect()
    con.execute(EDGE_TABLE)
    failing = assert_same(con, "edge", EDGE_SUITE, EDGE_PARAMETERS, "edge")
    # and the cases are the ones meant: spot checks worked out by hand
    assert {(0, 2), (0, 3)} <= failing                      # '' is a value, not a null
    assert {k for i, k in failing if i == 5} == {3, 4, 5}   # lowercase x, full-width digits, too short
    assert {k for i, k in failing if i == 6} == {2, 3, 4, 5}
    # to_m >= from_m: row 3 compares a null (unexpected), row 4 has two (dropped), rows 2 and 6 are earlier
    assert {k for i, k in failing if i == 9} == {2, 3, 6}
    assert {k for i, k in failing if i == 14} == {6}
    assert len(failing) > 20


@pytest.mark.unit
def test_a_type_or_argument_the_sql_path_does_not_know_is_refused():
    with pytest.raises(RunError, match="has no SQL evaluation"):
        translate(_e("expect_column_values_to_be_unique", column="x"))
    with pytest.raises(RunError, match="mostly"):
        translate(_e("expect_column_values_to_not_be_null", column="x", mostly=0.9))
    with pytest.raises(RunError, match="parameter 'county_codes'"):
        translate(_e("expect_column_values_to_be_in_set", column="x", value_set={"$PARAMETER": "county_codes"}))
    with pytest.raises(RunError, match="row condition"):
        translate(_e("expect_column_values_to_not_be_null", column="x",
                     row_condition={"type": "comparison", "column": {"name": "y"}, "operator": ">", "parameter": 1}))


@pytest.mark.unit
def test_a_trailing_newline_is_refused_by_the_sql_path_which_python_would_let_through():
    """RE2's $ is the end of the text; Python's also matches before a final newline. Staging trims
    every code (norm_code), so no staged value ends in one; were one to, SQL quarantines it."""
    import duckdb

    from pipelines.sqlrun import load_macros

    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT 1 AS row_key, '210102194501010019' || chr(10) AS id_number")
    suite = [_e("expect_column_values_to_match_regex", column="id_number", regex="^[0-9]{17}[0-9X]$")]
    assert by_sql(con, "t", suite, {})[0] == {(0, 1)}
    load_macros(con)
    assert con.execute("SELECT norm_code(id_number) FROM t").fetchone()[0] == "210102194501010019"


# ------------------------------------------------------------------------------------- the test inboxes
def _judge_both(ctx, program: str) -> set:
    from pipelines.sqlrun import connect
    from pipelines.validate import stage_judged_rows

    con = connect(ctx)
    try:
        suite, parameters = stage_judged_rows(con, ctx, program)
        if con.execute("SELECT count(*) FROM gx_frame").fetchone()[0] == 0:
            return set()
        return assert_same(con, "gx_frame", suite, parameters, f"roster_{program}")
    finally:
        con.close()


@pytest.mark.stage
def test_the_generated_months_are_judged_alike(sample_inbox, tmp_path):
    from pipelines.ingest import ingest_program
    from pipelines.settings import ROSTER_PROGRAMS
    from tests.helpers import context

    failing = 0
    for month in ("2020-01", "2020-03"):
        ctx = context(tmp_path, month, inbox=sample_inbox)
        for program in ROSTER_PROGRAMS:
            ingest_program(ctx, program)
        for program in ROSTER_PROGRAMS:
            failing += len(_judge_both(ctx, program))
    assert failing > 10  # the generator plants defects: the comparison saw failing rows


@pytest.mark.stage
def test_every_malformed_input_and_temporary_case_is_judged_alike(tmp_path):
    from pipelines.ingest import ingest_program
    from tests import test_malformed_inputs as malformed
    from tests import test_temporary as temporary
    from tests.helpers import context, roster_path

    inbox = tmp_path / "inbox"
    month = malformed.MONTH
    for n, (name, program, files, _expected) in enumerate(malformed.CASES):
        for fname, data in files.items():
            if "\\" in fname:
                continue  # a path in the name is rejected before any row is read
            path = roster_path(inbox, month, program, f"{malformed.C}_{program}_{n:02d}{name}_{fname}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    p, t = temporary.RESIDENT, temporary.MIGRANT
    temporary.temporary_file(inbox, month, [
        temporary.case(t, "失业滞留", "LS-1", "600"), temporary.case(p, "失火", "LS-2", "600"),
        temporary.case(p, "因病", "LS-3", "600", event_date="2020-04-01"), temporary.case(p, "因病", "", "600"),
        temporary.case(p, "因病", "LS-5", "600", level="省级"), temporary.case(p, "因病", "LS-6", "0"),
        temporary.case(p, "因病", "LS-7", "600", county="310112"),
        temporary.case(p, "因病", "LS-8", "600", event_date="2020-13-01")])
    ctx = context(tmp_path, month)
    for program in ("dibao", "tekun", "orphan", "disability", "temporary"):
        (inbox / month / "rosters" / program).mkdir(parents=True, exist_ok=True)
        ingest_program(ctx, program)
    failing = {program: _judge_both(ctx, program) for program in ("tekun", "dibao", "temporary")}
    assert len(failing["tekun"]) >= 15 and failing["dibao"] and len(failing["temporary"]) >= 6
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
