"""Given/expect unit tests of the SQL models (issue 18): small tables in, expected rows out.

A test names the payroll month, gives the tables a model reads, runs the one model with
`pipelines.sqlrun.run_model` on an in-memory DuckDB (`pipelines.sqlrun.connect()`, macros loaded)
and compares the rows it makes with the expected ones:

    def test_tekun_is_basic_plus_care(mt):  # std: tests/test_model_units_amounts.py; basis_row: below
        mt.payroll("2020-01")
        mt.given("int_standard_resolved", [std("tekun", "basic", "852.00"), std("tekun", "care", "300.00", "半护理")])
        mt.given("int_basis_roster", [basis_row("tekun", T2, "2020-01", care_level="半护理")])
        mt.expect("int_tekun_person", [{"id_number": T2, "due": D("1152.00")}])  # 852 + 300

- `given` creates the table with the column types the pipeline gives it (SCHEMAS below: the
  model's own output types for a model, the types Python gives the tables it creates; the
  schema tests of tests/test_model_units.py hold them to the models); a row names only the
  columns that matter, every other column is NULL. A float is refused (but in a DOUBLE column,
  a match weight): money is Decimal, or integer fen.
- `reference` builds reference staging tables (stg_standards, ...) from small CSV text through
  `pipelines.sqlrun.register_reference` on a folder of its own, as compute and integrity do; a
  staging table may also be given as rows (stg_cpi, stg_price_linkage, stg_policy_parameters).
- `expect` runs the model and compares a chosen list of columns (the keys of the expected rows),
  order-insensitive, and fails naming the rows expected and not made, and made and not expected.
  Decimal only equals Decimal; `check` compares a table already there; `fails` expects an error.

One DuckDB connection serves the process (connect() loads the macros, ~0.1 s); each test runs
inside a transaction that is rolled back at its end, and starts with no variables set.
"""

from __future__ import annotations

import datetime
import re
import textwrap
from collections import Counter
from decimal import Decimal

import duckdb
import pytest

from pipelines.clearance import CLEARANCE_COLUMNS
from pipelines.compute import HIST_LEDGER_COLUMNS
from pipelines.ingest import FILES_SCHEMA
from pipelines.linkage import PAIR_COLUMNS
from pipelines.receivables import WITHDRAWAL_COLUMNS
from pipelines.sqlrun import (
    OPTIONAL_REFERENCE,
    connect,
    register_reference,
    register_vocabulary,
    run_model,
    set_variables,
)

C = "210102"  # 和平区, Shenyang (city 2101, province 21)


def columns(text: str) -> dict[str, str]:
    """'a VARCHAR, b DECIMAL(18, 2)' -> {'a': 'VARCHAR', 'b': 'DECIMAL(18, 2)'}"""
    return dict(re.findall(r"(\w+)\s+([A-Z]+(?:\([^)]*\))?(?:\[\])?)", text))


# --- the tables, with the types the pipeline gives them ----------------------------------------
# validated_rows and int_roster_all: one validated roster row (the four monthly programs and temporary)
ROSTER = columns("""
    program VARCHAR, source_file VARCHAR, source_row BIGINT, id_number VARCHAR, name VARCHAR, sex VARCHAR,
    birth_date DATE, region_code VARCHAR, urban_rural VARCHAR, bank_code VARCHAR, bank_name VARCHAR,
    bank_bic VARCHAR, bank_account VARCHAR, account_holder VARCHAR, enrolled_from VARCHAR, enrolled_to VARCHAR,
    approved_amount DECIMAL(18, 2), household_id VARCHAR, relation VARCHAR, household_size INTEGER,
    household_income DECIMAL(18, 2), class_categories VARCHAR[], placement VARCHAR, care_level VARCHAR,
    institution_code VARCHAR, guardian_name VARCHAR, guardian_id_number VARCHAR, subsidy_type VARCHAR,
    ledger_program VARCHAR, disability_category VARCHAR, disability_grade VARCHAR, disability_cert_no VARCHAR,
    age_out_month VARCHAR, event_type VARCHAR, event_date DATE, approval_no VARCHAR, approval_level VARCHAR,
    case_by_case_no VARCHAR, case_household VARCHAR, disposition VARCHAR, reasons VARCHAR[],
    duplicate_of_file VARCHAR, duplicate_of_row BIGINT, duplicate_rule VARCHAR, file_sha256 VARCHAR,
    file_status VARCHAR, extra VARCHAR, delivered STRUCT(name VARCHAR)""")
