"""The Great Expectations suites under expectations/, evaluated as SQL in DuckDB (issue 22).

The suites stay the one declaration of the rules, and GX still renders their Data Docs; but the
row-level evaluation is one set-based pass over a DuckDB table instead of GX's metric graph on a
pandas frame, which cost about 0.7 s a call whatever the size (four to six calls a month, 51 under
Airflow's city tasks). Each expectation type the suites use is translated to three SQL predicates:

    domain      the rows the expectation judges (its row_condition, its ignore_row_if)
    missing     of those, the rows GX counts as missing (a null value is not judged by most types)
    unexpected  of those, the rows that break it

with GX's own semantics for the pandas engine, which the SQL path replaces: nulls are ignored by
every column-map type but the two null checks; a pair compared with a null is unexpected unless
ignore_row_if drops the row; `to_match_regex` searches (not a full match). A suite that uses an
expectation type or an argument not listed here is refused, never half-evaluated.
tests/test_expectations_sql.py runs GX on pandas beside this module on the test inboxes and on
edge values of every type, and asserts the same rows with the same reasons.

Regular expressions run in RE2 (DuckDB) where GX ran Python's `re`: the suites write digits as
[0-9], which both read alike (Python's \\d also takes full-width and other scripts' digits).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pipelines.catalog import ident
from pipelines.settings import RunError

# every argument each type may carry; anything else would be silently ignored, so it is refused
_COMMON_KWARGS = {"row_condition", "condition_parser"}
KNOWN_KWARGS = {
    "expect_column_values_to_be_null": {"column"},
    "expect_column_values_to_not_be_null": {"column"},
    "expect_column_values_to_be_in_set": {"column", "value_set"},
    "expect_column_values_to_match_regex": {"column", "regex"},
    "expect_column_values_to_not_match_regex": {"column", "regex"},
    "expect_column_values_to_be_between": {"column", "min_value", "max_value", "strict_min", "strict_max"},
    "expect_column_pair_values_to_be_equal": {"column_A", "column_B", "ignore_row_if"},
    "expect_column_pair_values_a_to_be_greater_than_b": {"column_A", "column_B", "or_equal", "ignore_row_if"},
    "expect_compound_columns_to_be_unique": {"column_list", "ignore_row_if"},
}


@dataclass(frozen=True)
class Rule:
    """One expectation as SQL over the judged table."""

    expectation: dict
    domain: str
    missing: str
    unexpected: str

    @property
    def type(self) -> str:
        return self.expectation["type"]


@dataclass(frozen=True)
class Outcome:
    """One expectation's counts, as GX reports them."""

    rule: Rule
    element_count: int
    missing_count: int
    unexpected_count: int

    @property
    def success(self) -> bool:
        return self.unexpected_count == 0


def literal(value) -> str:
    """A suite value as a SQL literal (strings quoted, booleans and numbers as they are)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float | Decimal):
        return repr(value) if isinstance(value, int) else str(Decimal(str(value)))
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise RunError(f"a value of type {type(value).__name__} ({value!r}) in an expectation cannot be evaluated")


def _parameter(value, parameters: dict):
    """An expectation argument, or the run's value of a {"$PARAMETER": name} placeholder."""
    if isinstance(value, dict) and set(value) == {"$PARAMETER"}:
        name = value["$PARAMETER"]
        if name not in parameters:
            raise RunError(f"the suite needs the parameter {name!r}, which this run does not give")
        return parameters[name]
    return value


def _row_condition(kwargs: dict) -> str:
    """GX's comparison condition (`column == parameter`, as the suites serialise it) as SQL; a row
    whose condition column is null is outside the domain, as in GX."""
    cond = kwargs.get("row_condition")
    if not cond:
        return "TRUE"
    if (not isinstance(cond, dict) or cond.get("type") != "comparison" or cond.get("operator") != "=="
            or not isinstance(cond.get("column"), dict) or "name" not in cond["column"]):
        raise RunError(f"row condition {cond!r}: only `column == value` comparisons can be evaluated")
    return f"({ident(cond['column']['name'])} = {literal(cond.get('parameter'))}) IS TRUE"


