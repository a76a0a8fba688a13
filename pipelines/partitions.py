"""Partitions of a month for the DAG: validation by city, the payment engine by closed groups.

The monthly_disbursement DAG maps its heavy stages over partitions so each can run on its own
worker; `doudi run` runs the same stages unpartitioned. Both give the same ledger (tested), because
a partition is only ever cut where no rule looks across it:

- **Validation, by city** (the first four digits of a file's county code). Every validation rule
  looks at one row, one file or one household, and a county's file holds its households. A file
  whose county is unknown (unreadable, rejected before its rows were read) goes to `other`. The
  rules that look across counties or programs are integrity's: that stage runs once, on the
  combined result (duplicates across counties, exclusive programs, deaths, shared accounts, near
  duplicates).
- **The payment engine, by closed groups of cities.** A person's lines depend on every unit they
  belong to (a price subsidy once per person across programs; a dibao household's members), so a
  person who appears in two cities pulls both into one group: groups are the connected components
  of persons and units, each named after its smallest city. A line or finding that no current
  roster row owns would go to the first group, so each is still written once (none arises today:
  even a reissue waits until its payee is on the month's roster).
"""

from __future__ import annotations

from pipelines import artefacts
from pipelines.io import ensure_dir
from pipelines.settings import ROSTER_PROGRAMS, RunContext, RunError
from pipelines.sqlrun import connect, copy_to_parquet, sql_string

UNKNOWN_CITY = "other"
# the one partition of a month below settings.partition_min_rows: every city in one task
WHOLE_MONTH = "all"
# a label propagation that has not settled after this many rounds means a bug, not data
MAX_LABEL_ROUNDS = 50


def file_city_sql(column: str) -> str:
    """SQL for the city (partition name) of a county code column: its first four digits."""
    return (f"CASE WHEN regexp_full_match(coalesce({column}, ''), '\\d{{6}}') THEN left({column}, 4) "
            f"ELSE '{UNKNOWN_CITY}' END")


def roster_programs(ctx: RunContext) -> list[str]:
    """The monthly programs, and temporary assistance where the month delivered it (or ingested it)."""
    delivered = set(_ingest_outputs(ctx))
    return [p for p in ROSTER_PROGRAMS if artefacts.ingested_files(ctx, p) in delivered]


def _ingest_outputs(ctx: RunContext) -> list:
    return artefacts.roster_outputs(ctx, artefacts.ingested_files)


def _ingest_file_tables(ctx: RunContext) -> list[str]:
    paths = _ingest_outputs(ctx)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise RunError("ingest output missing, run the ingest stage first: " + ", ".join(missing))
    return [str(p) for p in paths]


def partition_label(ctx: RunContext, partition: str) -> str:
    """A partition as people read it: `2101 沈阳市`, or what `all` and `other` stand for (the DAG's
    mapped tasks are named by it, and the Data Docs index lists it)."""
    if partition == WHOLE_MONTH:
        return "全月 (未分市)"
    if partition == UNKNOWN_CITY:
        return "其他 (县代码不明的文件)"
    regions = ctx.reference / "regions.csv"
    names = []
    if regions.exists():
        con = connect()
        try:
            names = con.execute(f"SELECT DISTINCT city_name FROM read_csv('{sql_string(str(regions))}', all_varchar = "
                                "true) WHERE city_code = ? ORDER BY 1", [partition]).fetchall()
        except Exception:  # a label, never a reason to fail a task: check_reference judges the table
            names = []
        finally:
            con.close()
    return f"{partition} {names[0][0]}" if len(names) == 1 else partition


def partitioned(ctx: RunContext) -> bool:
    """Whether this month is cut by city: it delivered at least settings.partition_min_rows rows."""
    files = ", ".join(f"'{sql_string(p)}'" for p in _ingest_file_tables(ctx))
    con = connect(ctx)
    try:
        rows = con.execute(f"SELECT coalesce(sum(rows), 0) FROM read_parquet([{files}])").fetchone()[0]
    finally:
        con.close()
    return rows >= ctx.settings.partition_min_rows


def plan_validation_partitions(ctx: RunContext) -> list[str]:
    """The cities that delivered any roster file this month, in order (the validate task's map);
    [WHOLE_MONTH] for a month too small to be worth cutting."""
    if not partitioned(ctx):
        return [WHOLE_MONTH]
    con = connect(ctx)
    files = ", ".join(f"'{sql_string(p)}'" for p in _ingest_file_tables(ctx))
    cities = [r[0] for r in con.execute(
        f"SELECT DISTINCT {file_city_sql('county')} AS city FROM read_parquet([{files}]) ORDER BY city").fetchall()]
    con.close()
    return cities


def plan_compute_partitions(ctx: RunContext) -> list[str]:
    """Group the month's rows for the payment engine (see the module's docstring) and write
    `_work/compute/partitions/rows.parquet` (every row's group) and `people.parquet` (every
    person's group). Returns the group names in order; the first owns the lines no row owns."""
    roster = artefacts.integrity_roster(ctx)
    if not roster.exists():
        raise RunError(f"integrity output missing: run the integrity stage first ({roster})")
    whole = not partitioned(ctx)
    con = connect(ctx)
    con.execute(f"""
        CREATE TABLE part_rows AS
        SELECT source_file, source_row, id_number,
               CASE WHEN program = 'dibao' AND household_id IS NOT NULL THEN 'h:' || household_id
                    ELSE 'p:' || id_number END AS unit_key,
               {f"'{WHOLE_MONTH}'" if whole else file_city_sql('region_code')} AS label
        FROM read_parquet('{sql_string(str(roster))}')""")
    if not whole:
        _label_connected_components(con)
    ensure_dir(artefacts.compute_partitions_dir(ctx))
    copy_to_parquet(con, "SELECT source_file, source_row, label AS partition FROM part_rows "
                         "ORDER BY source_file, source_row", artefacts.partition_rows(ctx))
    copy_to_parquet(con, "SELECT id_number, min(label) AS partition FROM part_rows WHERE id_number IS NOT NULL "
                         "GROUP BY 1 ORDER BY 1", artefacts.partition_people(ctx))
    labels = [r[0] for r in con.execute("SELECT DISTINCT label FROM part_rows ORDER BY 1").fetchall()]
    con.close()
    return labels or [WHOLE_MONTH if whole else UNKNOWN_CITY]


def _label_connected_components(con) -> None:
    """Relabel part_rows so that connected persons and units share a label, the smallest city among
    them (label propagation until nothing changes)."""
    for _ in range(MAX_LABEL_ROUNDS):
        changed = con.execute("""
            CREATE OR REPLACE TABLE part_next AS
            WITH by_person AS (SELECT id_number, min(label) AS l FROM part_rows
                               WHERE id_number IS NOT NULL GROUP BY 1),
                 by_unit AS (SELECT unit_key, min(label) AS l FROM part_rows
                             WHERE unit_key IS NOT NULL GROUP BY 1)
            SELECT r.source_file, r.source_row, r.id_number, r.unit_key,
                   least(r.label, coalesce(p.l, r.label), coalesce(u.l, r.label)) AS label
            FROM part_rows r LEFT JOIN by_person p USING (id_number) LEFT JOIN by_unit u USING (unit_key);
            SELECT count(*) FROM part_next n JOIN part_rows r USING (source_file, source_row)
            WHERE n.label <> r.label""").fetchone()[0]
        con.execute("DROP TABLE part_rows; ALTER TABLE part_next RENAME TO part_rows")
        if changed == 0:
            return
    raise RunError("payment partitions did not settle: a bug in pipelines/partitions.py")