# (delivered: the row as it arrived, a STRUCT of its delivered columns; models only carry it)
DECISIONS = columns("""
    not_paid_reason VARCHAR, excluded_member BOOLEAN, no_price_subsidy BOOLEAN, death_month VARCHAR,
    hold_reason VARCHAR, cleared_hold_reason VARCHAR, clearance_id VARCHAR, cleared_by VARCHAR,
    cleared_at VARCHAR, clearance_note VARCHAR""")
# int_roster_final, and the engine's cur_roster (integrity's roster.parquet)
FINAL = ROSTER | DECISIONS | {"temporary_policy_version": "VARCHAR"}
LINEAGE = ("reasons", "file_sha256", "extra", "delivered")
# int_units, and hist_units (wh.roster_row of earlier months, basis_month = its payroll month)
UNITS = {k: v for k, v in FINAL.items() if k not in LINEAGE} | columns(
    "unit_key VARCHAR, line_program VARCHAR, basis_month VARCHAR")
# what the engine's program models and the price subsidy make for each unit and service month
DUE = columns("""
    unit_key VARCHAR, line_program VARCHAR, service_month VARCHAR, line_type VARCHAR, arrears_cause VARCHAR,
    basis VARCHAR, basis_month VARCHAR, id_number VARCHAR, household_id VARCHAR, region_code VARCHAR,
    urban_rural VARCHAR, source_file VARCHAR, source_row BIGINT, approved_amount DECIMAL(18, 2),
    has_standard BOOLEAN, eligible BOOLEAN, due DECIMAL(18, 2), rule_versions VARCHAR[], inputs VARCHAR,
    formula VARCHAR""")