def translate(expectation: dict, parameters: dict | None = None) -> Rule:
    """The expectation's domain, missing and unexpected predicates; a type or argument this module
    does not know stops the run."""
    kind, kwargs = expectation["type"], dict(expectation.get("kwargs") or {})
    known = KNOWN_KWARGS.get(kind)
    if known is None:
        raise RunError(f"expectation type {kind} has no SQL evaluation (pipelines/expectations_sql.py): "
                       "add it there, with its GX-beside-SQL test, before a suite uses it")
    unknown = set(kwargs) - known - _COMMON_KWARGS - {"batch_id"}
    if unknown:
        raise RunError(f"{kind}: argument {', '.join(sorted(unknown))} has no SQL evaluation")
    if kwargs.get("condition_parser") not in (None, "great_expectations"):
        raise RunError(f"{kind}: condition_parser {kwargs['condition_parser']!r} has no SQL evaluation")
    parameters = parameters or {}
    condition = _row_condition(kwargs)

    if "column" in kwargs:
        col = ident(kwargs["column"])
        domain, missing, present = condition, f"{col} IS NULL", f"{col} IS NOT NULL"
        if kind == "expect_column_values_to_be_null":
            return Rule(expectation, domain, "FALSE", present)
        if kind == "expect_column_values_to_not_be_null":
            return Rule(expectation, domain, missing, missing)
        if kind == "expect_column_values_to_be_in_set":
            values = _parameter(kwargs["value_set"], parameters)
            if not values:
                raise RunError(f"{kind} on {kwargs['column']}: an empty value_set")
            test = f"{col} NOT IN ({', '.join(literal(v) for v in values)})"
        elif kind in ("expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex"):
            found = f"regexp_matches({col}::VARCHAR, {literal(_parameter(kwargs['regex'], parameters))})"
            test = f"NOT {found}" if kind == "expect_column_values_to_match_regex" else found
        else:  # expect_column_values_to_be_between
            low, high = (_parameter(kwargs.get(k), parameters) for k in ("min_value", "max_value"))
            if low is None and high is None:
                raise RunError(f"{kind} on {kwargs['column']}: neither min_value nor max_value")
            inside = []
            if low is not None:
                inside.append(f"{col} {'>' if kwargs.get('strict_min') else '>='} {literal(low)}")
            if high is not None:
                inside.append(f"{col} {'<' if kwargs.get('strict_max') else '<='} {literal(high)}")
            test = f"NOT ({' AND '.join(inside)})"
        return Rule(expectation, domain, missing, f"{present} AND {test}")

    if "column_A" in kwargs:
        a, b = ident(kwargs["column_A"]), ident(kwargs["column_B"])
        ignore = kwargs.get("ignore_row_if", "both_values_are_missing")
        dropped = {"both_values_are_missing": f"{a} IS NULL AND {b} IS NULL",
                   "either_value_is_missing": f"({a} IS NULL OR {b} IS NULL)",
                   "neither": "FALSE"}.get(ignore)
        if dropped is None:
            raise RunError(f"{kind}: ignore_row_if {ignore!r} has no SQL evaluation")
        if kind == "expect_column_pair_values_to_be_equal":
            holds = f"{a} = {b}"
        else:
            holds = f"{a} {'>=' if kwargs.get('or_equal') else '>'} {b}"
        # a comparison with a null is false in GX's pandas engine: the row is unexpected
        return Rule(expectation, f"{condition} AND NOT ({dropped})", "FALSE", f"NOT coalesce({holds}, FALSE)")

    columns = [ident(c) for c in kwargs["column_list"]]
    ignore = kwargs.get("ignore_row_if", "all_values_are_missing")
    nulls = [f"{c} IS NULL" for c in columns]
    dropped = {"all_values_are_missing": " AND ".join(nulls), "any_value_is_missing": " OR ".join(nulls),
               "never": "FALSE"}.get(ignore)
    if dropped is None:
        raise RunError(f"{kind}: ignore_row_if {ignore!r} has no SQL evaluation")
    domain = f"{condition} AND NOT ({dropped})"
    # duplicates among the judged rows only; nulls count as equal, as in pandas' duplicated()
    duplicated = f"count(*) FILTER (WHERE {domain}) OVER (PARTITION BY {', '.join(columns)}) > 1"
    return Rule(expectation, domain, "FALSE", duplicated)


