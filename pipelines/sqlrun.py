"""Running the SQL models under sql/ in DuckDB.

A model is one file that holds one SELECT; `run_model` materialises it as a table named after the
file (`sql/intermediate/int_dibao_household.sql` -> table `int_dibao_household`). Values a model
needs from the run (the payroll month, the province) are DuckDB variables read with
`getvariable('payroll_month')`. Reference CSVs are registered as `raw_<name>` views with every
column as text; the staging models type them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb

from pipelines import artefacts
from pipelines.catalog import base_tables, sql_string, tables_in  # noqa: F401 (also imported from here)
from pipelines.io import PRIVATE_DIR_MODE, ensure_dir, sha256_file
from pipelines.settings import SQL_DIR, RunContext, RunError, Settings
from pipelines.vocabulary import (
    APPROVAL_LEVELS,
    CARE_LEVELS,
    CLASS_CATEGORIES,
    DISABILITY_CATEGORIES,
    DISABILITY_GRADES,
    EVENT_TYPES,
    PLACEMENTS,
    PROGRAM_NAMES_ZH,
    RELATIONS,
    SUBSIDY_TYPES,
)
from pipelines.warehouse_months import point_views_here, views_elsewhere

REFERENCE_FILES = (
    "standards", "cpi", "price_linkage", "exclusions", "fund_shares", "regions", "banks", "policy_parameters",
    "registry_checks", "temporary_assistance", "bank_templates",
)


def reference_fingerprints(ctx: RunContext) -> dict[str, str]:
    """{file name: SHA-256} of the reference files a run reads (run_log.reference_files)."""
    return {f"{n}.csv": sha256_file(ctx.reference / f"{n}.csv") for n in REFERENCE_FILES
            if (ctx.reference / f"{n}.csv").exists()}


# Extensions a bureau's folder may lack: an empty table stands in (the models say what that means).
OPTIONAL_REFERENCE = {
    "registry_checks": "registry VARCHAR, programs VARCHAR, note VARCHAR",
    # a folder without it pays no temporary assistance: a case then finds no policy row and stops the run
    "temporary_assistance": "region_code VARCHAR, event_type VARCHAR, standard_months VARCHAR, township_cap VARCHAR, "
                            "county_cap VARCHAR, case_by_case_threshold VARCHAR, max_per_12_months VARCHAR, "
                            "version VARCHAR, valid_from VARCHAR",
    # banks' payout file layouts (pipelines/bank_templates.py reads them); without it, today's files
    "bank_templates": "template VARCHAR, format VARCHAR, encoding VARCHAR, separator VARCHAR, columns VARCHAR, "
                      "header VARCHAR, footer VARCHAR, file_name VARCHAR, max_records VARCHAR, description VARCHAR",
}


def connect(ctx: RunContext | None = None, path: str | Path | None = None, read_only: bool = False):
    con = duckdb.connect(str(path) if path else ":memory:", read_only=read_only)
    if ctx is not None:
        apply_resource_limits(con, ctx)
        set_variables(con, payroll_month=ctx.month, province_code=ctx.settings.province_code)
    con.execute("SET preserve_insertion_order = false")
    load_macros(con)
    return con


def apply_resource_limits(con, ctx: RunContext) -> None:
    """The run's memory share, threads and owner-only spill folder, on any connection a stage opens
    (a database DuckDB opens without them takes 80 % of the machine's memory)."""
    limit_memory_and_threads(con, ctx.settings)
    # DuckDB spills sorts, joins and large inserts here: rows with full ID numbers and accounts.
    # Owner-only whatever the umask, and whatever an earlier run left (its files are DuckDB's own).
    temp = ensure_dir(artefacts.duckdb_temp_dir(ctx))
    os.chmod(temp, PRIVATE_DIR_MODE)
    con.execute(f"SET temp_directory = '{sql_string(str(temp))}'")


def limit_memory_and_threads(con, settings: Settings | None = None) -> None:
    """DuckDB's memory share and threads (settings from the environment when no run gives them)."""
    s = settings or Settings()
    con.execute(f"SET memory_limit = '{s.duckdb_memory_limit or f'{duckdb_memory_limit_mb(s.memory_budget)}MB'}'")
    con.execute(f"SET threads = {int(s.duckdb_threads)}")


def open_database(path: str | Path, read_only: bool = False, settings: Settings | None = None):
    """A database file outside a stage (a warehouse read for a check, a clearance written), with
    the memory share and threads every stage's connection has; a spill goes to DuckDB's own folder
    beside it (owner-only: doudi's processes run with umask 077)."""
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        limit_memory_and_threads(con, settings)
    except Exception:
        con.close()
        raise
    return con


# What Python itself may still allocate while DuckDB works (Arrow batches handed over, GX's result
# objects, xlsx rows): kept out of DuckDB's share of the budget. And the least DuckDB is given.
PYTHON_RESERVE_MB = 512
DUCKDB_FLOOR_MB = 256


def size_mb(text: str) -> int:
    """'4GB', '512MB', '2.5 GiB' -> megabytes; a value it cannot read is named in one sentence."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)I?B?\s*", text.upper())
    if not match:
        raise RunError(f"memory size {text!r} is not a size such as 4GB or 512MB (DOUDI_MEMORY_BUDGET, "
                       "DOUDI_DUCKDB_MEMORY_LIMIT)")
    number, unit = float(match.group(1)), match.group(2)
    return int(number * {"K": 1 / 1024, "": 1 / (1024 * 1024), "M": 1, "G": 1024, "T": 1024 * 1024}[unit])


def machine_memory_mb() -> int:
    """The memory this process may use on this machine: physical memory, or the container's
    (cgroup) limit where it is lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value.isdigit():
            total = min(total, int(value))
    return total // (1024 * 1024)


def process_rss_mb() -> int:
    import psutil

    return psutil.Process().memory_info().rss // (1024 * 1024)


def duckdb_memory_limit_mb(budget: str, machine_mb: int | None = None, rss_mb: int | None = None) -> int:
    """DuckDB's share of a process's memory budget, when the stage connects: the budget (at most half
    of the machine), less what the process holds already (its imports, a stage's Python data), less
    PYTHON_RESERVE_MB; never below DUCKDB_FLOOR_MB (DuckDB then spills to disk sooner)."""
    machine = machine_memory_mb() if machine_mb is None else machine_mb
    rss = process_rss_mb() if rss_mb is None else rss_mb
    return max(DUCKDB_FLOOR_MB, min(size_mb(budget), machine // 2) - rss - PYTHON_RESERVE_MB)


def attach_warehouse(con, warehouse: Path, required: bool = True) -> bool:
    """Attach the warehouse read-only as `wh`. A missing warehouse is an error when required;
    otherwise the caller is told (False) and carries on without history."""
    if not Path(warehouse).exists():
        if required:
            from pipelines.settings import RunError

            raise RunError(f"no warehouse at {warehouse}: publish a month first (doudi run), or point --warehouse "
                           "(or DOUDI_WAREHOUSE) at the warehouse file")
        return False
    con.execute(f"ATTACH '{sql_string(str(warehouse))}' AS wh (READ_ONLY)")
    if views_elsewhere(con, warehouse, "wh"):  # a warehouse copied or restored with its month files
        con.execute("DETACH wh")
        point_views_here(warehouse)
        con.execute(f"ATTACH '{sql_string(str(warehouse))}' AS wh (READ_ONLY)")
    return True


def set_variables(con, **values) -> None:
    for name, value in values.items():
        con.execute(f"SET VARIABLE {name} = ?", [value])


def load_macros(con) -> None:
    con.execute((SQL_DIR / "macros.sql").read_text(encoding="utf-8"))


def read_reference_csv(path: Path):
    """A reference CSV as an Arrow table of text columns (blank = NULL). Decoded in Python, as rosters
    are (UTF-8 with or without BOM, GB18030/GBK; CRLF, LF or mixed line endings), so DuckDB never
    parses it; a file that cannot be read is named in one sentence."""
    import csv
    import io

    import pyarrow as pa

    from pipelines.io import FileRejected, decode_text
    from pipelines.settings import RunError

    path = Path(path)
    try:
        text, _ = decode_text(path.read_bytes())
    except FileRejected as exc:
        raise RunError(f"reference file {path.name} cannot be read: its text is neither UTF-8 nor "
                       "GB18030/GBK.") from exc
    try:
        rows = [r for r in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in r)]
    except csv.Error as exc:
        raise RunError(f"reference file {path.name} cannot be read as CSV ({exc}).") from exc
    if not rows:
        raise RunError(f"reference file {path.name} is empty: it needs a header row and its rows.")
    header = [h.strip().lstrip("\ufeff") for h in rows[0]]
    if len(set(header)) != len(header) or not all(header):
        raise RunError(f"reference file {path.name} has a blank or repeated column name in its header row.")
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise RunError(f"reference file {path.name} line {i} has {len(r)} fields where its header has "
                           f"{len(header)}.")
    return pa.table({h: pa.array([r[j] if r[j] != "" else None for r in rows[1:]], pa.string())
                     for j, h in enumerate(header)})


def table_from_arrow(con, name: str, rows, temp: bool = False) -> None:
    """Table `name` (replaced if there) holding an Arrow table's rows, registered with DuckDB only
    while they are copied."""
    view = f"{name}_arrow"
    con.register(view, rows)
    try:
        con.execute(f"CREATE OR REPLACE {'TEMP ' if temp else ''}TABLE {name} AS SELECT * FROM {view}")
    finally:
        con.unregister(view)


def register_reference(con, reference_dir: Path) -> None:
    """raw_<name> tables of the reference CSVs, all columns text (the staging models type them)."""
    for name in REFERENCE_FILES:
        path = Path(reference_dir) / f"{name}.csv"
        if path.exists():
            table_from_arrow(con, f"raw_{name}", read_reference_csv(path))
        elif name in OPTIONAL_REFERENCE:
            con.execute(f"CREATE OR REPLACE TABLE raw_{name} ({OPTIONAL_REFERENCE[name]})")
    register_vocabulary(con)


def register_vocabulary(con) -> None:
    """The enumerated vocabulary of pipelines/vocabulary.py as small lookup tables for SQL."""
    tables = {
        "vocab_relation": (("value",), [(r,) for r in RELATIONS]),
        "vocab_care_level": (("value",), [(c,) for c in CARE_LEVELS]),
        "vocab_class_category": (("value",), [(c,) for c in CLASS_CATEGORIES]),
        "vocab_event_type": (("value",), [(e,) for e in EVENT_TYPES]),
        "vocab_approval_level": (("value",), [(a,) for a in APPROVAL_LEVELS]),
        "vocab_placement": (("program", "value"), [(p, v) for p, vs in PLACEMENTS.items() for v in vs]),
        "vocab_subsidy_type": (("value", "ledger_program"), list(SUBSIDY_TYPES.items())),
        # the programs' names as caseworkers and banks read them (findings, payout records)
        "vocab_program_zh": (("program", "program_zh"), list(PROGRAM_NAMES_ZH.items())),
        # category and grade: accept the name (视力, 一级), the digit, or the digit with 级/类
        "vocab_disability_category": (("spelling", "digit"),
                                      [(k, v) for k, v in DISABILITY_CATEGORIES.items()]
                                      + [(v, v) for v in DISABILITY_CATEGORIES.values()]
                                      + [(k + "残疾", v) for k, v in DISABILITY_CATEGORIES.items()]),
        "vocab_disability_grade": (("spelling", "digit"),
                                   [(k, v) for k, v in DISABILITY_GRADES.items()]
                                   + [(v, v) for v in DISABILITY_GRADES.values()]
                                   + [(v + "级", v) for v in DISABILITY_GRADES.values()]),
    }
    # one statement per table (executemany ran one INSERT per row: 34 ms per connection, ten a month)
    for name, (columns, rows) in tables.items():
        row_sql = ", ".join("(" + ", ".join("?" * len(columns)) + ")" for _ in rows)
        con.execute(f"CREATE OR REPLACE TABLE {name} ({', '.join(c + ' VARCHAR' for c in columns)})")
        con.execute(f"INSERT INTO {name} VALUES {row_sql}", [v for row in rows for v in row])


def model_sql(relpath: str) -> str:
    return (SQL_DIR / relpath).read_text(encoding="utf-8")


def run_model(con, relpath: str, name: str | None = None, view: bool = False) -> str:
    """Materialise sql/<relpath> as a table named after the file (or, with `view`, define it as a
    view that its readers stream); return the name."""
    table = name or Path(relpath).stem
    con.execute(f"CREATE OR REPLACE {'VIEW' if view else 'TABLE'} {table} AS\n{model_sql(relpath)}")
    return table


def copy_to_parquet(con, query_or_table: str, path: Path) -> None:
    """Write a table or query to Parquet atomically (temporary name, then rename)."""
    from pipelines.io import atomic_path

    src = query_or_table if query_or_table.lstrip().lower().startswith(("select", "with", "from")) \
        else f"SELECT * FROM {query_or_table}"
    with atomic_path(path) as tmp:
        con.execute(f"COPY ({src}) TO '{sql_string(str(tmp))}' (FORMAT parquet, COMPRESSION zstd)")