SCHEMAS: dict[str, dict[str, str]] = {
    # --- tables Python creates (pipelines/compute.py, pipelines/integrity.py) -----------------
    "cur_roster": FINAL,
    "validated_rows": ROSTER,
    "hist_units": UNITS,
    "hist_ledger": dict(HIST_LEDGER_COLUMNS),  # wh.payment_ledger of earlier payrolls
    "hist_decided": columns("unit_key VARCHAR, line_program VARCHAR, basis_month VARCHAR"),
    "hist_withdrawn": columns("unit_key VARCHAR, line_program VARCHAR, service_month VARCHAR"),
    "hist_closed_accounts": columns("payee_account VARCHAR, reported_month VARCHAR, payment_ref VARCHAR, "
                                    "reason VARCHAR"),
    "hist_receivables": columns("receivable_id VARCHAR"),
    # a supplementary run: the month's released lines (wh.payment_ledger) and what later payrolls paid
    "released_lines": dict(HIST_LEDGER_COLUMNS) | columns(
        "batch_id VARCHAR, previously_paid DECIMAL(18, 2), arrears_cause VARCHAR"),
    "later_paid": columns("service_month VARCHAR, program VARCHAR, id_number VARCHAR, payroll_month VARCHAR, "
                          "payroll_months VARCHAR[], amount DECIMAL(38, 2)"),
    "known_deaths": columns("id_number VARCHAR, death_month VARCHAR, reported_month VARCHAR, source VARCHAR"),
    "hist_accounts": columns("program VARCHAR, id_number VARCHAR, payroll_month VARCHAR, bank_account VARCHAR, "
                             "account_holder VARCHAR"),
    "hist_one_off": columns("approval_no VARCHAR, status VARCHAR"),
    "hist_temporary_cases": columns("payroll_month VARCHAR, case_household VARCHAR, event_type VARCHAR, "
                                    "approval_no VARCHAR"),
    "hold_clearances": columns(CLEARANCE_COLUMNS),
    "registry_withdrawals": columns(WITHDRAWAL_COLUMNS),
    "raw_deaths": columns("id_number VARCHAR, name VARCHAR, death_date VARCHAR, source VARCHAR, "
                          "reported_month VARCHAR"),
    "raw_registry": columns("registry VARCHAR, id_number VARCHAR, name VARCHAR, evidence VARCHAR, "
                            "reported_month VARCHAR"),
    "ingest_files": {f.name: "VARCHAR" for f in FILES_SCHEMA},  # as integrity creates it without files
    "int_near_duplicate_pairs": columns(PAIR_COLUMNS),
    # --- reference staging tables (built from CSV text by `reference`, or given) ---------------
    "stg_cpi": columns("month VARCHAR, area VARCHAR, cpi_yoy DECIMAL(9, 3), food_yoy DECIMAL(9, 3)"),
    "stg_price_linkage": columns("""
        effective_from VARCHAR, effective_to VARCHAR, cpi_threshold DECIMAL(9, 3), food_threshold DECIMAL(9, 3),
        index_lag INTEGER, basis VARCHAR, multiplier DECIMAL(9, 3), minimum DECIMAL(18, 2), rounding VARCHAR,
        programs VARCHAR[], version_id VARCHAR"""),
    "stg_policy_parameters": columns("parameter VARCHAR, value DECIMAL(18, 4), value_text VARCHAR, "
                                     "effective_from VARCHAR, effective_to VARCHAR"),
    # --- model outputs, given to the models that read them -------------------------------------
    "int_roster_all": ROSTER,
    "int_roster_final": FINAL,
    "int_units": UNITS,
    "int_paid_history": columns("""
        unit_key VARCHAR, line_program VARCHAR, service_month VARCHAR, paid_amount DECIMAL(38, 2),
        was_paid BOOLEAN, was_held BOOLEAN, first_paid_payroll VARCHAR, first_held_payroll VARCHAR"""),
    "int_service_months": columns("""
        unit_key VARCHAR, line_program VARCHAR, service_month VARCHAR, basis VARCHAR, line_type VARCHAR,
        arrears_cause VARCHAR, history_month VARCHAR"""),
    "int_basis_roster": columns("service_month VARCHAR, line_type VARCHAR, arrears_cause VARCHAR, "
                                "basis VARCHAR") | UNITS,
    "int_standard_needs": columns("program VARCHAR, component VARCHAR, region_code VARCHAR, urban_rural VARCHAR, "
                                  "category VARCHAR, service_month VARCHAR"),
    "int_standard_resolved": columns("""
        program VARCHAR, component VARCHAR, region_code VARCHAR, urban_rural VARCHAR, category VARCHAR,
        service_month VARCHAR, amount DECIMAL(18, 2), version_id VARCHAR"""),
    "int_dibao_household": columns("""
        unit_key VARCHAR, service_month VARCHAR, line_type VARCHAR, arrears_cause VARCHAR, basis VARCHAR,
        basis_month VARCHAR, id_number VARCHAR, household_id VARCHAR, region_code VARCHAR, urban_rural VARCHAR,
        source_file VARCHAR, source_row BIGINT, approved_amount DECIMAL(18, 2), covered_members BIGINT,
        household_income DECIMAL(18, 2), line_program VARCHAR, standard DECIMAL(18, 2), floor DECIMAL(18, 2),
        gap DECIMAL(18, 2), floor_total DECIMAL(18, 2), addons DECIMAL(18, 2), addon_classes VARCHAR[],
        rule_versions VARCHAR[], has_standard BOOLEAN"""),
    "int_tekun_person": columns("""
        unit_key VARCHAR, service_month VARCHAR, line_type VARCHAR, arrears_cause VARCHAR, basis VARCHAR,
        basis_month VARCHAR, id_number VARCHAR, household_id VARCHAR, region_code VARCHAR, urban_rural VARCHAR,
        source_file VARCHAR, source_row BIGINT, approved_amount DECIMAL(18, 2), line_program VARCHAR,
        placement VARCHAR, care_level VARCHAR, basic DECIMAL(18, 2), care DECIMAL(18, 2), due DECIMAL(18, 2),
        rule_versions VARCHAR[], has_standard BOOLEAN"""),
    "int_orphan_person": columns("""
        unit_key VARCHAR, service_month VARCHAR, line_type VARCHAR, arrears_cause VARCHAR, basis VARCHAR,
        basis_month VARCHAR, id_number VARCHAR, household_id VARCHAR, region_code VARCHAR, urban_rural VARCHAR,
        source_file VARCHAR, source_row BIGINT, approved_amount DECIMAL(18, 2), line_program VARCHAR,
        placement VARCHAR, age_out_month VARCHAR, due DECIMAL(18, 2), rule_versions VARCHAR[],
        has_standard BOOLEAN"""),
    "int_disability_person": columns("""
        unit_key VARCHAR, service_month VARCHAR, line_type VARCHAR, arrears_cause VARCHAR, basis VARCHAR,
        basis_month VARCHAR, id_number VARCHAR, household_id VARCHAR, region_code VARCHAR, urban_rural VARCHAR,
        source_file VARCHAR, source_row BIGINT, approved_amount DECIMAL(18, 2), line_program VARCHAR,
        disability_category VARCHAR, disability_grade VARCHAR, due DECIMAL(18, 2), rule_versions VARCHAR[],
        has_standard BOOLEAN"""),
    "int_program_due": DUE,
    "int_price_subsidy": DUE,
    "int_reissue_due": columns("""
        id_number VARCHAR, line_program VARCHAR, program VARCHAR, service_month VARCHAR, line_type VARCHAR,
        unit_key VARCHAR, region_code VARCHAR, household_id VARCHAR, urban_rural VARCHAR, due DECIMAL(18, 2),
        has_standard BOOLEAN, eligible BOOLEAN, basis_month VARCHAR, reissue_of VARCHAR[],
        failed_account VARCHAR, first_failed_payroll VARCHAR, rule_versions VARCHAR[], inputs VARCHAR,
        formula VARCHAR, approval_no VARCHAR, event_type VARCHAR, event_date DATE"""),
    "int_temporary_due": DUE | columns("approval_no VARCHAR, event_type VARCHAR, event_date DATE"),
    "int_reference_held_due": DUE | columns("provisional_from VARCHAR"),
    "int_payment_lines": columns("line_key VARCHAR") | DUE | columns("""
        program VARCHAR, reissue_of VARCHAR[], failed_account VARCHAR, first_failed_payroll VARCHAR,
        approval_no VARCHAR, event_type VARCHAR, event_date DATE, previously_paid DECIMAL(38, 2),
        amount DECIMAL(38, 2), beneficiary_name VARCHAR, payee_name VARCHAR, payee_account VARCHAR,
        payee_bank_code VARCHAR, payee_bank_name VARCHAR, payee_bic VARCHAR, institution_code VARCHAR,
        hold_reason VARCHAR, status VARCHAR, provisional_from VARCHAR"""),
    "int_fund_split": columns("""
        line_key VARCHAR, fund_version VARCHAR, fund_central DECIMAL(18, 2), fund_provincial DECIMAL(18, 2),
        fund_city DECIMAL(18, 2), fund_county DECIMAL(18, 2), parts_fen HUGEINT, amount_fen BIGINT"""),
    "int_cross_county_duplicates": columns("""
        source_file VARCHAR, source_row BIGINT, program VARCHAR, id_number VARCHAR, region_code VARCHAR,
        survivor_file VARCHAR, survivor_row BIGINT, survivor_region VARCHAR, duplicate_rule VARCHAR"""),
    "int_person_programs": columns("""
        id_number VARCHAR, program VARCHAR, subsidy_type VARCHAR, household_id VARCHAR, relation VARCHAR,
        source_file VARCHAR, source_row BIGINT"""),
    "int_exclusions": columns("""
        source_file VARCHAR, source_row BIGINT, id_number VARCHAR, program VARCHAR, program_a VARCHAR,
        subsidy_a VARCHAR, program_b VARCHAR, subsidy_b VARCHAR, action VARCHAR, other_file VARCHAR,
        other_row BIGINT"""),
    "int_death_register": columns("""
        id_number VARCHAR, registry_name VARCHAR, death_month VARCHAR, registry_source VARCHAR,
        reported_month VARCHAR, death_date VARCHAR, death_date_valid BOOLEAN"""),
    "int_temporary_cases": columns("""
        source_file VARCHAR, source_row BIGINT, id_number VARCHAR, region_code VARCHAR, event_type VARCHAR,
        event_date DATE, approval_no VARCHAR, approval_level VARCHAR, case_by_case_no VARCHAR,
        approved_amount DECIMAL(18, 2), case_household VARCHAR, policy_version VARCHAR,
        standard_months DECIMAL(9, 2), township_cap DECIMAL(18, 2), county_cap DECIMAL(18, 2),
        case_by_case_threshold DECIMAL(18, 2), max_per_12_months INTEGER, level_cap DECIMAL(18, 2),
        death_month VARCHAR, not_paid_reason VARCHAR, recipient_deceased BOOLEAN, case_in_window BIGINT,
        hold_reason VARCHAR"""),
    "int_deaths": columns("""
        source_file VARCHAR, source_row BIGINT, id_number VARCHAR, program VARCHAR, household_id VARCHAR,
        relation VARCHAR, death_month VARCHAR, death_date_valid BOOLEAN, reported_death_date VARCHAR,
        reported_month VARCHAR, registry_name VARCHAR, registry_source VARCHAR"""),
    "int_registry_matches": columns("""
        source_file VARCHAR, source_row BIGINT, id_number VARCHAR, program VARCHAR, registry VARCHAR,
        registry_name VARCHAR, evidence VARCHAR"""),
    "int_account_changes": columns("""
        source_file VARCHAR, source_row BIGINT, id_number VARCHAR, program VARCHAR, previous_month VARCHAR,
        previous_account VARCHAR, previous_holder VARCHAR, bank_account VARCHAR, account_holder VARCHAR"""),
    "int_roster_decisions": columns("""
        source_file VARCHAR, source_row BIGINT, duplicate_across_counties BOOLEAN, survivor_file VARCHAR,
        survivor_row BIGINT, duplicate_rule VARCHAR""") | {k: v for k, v in DECISIONS.items()},
}

