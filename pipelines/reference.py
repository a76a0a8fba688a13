"""Stage 0, check the reference data: a broken policy table stops the run before any payment.

The reference suite (expectations/reference.json) runs on frames built from the reference CSVs:
the standards table itself, the policy facts per county for the payroll month
(sql/intermediate/int_reference_policy.sql), the fund shares, the price-linkage rule and the
exclusion table. Before it, plain checks that every table a rule needs is complete
(COMPLETENESS): each required policy parameter in force once, one price-linkage version per
effective_from, a fund-share row for every county and program, the CPI row the price-linkage rule
in force reads, a dibao standard for every county. Any failure raises RunError listing what is
wrong, one sentence per problem naming the file, the key and what needs it.

The policy parameters that change amounts (pay_amount_source, approved_tolerance) are resolved
here once per run and written to `_work/policy_resolved.json`; compute reads them from there and
publish records them in run_log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pipelines import artefacts
from pipelines.expectations_sql import evaluate, unexpected_rows_sql
from pipelines.io import write_json_atomic
from pipelines.lifecycle import check_release_state
from pipelines.policy import (  # noqa: F401  the resolved policy is policy.py's; warehouse.py imports it from here
    POLICY_RESOLVED,
    REQUIRED_PARAMETERS,
    held_counties,
    parameter_problems,
    policy_resolved,
    refuse_moved_settings,
    write_policy_resolved,
)
from pipelines.settings import EXPECTATIONS_DIR, PROGRAMS, RunContext, RunError
from pipelines.sqlrun import REFERENCE_FILES, connect, register_reference, run_model

REQUIRED_REFERENCE = ("standards", "cpi", "price_linkage", "exclusions", "fund_shares", "regions", "banks",
                      "policy_parameters")

FRAMES = {
    "standards": "SELECT *, amount::DOUBLE AS amount_num FROM stg_standards",
    "policy": "SELECT * FROM int_reference_policy",
    "fund_shares": "SELECT *, central + provincial + city + county = 1 AS sums_to_one FROM stg_fund_shares",
    "price_linkage": "SELECT * FROM stg_price_linkage",
    "exclusions": "SELECT * FROM stg_exclusions",
}


def check_reference(ctx: RunContext) -> dict:
    check_release_state(ctx)  # first of all: a released month is rerun only as a supplementary run
    refuse_moved_settings()
    missing = [f"{n}.csv" for n in REQUIRED_REFERENCE if not (ctx.reference / f"{n}.csv").exists()]
    if missing:
        raise RunError(f"reference folder {ctx.reference} lacks {', '.join(missing)}")
    con = connect(ctx)
    try:
        register_reference(con, ctx.reference)
        for model in ("stg_regions", "stg_standards", "stg_policy_parameters", "stg_fund_shares",
                      "stg_price_linkage", "stg_exclusions", "stg_cpi", "stg_temporary_assistance"):
            run_model(con, f"staging/{model}.sql")
    except RunError:
        raise
    except Exception as exc:  # a value that cannot be typed is a broken table too
        raise RunError(f"reference data cannot be read: {exc}") from exc
    problems = completeness_problems(con, ctx) + [Problem(t) for t in temporary_policy_problems(con, ctx)]
    if not any(p.text.startswith("policy_parameters.csv") for p in problems):
        try:
            run_model(con, "intermediate/int_reference_policy.sql")
        except Exception as exc:
            raise RunError(f"reference data cannot be read: {exc}") from exc
        problems += dibao_standard_problems(con, ctx) + standard_gap_problems(con, ctx)
    counties = [r[0] for r in con.execute("SELECT region_code FROM stg_regions ORDER BY 1").fetchall()]
    suite = json.loads((EXPECTATIONS_DIR / "reference.json").read_text(encoding="utf-8"))["expectations"]
    for frame_name, query in FRAMES.items():
        if frame_name == "policy" and "int_reference_policy" not in _tables(con):
            continue
        expectations = [e for e in suite if e["meta"]["frame"] == frame_name]
        problems += _judge_frame(con, frame_name, query, expectations, counties)
    con.close()
    held = held_counties_of(problems, counties)
    report = {"payroll_month": ctx.month, "reference": str(ctx.reference), "problems": [p.text for p in problems],
              "held_counties": held,
              "files": [f"{n}.csv" for n in REFERENCE_FILES if (ctx.reference / f"{n}.csv").exists()]}
    write_json_atomic(artefacts.reference_check(ctx), report)
    if problems and not held:
        raise RunError("reference data is incomplete or breaks the policy's own rules; no payment computed:\n  - "
                       + "\n  - ".join(p.text for p in problems))
    resolved = write_policy_resolved(ctx)
    return {"reference": str(ctx.reference), "problems": len(problems), "held_counties": sorted(held),
            "policy_resolved": resolved}


@dataclass(frozen=True)
class Problem:
    """One broken rule of the reference data, in a sentence. `counties` are the counties of regions.csv
    that it leaves without a usable rule; empty: the whole province (a parameter, the CPI, a row
    that is no county's)."""
    text: str
    counties: tuple[str, ...] = ()


def held_counties_of(problems: list[Problem], counties: list[str]) -> dict[str, list[str]]:
    """不断 (issue 20): problems confined to some counties hold those counties, with the sentences
    that say why, and the rest of the province is paid; their people are paid provisionally
    (sql/intermediate/int_reference_held_due.sql). A problem of the whole province, or one that
    leaves no county to pay, holds nothing: the run stops ({} with problems)."""
    if not problems or any(not p.counties for p in problems):
        return {}
    held: dict[str, list[str]] = {}
    for p in problems:
        for county in p.counties:
            held.setdefault(county, []).append(p.text)
    if set(held) >= set(counties):
        return {}
    return {county: held[county] for county in sorted(held)}


def _tables(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def _some(keys: list[str], n: int = 5) -> str:
    head = ", ".join(keys[:n])
    return head + (f" and {len(keys) - n} more" if len(keys) > n else "")


def completeness_problems(con, ctx: RunContext) -> list[Problem]:
    """Every table a rule needs is complete for the payroll month: one sentence per gap."""
    month = ctx.month
    problems = [Problem(t) for t in parameter_problems(con, month, REQUIRED_PARAMETERS)]
    # price linkage: one version per effective_from, programs the engine knows
    for eff, n in con.execute("SELECT effective_from, count(*) FROM stg_price_linkage GROUP BY 1 "
                              "HAVING count(*) > 1 ORDER BY 1").fetchall():
        problems.append(Problem(f"price_linkage.csv has {n} versions with effective_from {eff} (each would be "
                                f"version price_linkage@{eff}): the price subsidy needs exactly one version per "
                                "effective_from."))
    for eff, prog in con.execute("SELECT effective_from, p FROM (SELECT effective_from, unnest(programs) AS p "
                                 "FROM stg_price_linkage) WHERE p NOT IN ?", [list(PROGRAMS)]).fetchall():
        problems.append(Problem(f"price_linkage.csv version {eff} lists program {prog!r}: the price subsidy "
                                f"covers only {', '.join(PROGRAMS)}."))
    # fund shares: every county of regions.csv and every program (a price-subsidy line is funded by the
    # program that carries it unless a price_subsidy row matches, so the four programs cover it)
    # temporary assistance is funded by its own key wherever the folder has its policy
    funded = list(PROGRAMS) + (["temporary"] if _has_temporary_policy(con) else [])
    gaps = con.execute("""
        SELECT p.program, list(r.region_code ORDER BY r.region_code)
        FROM stg_regions r CROSS JOIN (SELECT unnest(?) AS program) p
        WHERE NOT EXISTS (SELECT 1 FROM stg_fund_shares f WHERE f.program = p.program
                          AND starts_with(r.region_code, f.region_code) AND f.effective_from <= ?)
        GROUP BY p.program ORDER BY p.program""", [funded, month]).fetchall()
    for program, counties in gaps:
        problems.append(Problem(
            f"fund_shares.csv has no {program} row in force for payroll {month} covering county {_some(counties)} "
            f"({len(counties)} of regions.csv): the {program} lines there (and the price subsidy it carries) need "
            f"one (key program={program}, region_code a prefix of the county, effective_from on or before the "
            "month).", tuple(counties)))
    # the CPI row the price-linkage rule in force reads
    missing_cpi = con.execute("""
        WITH rule AS (
            SELECT * FROM stg_price_linkage WHERE effective_from <= ? AND effective_to >= ?
            QUALIFY row_number() OVER (ORDER BY effective_from DESC) = 1)
        SELECT version_id, strftime(CAST(? || '-01' AS DATE) - to_months(index_lag), '%Y-%m') AS index_month
        FROM rule
        WHERE NOT EXISTS (SELECT 1 FROM stg_cpi c WHERE c.area IN (?, '00')
                          AND c.month = strftime(CAST(? || '-01' AS DATE) - to_months(rule.index_lag), '%Y-%m'))
        """, [month, month, month, ctx.settings.province_code, month]).fetchall()
    for version, index_month in missing_cpi:
        problems.append(Problem(f"cpi.csv has no row for month {index_month} (area {ctx.settings.province_code} "
                                f"or 00): the price-linkage rule {version} in force for payroll {month} reads that "
                                "index month."))
    return problems


def _has_temporary_policy(con) -> bool:
    return bool(con.execute("SELECT count(*) FROM stg_temporary_assistance").fetchone()[0])


def temporary_policy_problems(con, ctx: RunContext) -> list[str]:
    """temporary_assistance.csv (optional): every row a usable rule, one version per key and valid_from.
    Whether a case's county and event is covered is known only once the cases are read: integrity
    stops the run on a case no row covers (pipelines/integrity.py), never a default."""
    from pipelines.vocabulary import EVENT_TYPES

    name = "temporary_assistance.csv"
    out: list[str] = []
    rows = con.execute("""
        SELECT region_code, event_type, standard_months, township_cap, county_cap, case_by_case_threshold,
               max_per_12_months, valid_from, delivered_standard_months, delivered_township_cap,
               delivered_county_cap, delivered_case_by_case_threshold, delivered_max_per_12_months,
               delivered_valid_from
        FROM stg_temporary_assistance ORDER BY ALL""").fetchall()
    province = ctx.settings.province_code
    for (region, event, months, township, county, threshold, times, valid_from,
         d_months, d_township, d_county, d_threshold, d_times, d_valid) in rows:
        key = f"{region}/{event}@{d_valid}"
        if not region or len(region) not in (2, 4, 6) or not region.isdigit() or not region.startswith(province):
            out.append(f"{name} row {key}: region_code must be a 2-, 4- or 6-digit prefix inside province {province}.")
        if event not in EVENT_TYPES:
            out.append(f"{name} row {key}: event_type must be one of {'/'.join(EVENT_TYPES)}.")
        if valid_from is None:
            out.append(f"{name} row {key}: valid_from {d_valid!s} is not a month (YYYY-MM).")
        if months is None or months <= 0:
            out.append(f"{name} row {key}: standard_months {d_months!s} is not a number above 0: the standard "
                       "(months × the county's dibao standard) on every one_off line needs it.")
        for column, value, delivered in (("township_cap", township, d_township), ("county_cap", county, d_county),
                                         ("case_by_case_threshold", threshold, d_threshold)):
            if value is None or value <= 0:
                out.append(f"{name} row {key}: {column} {delivered!s} is not an amount above 0 (yuan, to the fen).")
        if township is not None and county is not None and township > county:
            out.append(f"{name} row {key}: township_cap {township} is above county_cap {county}: a township "
                       "may not approve more than its county.")
        if times is None or times < 1:
            out.append(f"{name} row {key}: max_per_12_months {d_times!s} is not a whole number of 1 or more.")
    for region, event, valid_from, n in con.execute("""
            SELECT region_code, event_type, valid_from, count(*) FROM stg_temporary_assistance
            GROUP BY ALL HAVING count(*) > 1 ORDER BY ALL""").fetchall():
        out.append(f"{name} has {n} versions of {region}/{event} with valid_from {valid_from}: a case needs "
                   "exactly one version per key and valid_from.")
    return out


def dibao_standard_problems(con, ctx: RunContext) -> list[Problem]:
    """A county with no dibao standard in force: dibao and the price subsidy there need one."""
    out = []
    for urban_rural, counties in con.execute(
            "SELECT urban_rural, list(region_code ORDER BY region_code) FROM int_reference_policy "
            "WHERE dibao_standard IS NULL GROUP BY 1 ORDER BY 1").fetchall():
        out.append(Problem(f"standards.csv has no dibao/standard ({urban_rural}) in force for payroll {ctx.month} "
                           f"covering county {_some(counties)} ({len(counties)} of regions.csv): the dibao and the "
                           "price subsidy there need one.", tuple(counties)))
    return out


def standard_gap_problems(con, ctx: RunContext) -> list[Problem]:
    """A county with no tekun basic or care, orphans' allowance or living subsidy in force."""
    run_model(con, "intermediate/int_reference_standard_gaps.sql")
    return [Problem(f"standards.csv has no {program}/{component} "
                    f"({category if category != '*' else 'any category'}, {urban_rural}) in force for payroll "
                    f"{ctx.month} covering county {_some(counties)} ({len(counties)} of regions.csv): every "
                    f"{program} row there needs one.", tuple(counties))
            for program, component, category, urban_rural, counties in con.execute(
                "SELECT * FROM int_reference_standard_gaps").fetchall()]


# the columns that name a row of a reference table in a problem's sample
_SAMPLE_KEYS = ("program", "component", "region_code", "urban_rural", "category", "effective_from", "program_a",
                "subsidy_a", "program_b", "subsidy_b", "action")


def _judge_frame(con, frame_name: str, query: str, expectations: list[dict], counties: list[str]) -> list[Problem]:
    """The reference suite's rules for one frame, evaluated in DuckDB (pipelines/expectations_sql.py):
    one sentence per broken rule, with up to five of the rows that break it. A rule broken only by
    rows of some counties (their region_code a prefix of them, among `counties`) holds those counties."""
    table = f"reference_frame_{frame_name}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {query}")
    if con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0:
        # an empty exclusions.csv says that no combination is excluded (contract section 3); every
        # other table without rows cannot pay anything
        return [] if frame_name == "exclusions" else [Problem(f"{frame_name}: no rows")]
    outcomes = evaluate(con, table, expectations)
    columns = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
    keys = [k for k in _SAMPLE_KEYS if k in columns]
    samples: dict[int, list[str]] = {}
    regions: dict[int, set] = {}
    rows_sql = unexpected_rows_sql(table, outcomes, keys)
    for rule, *values in con.execute(rows_sql).fetchall() if rows_sql else []:
        sample = samples.setdefault(rule, [])
        if len(sample) < 5:
            sample.append("/".join(str(v) for v in values if v is not None))
        regions.setdefault(rule, set()).add(values[keys.index("region_code")] if "region_code" in keys else None)
    out = []
    for i, o in enumerate(outcomes):
        if o.success:
            continue
        sample = samples.get(i, [])
        prefixes = regions.get(i, {None})
        scope = () if None in prefixes else tuple(c for c in counties if any(c.startswith(p) for p in prefixes))
        out.append(Problem(f"{frame_name}: {o.rule.expectation['meta']['rule']} ({o.unexpected_count} rows"
                           f"{': ' + '; '.join(sample) if sample else ''})", scope))
    return out
