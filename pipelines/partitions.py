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

import json
from pathlib import Path

from pipelines.faults import checkpoint
from pipelines.ingest import roster_outputs
from pipelines.io import atomic_path, ensure_dir, write_bytes_atomic
from pipelines.settings import RunContext, RunError
from pipelines.sqlrun import connect, copy_to_parquet, sql_string
from pipelines.validate import data_docs_path, validate_dir, validate_program

UNKNOWN_CITY = "other"
# the one partition of a month below settings.partition_min_rows: every city in one task
WHOLE_MONTH = "all"
# a label propagation that has not settled after this many rounds means a bug, not data
MAX_LABEL_ROUNDS = 50


def file_city_sql(column: str) -> str:
    """SQL for the city (partition name) of a county code column: its first four digits."""
    return (f"CASE WHEN regexp_full_match(coalesce({column}, ''), '\\d{{6}}') THEN left({column}, 4) "
            f"ELSE '{UNKNOWN_CITY}' END")


def _roster_programs(ctx: RunContext) -> list[str]:
    """The monthly programs, and temporary assistance where the month delivered it (or ingested it)."""
    return [p.name.removesuffix(".files.parquet") for p in roster_outputs(ctx, "ingest", ".files.parquet")]


def _ingest_file_tables(ctx: RunContext) -> list[str]:
    paths = roster_outputs(ctx, "ingest", ".files.parquet")
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


def validate_partition(ctx: RunContext, city: str) -> dict:
    """Validate every program's rows from one city's files."""
    return {"city": city, "programs": [validate_program(ctx, program, city) for program in _roster_programs(ctx)]}


def combine_validation(ctx: RunContext, cities: list[str]) -> dict:
    """Join the cities' validation outputs into the files the whole-program run writes, check that
    every delivered row was judged exactly once, and write the Data Docs index page per program."""
    con = connect(ctx)
    out_dir = ensure_dir(validate_dir(ctx))
    results = {}
    for program in _roster_programs(ctx):
        parts = [validate_dir(ctx, c) / f"{program}.parquet" for c in cities]
        missing = [str(p) for p in parts if not p.exists()]
        if missing:
            raise RunError(f"validation partitions missing for {program}: " + ", ".join(missing))
        sources = ", ".join(f"'{sql_string(str(p))}'" for p in parts)
        ingest = ctx.work_dir / "ingest" / f"{program}.parquet"
        delivered = con.execute(f"SELECT count(*) FROM read_parquet('{sql_string(str(ingest))}')").fetchone()[0]
        judged, distinct = con.execute(
            f"SELECT count(*), count(DISTINCT (source_file, source_row)) FROM read_parquet([{sources}])"
        ).fetchone()
        if not delivered == judged == distinct:
            raise RunError(f"{program}: {delivered} rows delivered, {judged} judged across {len(cities)} city "
                           f"partitions ({distinct} distinct): books do not balance")
        checkpoint("validate.before_write")
        copy_to_parquet(con, f"SELECT * FROM read_parquet([{sources}], union_by_name = true) "
                             "ORDER BY source_file, source_row", out_dir / f"{program}.parquet")
        summaries = {}
        for c in cities:
            gx = validate_dir(ctx, c) / f"{program}.gx.json"
            summaries[c] = json.loads(gx.read_text(encoding="utf-8")) if gx.exists() else None
        write_bytes_atomic(out_dir / f"{program}.gx.json", (json.dumps(
            {"success": all(s is None or s.get("success", True) for s in summaries.values()),
             "partitions": summaries}, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
        _write_data_docs_index(ctx, program, summaries)
        counts = dict(con.execute(f"SELECT disposition, count(*) FROM read_parquet([{sources}]) GROUP BY 1")
                      .fetchall())
        results[program] = {"rows": int(delivered), "by_disposition": {k: int(v) for k, v in sorted(counts.items())}}
    con.close()
    return {"cities": cities, "programs": results}


def _write_data_docs_index(ctx: RunContext, program: str, summaries: dict[str, dict | None]) -> None:
    """`data_docs/<program>.html` for a partitioned run: one line per city, linking its GX page."""
    from html import escape

    rows = []
    for city, summary in summaries.items():
        label = partition_label(ctx, city)
        if summary is None:
            rows.append(f"<tr><td>{escape(label)}</td><td colspan=3>本市无该项目数据</td></tr>")
            continue
        stats = summary.get("statistics", {})
        page = data_docs_path(ctx, program, city).relative_to(data_docs_path(ctx, program).parent)
        rows.append(
            f"<tr><td><a href=\"{escape(str(page))}\">{escape(label)}</a></td>"
            f"<td>{stats.get('evaluated_expectations', 0)}</td><td>{stats.get('successful_expectations', 0)}</td>"
            f"<td>{'通过' if summary.get('success') else '有未通过的规则'}</td></tr>")
    html = (
        "<!doctype html><html lang=zh><meta charset=utf-8>"
        f"<title>roster_{program} Data Docs</title><h1>roster_{program}: Great Expectations Data Docs by city</h1>"
        "<p>The month was validated one city at a time; each city has its own page.</p>"
        "<table border=1 cellpadding=4><tr><th>city</th><th>Evaluated Expectations</th>"
        "<th>Successful Expectations</th><th>result</th></tr>" + "".join(rows) + "</table></html>\n")
    with atomic_path(data_docs_path(ctx, program)) as tmp:
        tmp.write_text(html, encoding="utf-8")


def compute_partitions_dir(ctx: RunContext) -> Path:
    return ctx.work_dir / "compute" / "partitions"


def plan_compute_partitions(ctx: RunContext) -> list[str]:
    """Group the month's rows for the payment engine (see the module's docstring) and write
    `_work/compute/partitions/rows.parquet` (every row's group) and `people.parquet` (every
    person's group). Returns the group names in order; the first owns the lines no row owns."""
    roster = ctx.work_dir / "integrity" / "roster.parquet"
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
    out = ensure_dir(compute_partitions_dir(ctx))
    copy_to_parquet(con, "SELECT source_file, source_row, label AS partition FROM part_rows "
                         "ORDER BY source_file, source_row", out / "rows.parquet")
    copy_to_parquet(con, "SELECT id_number, min(label) AS partition FROM part_rows WHERE id_number IS NOT NULL "
                         "GROUP BY 1 ORDER BY 1", out / "people.parquet")
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