# which staging model each reference file feeds (the ones a model reads as stg_*)
STAGING = {"standards": "stg_standards", "cpi": "stg_cpi", "price_linkage": "stg_price_linkage",
           "fund_shares": "stg_fund_shares", "policy_parameters": "stg_policy_parameters",
           "temporary_assistance": "stg_temporary_assistance", "exclusions": "stg_exclusions"}
# the variables the models read (getvariable), as compute and integrity set them
DEFAULT_VARIABLES = {"province_code": "21", "pay_amount_source": "computed", "approved_tolerance": "0.00",
                     # no county held for its reference data; paid forward, as policy_parameters.csv ships
                     "held_counties": [], "carry_forward_max_months": "2",
                     "carry_forward_programs": "dibao;tekun;orphan;disability"}


_REFERENCE_CACHE: dict[tuple, dict] = {}  # (file, text, month) -> the tables it made, as Arrow


def model_path(model: str) -> str:
    layer = "intermediate" if model.startswith("int_") else "staging" if model.startswith("stg_") else "marts"
    return f"{layer}/{model}.sql"


class ModelTest:
    """One test's tables on the shared connection (see the module docstring)."""

    def __init__(self, con, tmp_path_factory):
        self.con = con
        self._tmp = tmp_path_factory
        self.month: str | None = None
        self.ran: list[str] = []

    # --- inputs ----------------------------------------------------------------------------
    def payroll(self, month: str, **variables) -> None:
        """The payroll month and the other variables (province 21, computed amounts, tolerance 0,
        history from this month: no arrears before it, unless `history_start` says otherwise)."""
        self.month = month
        set_variables(self.con, payroll_month=month, **{"history_start": month, **DEFAULT_VARIABLES, **variables})

    def given(self, table: str, rows: list[dict], schema: dict[str, str] | None = None) -> None:
        """Create `table` with its pipeline column types, holding `rows` (absent columns NULL)."""
        schema = schema or SCHEMAS[table]
        for row in rows:
            unknown = set(row) - set(schema)
            if unknown:
                raise KeyError(f"given {table}: no column {sorted(unknown)} (columns: {', '.join(schema)})")
            floats = [k for k, v in row.items() if isinstance(v, float) and not schema[k].startswith("DOUBLE")]
            if floats:
                raise TypeError(f"given {table}: {floats} are floats; money is Decimal or integer fen, never float")
        cols = ", ".join(f'"{k}" {t}' for k, t in schema.items())
        self.con.execute(f"CREATE OR REPLACE TABLE {table} ({cols})")
        # the columns the rows name (a row naming none is all NULL)
        names = list(dict.fromkeys(k for row in rows for k in row)) or list(schema)[:1]
        if rows:
            marks = "(" + ", ".join("?" * len(names)) + ")"
            self.con.execute(f"INSERT INTO {table} ({', '.join(chr(34) + k + chr(34) for k in names)}) VALUES "
                             + ", ".join([marks] * len(rows)), [row.get(k) for row in rows for k in names])

    def empty(self, *tables: str) -> None:
        """Tables the model reads that this test leaves empty (no history, no deaths, ...)."""
        for table in tables:
            self.given(table, [])

    def reference(self, **files: str) -> None:
        """Reference files as CSV text (standards="program,component,...\\n..."), each registered
        with register_reference from a folder of its own, then its staging model; the optional
        files not given stand empty, as register_reference leaves them. A staging model takes
        ~0.1 s to bind (its month macros): what it makes of the same text (in the same payroll
        month, for policy_parameters) is kept for the session and given again."""
        self._need_month()
        for name, text in files.items():
            text = textwrap.dedent(text).strip() + "\n"
            key = (name, text, self.month if name == "policy_parameters" else None)
            if key not in _REFERENCE_CACHE:
                folder = self._tmp.mktemp("reference")
                (folder / f"{name}.csv").write_text(text, encoding="utf-8")
                register_reference(self.con, folder)
                made = [f"raw_{name}"] + ([self.run(STAGING[name])] if name in STAGING else [])
                _REFERENCE_CACHE[key] = {t: self.con.sql(f"SELECT * FROM {t}").to_arrow_table() for t in made}
                continue
            for table, arrow in _REFERENCE_CACHE[key].items():
                self.con.register("reference_cached", arrow)
                self.con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM reference_cached")
                self.con.unregister("reference_cached")
        for name, cols in OPTIONAL_REFERENCE.items():
            if name not in files:
                self.con.execute(f"CREATE OR REPLACE TABLE raw_{name} ({cols})")

    # --- the model and its rows ------------------------------------------------------------
    def run(self, model: str) -> str:
        self._need_month()
        self.ran.append(model)
        return run_model(self.con, model_path(model))

    def rows(self, table: str, cols: list[str] | None = None, where: str | None = None) -> list[dict]:
        names = cols or [r[0] for r in self.con.execute(f"DESCRIBE {table}").fetchall()]
        quoted = ", ".join('"' + n + '"' for n in names)
        sql = f"SELECT {quoted} FROM {table}" + (f" WHERE {where}" if where else "")
        return [dict(zip(names, r, strict=True)) for r in self.con.execute(sql).fetchall()]

    def expect(self, model: str, expected: list[dict], where: str | None = None,
               cols: list[str] | None = None) -> list[dict]:
        """Run `model`; its rows (those `where` selects) on the expected rows' columns must be the
        expected rows, in any order. Returns the model's rows on those columns.

        The model runs twice: as given, then on every input table with its rows in reverse order.
        It must make the same rows both times: a tie that an ORDER BY leaves open (which of two
        reports, which account) is settled by the order DuckDB's threads happen to read the rows
        in, so a rerun under load would pay or explain differently (CI saw a rerun refused for it)."""
        self.run(model)
        made = self._all_rows(model)
        self._reverse_inputs(model)
        self.run(model)
        again = self._all_rows(model)
        if again != made:
            given, reversed_ = (sorted(set(a) - set(b)) for a, b in ((made, again), (again, made)))
            pytest.fail(f"{model} depends on the order of its input rows (an ORDER BY leaves a tie open): "
                        f"as given {given[:1]}, with the inputs reversed {reversed_[:1]}", pytrace=False)
        return self.check(model, expected, where, cols)

    def _all_rows(self, table: str) -> list[str]:
        return sorted(repr(r) for r in self.con.execute(f"SELECT * FROM {table}").fetchall())

    def _reverse_inputs(self, model: str) -> None:
        tables = [r[0] for r in self.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND NOT temporary AND table_name <> ?", [model]).fetchall()]
        for table in tables:
            self.con.execute(f'CREATE OR REPLACE TEMP TABLE reversed_rows AS SELECT * FROM "{table}" '
                             "ORDER BY rowid DESC")
            self.con.execute(f'DELETE FROM "{table}"')
            self.con.execute(f'INSERT INTO "{table}" SELECT * FROM reversed_rows')
        self.con.execute("DROP TABLE IF EXISTS reversed_rows")

    def check(self, table: str, expected: list[dict], where: str | None = None,
              cols: list[str] | None = None) -> list[dict]:
        """`expect` on a table or view already there (a model's rows joined to what names them)."""
        names = cols or list(dict.fromkeys(k for row in expected for k in row))
        for row in expected:
            if set(row) != set(names):
                raise KeyError(f"expected rows of {table} name different columns: {sorted(row)} vs {names}")
        got = self.rows(table, names or None, where)
        names = names or (list(got[0]) if got else [])
        diff = compare(expected, got, names)
        if diff:
            pytest.fail(f"{table}{' where ' + where if where else ''}: {diff}", pytrace=False)
        return got

    def fails(self, model: str, match: str) -> None:
        """The model stops with an error that says `match` (a gap is an error, never a default)."""
        with pytest.raises(duckdb.Error, match=match):
            self.run(model)

    def _need_month(self) -> None:
        if self.month is None:
            raise RuntimeError("call mt.payroll(<month>) first: the models read getvariable('payroll_month')")


# --- comparing rows ------------------------------------------------------------------------
def _cell(v):
    """A comparable form of a value: Decimal only equals Decimal (never float or int), lists and
    dicts compare by content, True is not 1."""
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, Decimal):
        return ("decimal", v)
    if isinstance(v, float):
        return ("float", v)
    if isinstance(v, int):
        return ("int", v)
    if isinstance(v, (list, tuple)):
        return ("list", tuple(_cell(x) for x in v))
    if isinstance(v, dict):
        return ("dict", tuple(sorted((k, _cell(x)) for k, x in v.items())))
    return (type(v).__name__, v)