def evaluate(con, table: str, expectations: list[dict], parameters: dict | None = None) -> list[Outcome]:
    """Every expectation's counts over `table` (a table, not a view: its rowid is the rows' order),
    in one pass."""
    rules = [translate(e, parameters) for e in expectations]
    if not rules:
        return []
    flagged = _flagged(table, rules)
    counts = []
    for i in range(len(rules)):
        counts += [f"count(*) FILTER (WHERE d{i})", f"count(*) FILTER (WHERE d{i} AND m{i})",
                   f"count(*) FILTER (WHERE d{i} AND u{i})"]
    row = con.execute(f"SELECT {', '.join(counts)} FROM ({flagged})").fetchone()
    return [Outcome(r, int(row[3 * i]), int(row[3 * i + 1]), int(row[3 * i + 2])) for i, r in enumerate(rules)]


def unexpected_rows_sql(table: str, outcomes: list[Outcome], columns: list[str]) -> str | None:
    """SELECT rule, *columns: every row that breaks a failed expectation, once per expectation it
    breaks (rule = the expectation's index), in the table's order; None when none failed."""
    failed = [i for i, o in enumerate(outcomes) if not o.success]
    if not failed:
        return None
    flagged = _flagged(table, [o.rule for o in outcomes], columns)
    picks = ", ".join(f"CASE WHEN d{i} AND u{i} THEN {i} END" for i in failed)
    cols = ", ".join(ident(c) for c in columns)
    return (f"SELECT rule, {cols} FROM (SELECT unnest(list_filter([{picks}], lambda x: x IS NOT NULL)) AS rule, "
            f"{cols}, _order FROM ({flagged})) ORDER BY _order, rule")


def _flagged(table: str, rules: list[Rule], columns: list[str] = ()) -> str:
    """The table with, per expectation i, its domain d{i}, missing m{i} and unexpected u{i} flags
    (the predicates are evaluated as columns, so a window function among them stays legal)."""
    flags = []
    for i, r in enumerate(rules):
        flags += [f"coalesce({r.domain}, FALSE) AS d{i}", f"coalesce({r.missing}, FALSE) AS m{i}",
                  f"coalesce({r.unexpected}, FALSE) AS u{i}"]
    keep = "".join(f"{ident(c)}, " for c in columns)
    return f"SELECT {keep}rowid AS _order, {', '.join(flags)} FROM {table}"


def gx_result(suite_name: str, outcomes: list[Outcome], batch: str):
    """The outcomes as GX's ExpectationSuiteValidationResult, the object its Data Docs render. Counts
    only: no row value is carried (the validation pages are read by people who may not see them)."""
    from great_expectations import __version__ as gx_version
    from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    results = []
    for o in outcomes:
        e = o.rule.expectation
        judged = o.element_count - o.missing_count
        unexpected_base = o.element_count if o.rule.type == "expect_column_values_to_not_be_null" else judged
        result = {"element_count": o.element_count, "unexpected_count": o.unexpected_count,
                  "unexpected_percent": _percent(o.unexpected_count, unexpected_base)}
        if o.rule.missing != "FALSE" and o.rule.type != "expect_column_values_to_not_be_null":
            result.update(missing_count=o.missing_count, missing_percent=_percent(o.missing_count, o.element_count),
                          unexpected_percent_total=_percent(o.unexpected_count, o.element_count),
                          unexpected_percent_nonmissing=_percent(o.unexpected_count, judged))
        config = ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"], meta=e.get("meta") or {})
        results.append(ExpectationValidationResult(success=o.success, expectation_config=config, result=result,
                                                   exception_info={"raised_exception": False,
                                                                   "exception_traceback": None,
                                                                   "exception_message": None}))
    successful = sum(o.success for o in outcomes)
    return ExpectationSuiteValidationResult(
        success=successful == len(outcomes), results=results, suite_name=suite_name,
        statistics={"evaluated_expectations": len(outcomes), "successful_expectations": successful,
                    "unsuccessful_expectations": len(outcomes) - successful,
                    "success_percent": _percent(successful, len(outcomes))},
        meta={"great_expectations_version": gx_version,
              "batch_spec": {"batch_data": "DuckDB table", "evaluated_by": "pipelines/expectations_sql.py"},
              "active_batch_definition": {"datasource_name": "doudi", "data_asset_name": batch}})


def _percent(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole
