"""Given/expect unit tests of the SQL models (issue 18): the harness itself, and what holds the
tests to the pipeline: the given tables have the types the models really make, and every engine
and integrity model has its own given/expect test.

The tests of the models are by layer:
  tests/test_model_units_months.py     who is a unit, which service months a payroll settles
  tests/test_model_units_amounts.py    standards, the program formulas, the price subsidy,
                                       temporary assistance (the golden cases of the engine)
  tests/test_model_units_lines.py      payment lines, holds, reissues, fund split, findings,
                                       receivables, the ledger
  tests/test_model_units_integrity.py  the integrity models
"""

from __future__ import annotations

import re
from decimal import Decimal as D
from pathlib import Path

import pytest

from pipelines.compute import ENGINE_TARGETS
from pipelines.integrity import INTEGRITY_TARGET
from pipelines.models import models_for
from tests.modeltest import SCHEMAS, compare, connection_fixture, mt_fixture  # noqa: F401  (fixtures)

pytestmark = pytest.mark.unit

TESTS = Path(__file__).resolve().parent

# the engine's and integrity's models in the order the runner gives (pipelines/models.py; by file
# name: payment_ledger.sql is the engine's month_ledger), less the staging models `reference` makes
ENGINE = (*(m.stem for m in models_for([*ENGINE_TARGETS, "int_receivables"]) if not m.stem.startswith("stg_")),)
INTEGRITY = (*(m.stem for m in models_for([INTEGRITY_TARGET]) if not m.stem.startswith("stg_")),)
# a supplementary run's own models (pipelines/compute.py apply_supplementary)
SUPPLEMENTARY = (*(m.stem for m in models_for(["int_supplementary_findings"]) if m.stem not in ENGINE
                   and not m.stem.startswith("stg_")),)

# header rows of the reference files the engine and integrity read; the one policy parameter a
# model refuses to run without
EMPTY_REFERENCE = {
    "standards": "program,component,region_code,urban_rural,category,amount,effective_from,effective_to,first_payroll",
    "cpi": "month,area,cpi_yoy,food_yoy",
    "price_linkage": "effective_from,effective_to,cpi_threshold,food_threshold,index_lag,basis,multiplier,minimum,"
                     "rounding,programs",
    "fund_shares": "program,region_code,central,provincial,city,county,effective_from",
    "policy_parameters": "parameter,value,effective_from,effective_to,note\nreissue_escalate_after_months,3,2019-01,,",
    "temporary_assistance": "region_code,event_type,standard_months,township_cap,county_cap,case_by_case_threshold,"
                            "max_per_12_months,version,valid_from",
    "exclusions": "program_a,program_b,action",
}


def _type(t: str) -> str:
    return re.sub(r'[\s"]', "", t).upper()


def _schema_drift(mt, model: str) -> list[str]:
    """Columns of the harness's schema for `model` that the model does not make with that type."""
    made = {name: _type(t) for name, t, *_ in mt.con.execute(f"DESCRIBE {model}").fetchall()}
    return [f"{model}.{c}: harness {t}, model {made.get(c, 'absent')}"
            for c, t in SCHEMAS.get(model, {}).items() if made.get(c) != _type(t)]


# --- the harness ------------------------------------------------------------------------------

def test_expect_fails_on_a_wrong_amount_and_names_the_rows(mt):
    mt.payroll("2020-01")
    mt.given("hist_ledger", [{"unit_key": "H1", "program": "dibao", "service_month": "2019-12",
                              "line_type": "regular", "status": "payable", "payroll_month": "2019-12",
                              "amount": D("1365.00")}])
    mt.expect("int_paid_history", [{"unit_key": "H1", "paid_amount": D("1365.00")}])
    with pytest.raises(pytest.fail.Exception) as failed:
        mt.expect("int_paid_history", [{"unit_key": "H1", "paid_amount": D("1365.01")}])
    message = str(failed.value)
    assert "expected, not made:\n    {unit_key: 'H1', paid_amount: D('1365.01')}" in message
    assert "made, not expected:\n    {unit_key: 'H1', paid_amount: D('1365.00')}" in message


def test_rows_compare_as_a_multiset_and_decimal_never_equals_float_or_int():
    rows = [{"a": "x", "n": D("1.00")}, {"a": "x", "n": D("1.00")}]
    assert compare(rows, list(reversed(rows)), ["a", "n"]) == ""
    assert compare(rows, rows[:1], ["a", "n"])  # a row made once, expected twice
    assert compare([{"n": D("1.00")}], [{"n": 1.0}], ["n"])
    assert compare([{"n": D("1")}], [{"n": 1}], ["n"])
    assert compare([{"b": True}], [{"b": 1}], ["b"])
    assert compare([{"v": ["a", "b"]}], [{"v": ["b", "a"]}], ["v"])  # a list is ordered


def test_given_refuses_floats_and_unknown_columns(mt):
    mt.payroll("2020-01")
    with pytest.raises(TypeError, match="never float"):
        mt.given("hist_ledger", [{"amount": 900.0}])
    with pytest.raises(KeyError, match="no column"):
        mt.given("hist_ledger", [{"amout": D("900.00")}])


def test_each_test_starts_with_no_tables_and_no_variables(mt):
    assert mt.con.execute("SELECT count(*) FROM duckdb_variables()").fetchone()[0] == 0
    tables = {r[0] for r in mt.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert tables == {t for t in tables if t.startswith("vocab_")}


# --- the given tables are the tables the pipeline makes -----------------------------------------

def test_the_given_schemas_are_the_types_the_engine_models_make(mt):
    """Every engine model run in compute's order on empty inputs: each output has every column the
    harness gives for it, with the same type (a stale schema would test a table nobody makes)."""
    mt.payroll("2020-01")
    mt.reference(**EMPTY_REFERENCE)
    drift = [d for stg in ("stg_cpi", "stg_price_linkage", "stg_policy_parameters") for d in _schema_drift(mt, stg)]
    mt.empty("cur_roster", "known_deaths", "hist_ledger", "hist_decided", "hist_withdrawn", "hist_units",
             "hist_closed_accounts", "hist_receivables", "hold_clearances")
    for model in ENGINE:
        mt.run(model)
        drift += _schema_drift(mt, model)
    assert drift == []


def test_the_given_schemas_are_the_types_the_integrity_models_make(mt):
    mt.payroll("2020-01")
    mt.reference(**EMPTY_REFERENCE)
    mt.empty("validated_rows", "ingest_files", "hist_accounts", "hist_one_off", "hist_temporary_cases",
             "hold_clearances", "raw_deaths", "raw_registry", "int_near_duplicate_pairs")
    drift = []
    for model in INTEGRITY:
        mt.run(model)
        drift += _schema_drift(mt, model)
    assert drift == []


def test_every_engine_and_integrity_model_has_a_given_expect_test():
    tested = set()
    for path in TESTS.glob("test_model_units_*.py"):
        tested |= set(re.findall(r'\.expect\(\s*"(\w+)"', path.read_text(encoding="utf-8")))
    assert [m for m in ENGINE + INTEGRITY + SUPPLEMENTARY if m not in tested] == []