def _show(row: dict, names: list[str]) -> str:
    def one(v):
        if isinstance(v, Decimal):
            return f"D('{v}')"
        if isinstance(v, datetime.date):
            return v.isoformat()
        return repr(v)
    return "{" + ", ".join(f"{k}: {one(row.get(k))}" for k in names) + "}"


def compare(expected: list[dict], got: list[dict], names: list[str]) -> str:
    """'' when the rows are the same multiset on `names`, else what differs."""
    key = lambda row: tuple(_cell(row.get(k)) for k in names)  # noqa: E731
    want, have = Counter(map(key, expected)), Counter(map(key, got))
    if want == have:
        return ""
    missing = [r for r in expected if (want - have)[key(r)] > 0]
    extra = [r for r in got if (have - want)[key(r)] > 0]
    out = [f"{len(got)} rows, {len(expected)} expected (columns {', '.join(names)})"]
    if missing:
        out += ["  expected, not made:"] + [f"    {_show(r, names)}" for r in missing]
    if extra:
        out += ["  made, not expected:"] + [f"    {_show(r, names)}" for r in extra]
    return "\n".join(out)


# --- rows of the roster-shaped tables ---------------------------------------------------------
def roster_row(program: str, id_number: str, row: int = 1, **values) -> dict:
    """A validated, accepted roster row of county 210102 (城市, enrolled from 2019-06), with the
    columns given here; `ledger_program` follows `subsidy_type` for disability."""
    out = {"program": program, "source_file": f"rosters/{program}/{C}_{program}.csv", "source_row": row,
           "id_number": id_number, "name": f"name-{id_number[-4:]}", "region_code": C, "urban_rural": "城市",
           "enrolled_from": "2019-06", "disposition": "accepted", "file_status": "loaded"}
    if program == "disability":
        subsidy = values.get("subsidy_type", "生活补贴")
        out |= {"subsidy_type": subsidy,
                "ledger_program": "disability_living" if subsidy == "生活补贴" else "disability_nursing"}
    return out | values


def final_row(program: str, id_number: str, row: int = 1, **values) -> dict:
    """A row of int_roster_final / cur_roster: a roster row that integrity left alone."""
    return roster_row(program, id_number, row, **({"excluded_member": False, "no_price_subsidy": False} | values))


def unit_row(program: str, id_number: str, basis_month: str, row: int = 1, **values) -> dict:
    """A row of int_units (basis_month = this payroll) or hist_units (an earlier payroll's roster)."""
    out = final_row(program, id_number, row, **values)
    out.setdefault("unit_key", out.get("household_id") if program == "dibao"
                   else out.get("approval_no") if program == "temporary" else id_number)
    out.setdefault("line_program", out.get("ledger_program") or program)
    return out | {"basis_month": basis_month}


def basis_row(program: str, id_number: str, service: str, row: int = 1, line_type: str = "regular",
              basis: str = "current", basis_month: str | None = None, **values) -> dict:
    """A row of int_basis_roster: the roster row (this payroll's, or an earlier one's for basis
    history) a service month is computed from."""
    cause = "regular" if line_type == "regular" else values.pop("arrears_cause", "late_enrolment")
    return unit_row(program, id_number, basis_month or service, row, **values) | {
        "service_month": service, "line_type": line_type, "arrears_cause": cause, "basis": basis}


def ledger_line(payroll: str, service: str, program: str, unit_key: str, amount: str, line_type: str = "regular",
                status: str = "payable", **values) -> dict:
    """A line of an earlier payroll (hist_ledger); id_number is the unit's (a household's: give it)."""
    return {"payroll_month": payroll, "service_month": service, "program": program, "line_type": line_type,
            "status": status, "unit_key": unit_key, "id_number": unit_key, "amount": Decimal(amount),
            "region_code": C, "line_id": f"L-{payroll}-{service}-{program}-{line_type}-{unit_key}",
            "payment_state": "sent" if status == "payable" else None} | values


def person_id(seq: int, birth: str = "19500101", region: str = C) -> str:
    """A valid 18-character ID number (GB 11643): region, birth date, sequence, check character."""
    from pipelines.idnumbers import check_digits

    body = f"{region}{birth}{seq % 1000:03d}"
    return body + str(check_digits([body])[0])


# --- reference data: the shipped figures for 和平区 210102 (Shenyang), as tests/test_engine_golden.py uses them
STANDARDS = """
    program,component,region_code,urban_rural,category,amount,effective_from,effective_to,first_payroll
    dibao,standard,21,城市,*,622,2019-01,,
    dibao,standard,2101,城市,*,655,2018-07,,
    dibao,standard,2101,农村,*,450,2018-07,,
    dibao,standard,2101,城市,*,688,2020-01,,2020-04
    dibao,standard,2101,农村,*,482,2020-01,,2020-04
    tekun,basic,2101,城市,*,852,2018-07,,
    tekun,basic,2101,农村,*,585,2018-07,,
    tekun,basic,2101,城市,*,895,2020-01,,2020-04
    dibao,floor,21,*,*,50,2019-01,,
    dibao,class_addon,21,*,老年,30,2019-01,,
    dibao,class_addon,21,*,重残,60,2019-01,,
    dibao,class_addon,21,*,重病,60,2019-01,,
    dibao,class_addon,21,*,未成年,40,2019-01,,
    tekun,care,21,*,全自理,100,2019-01,,
    tekun,care,21,*,半护理,300,2019-01,,
    tekun,care,21,*,全护理,600,2019-01,,
    orphan,basic,21,*,机构养育,1711,2019-01,,
    orphan,basic,21,*,社会散居,1273,2019-01,,
    orphan,basic,21,*,事实无人抚养,1273,2019-01,,
    disability,living,21,*,*,70,2019-01,,
    disability,nursing,21,*,1,55,2019-01,,
    disability,nursing,21,*,2,55,2019-01,,
"""
CPI = """
    month,area,cpi_yoy,food_yoy
    2019-11,00,4.5,19.1
    2019-12,00,4.5,17.4
    2020-01,00,5.4,20.6
    2020-02,00,5.2,21.9
    2020-03,00,4.3,18.3
"""
PRICE_LINKAGE = """
    effective_from,effective_to,cpi_threshold,food_threshold,index_lag,basis,multiplier,minimum,rounding,programs
    2016-07,,3.5,6.0,1,cpi,1,0,fen,dibao;tekun
    2020-03,2020-06,3.5,6.0,1,cpi,2,0,fen,dibao;tekun;orphan
"""
FUND_SHARES = """
    program,region_code,central,provincial,city,county,effective_from
    dibao,21,0.50,0.20,0.15,0.15,2019-01
    dibao,2101,0.40,0.10,0.30,0.20,2019-01
    tekun,21,0.50,0.20,0.15,0.15,2019-01
    orphan,21,0.50,0.25,0.125,0.125,2019-01
    disability,21,0.00,0.30,0.35,0.35,2019-01
    price_subsidy,21,0.00,0.50,0.25,0.25,2019-01
    temporary,21,0.00,0.50,0.20,0.30,2019-01
"""


# --- the fixtures ------------------------------------------------------------------------------
_CONNECTION: list = []  # one per process: a fixture imported into several modules is set up once in each


# Imported by the test modules under their own names (the fixtures are `model_connection` and `mt`):
#     from tests.modeltest import connection_fixture, mt_fixture  # noqa: F401  (fixtures)
@pytest.fixture(scope="session", name="model_connection")
def connection_fixture():
    if not _CONNECTION:
        con = connect()  # in memory, no run context: the macros only
        con.execute("SET threads = 1")  # tiny tables; the machine's cores belong to the other tiers
        register_vocabulary(con)
        _CONNECTION.append(con)
    return _CONNECTION[0]


@pytest.fixture(name="mt")
def mt_fixture(model_connection, tmp_path_factory):
    con = model_connection
    for (name,) in con.execute("SELECT name FROM duckdb_variables()").fetchall():
        con.execute(f"RESET VARIABLE {name}")
    con.begin()
    yield ModelTest(con, tmp_path_factory)
    con.rollback()
