"""Stage 2, validate: normalise one program's rows and judge them with its Great Expectations suite.

Normalisation is SQL (sql/staging/stg_roster_base.sql and stg_<program>.sql); judgement is the GX
suite `expectations/roster_common.json` + `expectations/roster_<program>.json`, run on a pandas
frame of the rows in play. Each expectation carries the reason code its unexpected rows receive.
The disposition of every row (accepted / quarantined / duplicate) is then decided in SQL
(sql/intermediate/int_roster_validated.sql), and the books are checked: rows out == rows in.

Writes `_work/validate/<program>.parquet`, `_work/validate/<program>.gx.json` (the validation
result without personal data) and `reports/data_docs/<program>.html` (GX Data Docs, for the data
team, made to render offline; the counties read reports/validation/, pipelines/caseworker_page.py).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from pipelines import artefacts
from pipelines.artefacts import data_docs_path, validate_dir
from pipelines.data_docs_offline import make_offline
from pipelines.expectations_sql import evaluate, gx_result, literal, unexpected_rows_sql
from pipelines.faults import checkpoint
from pipelines.io import atomic_path, ensure_dir, write_bytes_atomic
from pipelines.models import run_models
from pipelines.partitions import WHOLE_MONTH, file_city_sql, partition_label, roster_programs
from pipelines.settings import EXPECTATIONS_DIR, RunContext, RunError
from pipelines.sqlrun import connect, copy_to_parquet, register_reference, sql_string

# Result keys that would carry personal values into Data Docs: stripped before rendering.
_PERSONAL_RESULT_KEYS = (
    "unexpected_list", "partial_unexpected_list", "unexpected_index_list", "partial_unexpected_index_list",
    "partial_unexpected_counts", "unexpected_index_query", "unexpected_rows",
)


# the common rules on entitlement months, which a one-off case does not have (NOT_APPLICABLE)
_ENROLMENT_RULE_COLUMNS = {"enrolled_from", "enrolled_to", "month_unparsed"}


def load_suite_dicts(program: str) -> list[dict]:
    """Expectation configurations of a program's suite: the common rules then the program's own."""
    from pipelines.vocabulary import NOT_APPLICABLE

    out = []
    for name in ("roster_common", f"roster_{program}"):
        with open(EXPECTATIONS_DIR / f"{name}.json", encoding="utf-8") as fh:
            out.extend(json.load(fh)["expectations"])
    if NOT_APPLICABLE.get(program):
        out = [e for e in out if not _ENROLMENT_RULE_COLUMNS & {v for k, v in e["kwargs"].items()
                                                              if k in ("column", "column_A", "column_B")}]
    return out


def validate_program(ctx: RunContext, program: str, city: str | None = None) -> dict:
    """Validate one program's delivered rows; with `city`, only the rows of files from that city's
    counties (a partition of the DAG, see pipelines/partitions.py). A partition writes under
    `_work/validate/partitions/<city>/`, and `combine_validation` joins the partitions into the
    same files the whole-program run writes."""
    ingest_path = artefacts.ingested_rows(ctx, program)
    if not ingest_path.exists():
        raise RunError(f"ingest output missing for {program}: run the ingest stage first ({ingest_path})")
    con = connect(ctx)
    suite, parameters = stage_judged_rows(con, ctx, program, city)
    failures_sql, result = judge(con, program, suite, parameters)
    con.execute("CREATE TABLE gx_failures (row_key BIGINT, reason_code VARCHAR)")
    if failures_sql:
        con.execute(f"INSERT INTO gx_failures {failures_sql}")
    run_models(con, ["int_roster_validated"])  # reads only stg_roster and gx_failures

    delivered = con.execute("SELECT count(*) FROM raw_roster").fetchone()[0]
    counts = dict(con.execute("SELECT disposition, count(*) FROM int_roster_validated GROUP BY 1").fetchall())
    if sum(counts.values()) != delivered:
        raise RunError(f"{program}: {delivered} rows delivered but {sum(counts.values())} judged: books do not balance")

    ensure_dir(validate_dir(ctx, city))
    out_path = artefacts.validated_rows(ctx, program, city)
    checkpoint("validate.before_write")
    copy_to_parquet(con, "SELECT * FROM int_roster_validated ORDER BY source_file, source_row", out_path)
    # the failing rows are read; from here the result keeps counts only, no personal values
    _strip_personal_values(result)
    summary = result.to_json_dict() if result is not None else {"success": True, "results": []}
    write_bytes_atomic(artefacts.validation_summary(ctx, program, city),
                       (json.dumps(summary, ensure_ascii=False, indent=1, default=str) + "\n").encode("utf-8"))
    docs = write_data_docs(ctx, program, result, city)
    con.close()
    return {
        "program": program,
        "city": city or "",
        "validated_path": str(out_path),
        "rows": int(delivered),
        "by_disposition": {k: int(v) for k, v in sorted(counts.items())},
        "gx_success": bool(result.success) if result is not None else True,
        "data_docs": str(docs) if docs else "",
    }


def stage_judged_rows(con, ctx: RunContext, program: str, city: str | None = None) -> tuple[list[dict], dict]:
    """Normalise the program's delivered rows (or one city's) into table `gx_frame`, the rows in play
    with the columns the suite reads; return the suite and its run parameters."""
    ingest_path = artefacts.ingested_rows(ctx, program)
    register_reference(con, ctx.reference)
    # the roster's grain beyond the person: a disability row is one person *and subsidy*
    # and a temporary-assistance row one case (its approval number)
    grain_extra = {"disability": "norm_text(subsidy_type)", "temporary": "norm_code(approval_no)"}.get(
        program, "NULL::VARCHAR")
    # row keys are numbered over the whole delivery before a partition is cut out of it
    in_partition = "true"
    if city is not None and city != WHOLE_MONTH:
        files = artefacts.ingested_files(ctx, program)
        in_partition = (f"source_file IN (SELECT source_file FROM read_parquet('{sql_string(str(files))}') "
                        f"WHERE {file_city_sql('county')} = '{sql_string(city)}')")
    con.execute(f"CREATE VIEW raw_roster_keyed AS SELECT * FROM (SELECT *, {grain_extra} AS grain_extra, "
                f"row_number() OVER (ORDER BY source_file, source_row) AS row_key "
                f"FROM read_parquet('{sql_string(str(ingest_path))}')) WHERE {in_partition}")
    con.execute("CREATE VIEW raw_roster AS SELECT * EXCLUDE (row_key) FROM raw_roster_keyed")
    con.execute("CREATE VIEW raw_roster_keys AS SELECT source_file, source_row, row_key FROM raw_roster_keyed")
    disability = artefacts.ingested_rows(ctx, "disability")
    if program == "tekun" and disability.exists():
        # every city's disability roster: a tekun person's disability row may be in another city
        con.execute("CREATE TABLE disability_roster_ids AS SELECT DISTINCT norm_code(id_number) AS id_number "
                    f"FROM read_parquet('{sql_string(str(disability))}') WHERE file_status = 'loaded'")
    else:
        con.execute("CREATE TABLE disability_roster_ids (id_number VARCHAR)")
    # the program's staging model and what it reads; stg_regions: the counties the suite accepts
    run_models(con, ["stg_regions", f"stg_{program}"])
    household = "household_id" if program == "dibao" else "NULL::VARCHAR"
    con.execute(f"CREATE VIEW stg_roster AS SELECT *, {household} AS household_key FROM stg_{program}")

    county_codes = [r[0] for r in con.execute("SELECT region_code FROM stg_regions ORDER BY 1").fetchall()]
    if not county_codes:
        raise RunError(f"regions.csv lists no county of province {ctx.settings.province_code}")
    suite = load_suite_dicts(program)
    columns = sorted({"row_key"} | {v for e in suite for k, v in e["kwargs"].items()
                                    if k in ("column", "column_A", "column_B")} | _condition_columns(suite))
    con.execute(f"CREATE TABLE gx_frame AS SELECT {', '.join(columns)} FROM stg_roster "
                "WHERE in_play AND same_file_duplicate_of_row IS NULL")
    return suite, {"county_codes": county_codes}


def judge(con, program: str, suite: list[dict], parameters: dict) -> tuple[str | None, object]:
    """Evaluate the suite on `gx_frame` in DuckDB (pipelines/expectations_sql.py): the SELECT of the
    failing (row_key, reason_code) pairs, None when every row passes, and the result as GX's object
    for its Data Docs (None when no row is in play)."""
    if con.execute("SELECT count(*) FROM gx_frame").fetchone()[0] == 0:
        return None, None
    outcomes = evaluate(con, "gx_frame", suite, parameters)
    rows = unexpected_rows_sql("gx_frame", outcomes, ["row_key"])
    codes = ", ".join(literal(e["meta"]["reason_code"]) for e in suite)
    failures = None if rows is None else f"SELECT row_key, [{codes}][rule + 1] AS reason_code FROM ({rows})"
    return failures, gx_result(f"roster_{program}", outcomes, f"roster_{program}")


def _condition_columns(suite: list[dict]) -> set[str]:
    """Columns named by the suite's row conditions (GX condition objects, serialised as dicts)."""
    return {e["kwargs"]["row_condition"]["column"]["name"] for e in suite if e["kwargs"].get("row_condition")}


def _strip_personal_values(result) -> None:
    if result is None:
        return
    # the frame's MD5 fingerprint is hex: now and then it holds a run of 12+ digits that any scan for
    # account numbers flags in a report (it did, in a test); it tells a caseworker nothing
    markers = (result.meta or {}).get("batch_markers")
    if isinstance(markers, dict):
        markers.pop("pandas_data_fingerprint", None)
    for r in result.results:
        for key in _PERSONAL_RESULT_KEYS:
            r.result.pop(key, None)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _number_collapse_ids(html: str) -> str:
    """GX's page template names each collapsible block with a fresh uuid4. Its last group is 12 hex
    digits, all of them decimal now and then, which the report scan rightly takes for an account
    number (CI failed on one); it also makes the page differ on every render. Number them instead."""
    numbers: dict[str, int] = {}
    return _UUID.sub(lambda m: f"block{numbers.setdefault(m.group(0), len(numbers) + 1)}", html)


@functools.cache
def _data_docs_renderer():
    """GX's page renderer and view, once per process: a new view compiles its Jinja templates again
    (0.3 s of every page)."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    return ValidationResultsPageRenderer(), DefaultJinjaPageView()


def write_data_docs(ctx: RunContext, program: str, result, city: str | None = None) -> Path | None:
    """GX Data Docs for the program's roster (or one city's part of it): static HTML of a result
    already stripped of personal values (counts only), made to render offline
    (pipelines/data_docs_offline.py)."""
    if result is None:
        return None
    renderer, view = _data_docs_renderer()
    where = f"，{city}" if city else ""
    html = make_offline(_number_collapse_ids(view.render(renderer.render(result))),
                        f"{ctx.month} roster_{program}{where}：Great Expectations 校验结果（数据组用）",
                        "列名为内部字段名。县区经办人员请看 reports/validation/ 下本县区的中文页面。")
    path = data_docs_path(ctx, program, city)
    with atomic_path(path) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return path


# ---- the month cut by city (the DAG's partitions, pipelines/partitions.py)

def validate_partition(ctx: RunContext, city: str) -> dict:
    """Validate every program's rows from one city's files."""
    return {"city": city, "programs": [validate_program(ctx, program, city) for program in roster_programs(ctx)]}


def combine_validation(ctx: RunContext, cities: list[str]) -> dict:
    """Join the cities' validation outputs into the files the whole-program run writes, check that
    every delivered row was judged exactly once, and write the Data Docs index page per program."""
    con = connect(ctx)
    ensure_dir(validate_dir(ctx))
    results = {}
    for program in roster_programs(ctx):
        parts = [artefacts.validated_rows(ctx, program, c) for c in cities]
        missing = [str(p) for p in parts if not p.exists()]
        if missing:
            raise RunError(f"validation partitions missing for {program}: " + ", ".join(missing))
        sources = ", ".join(f"'{sql_string(str(p))}'" for p in parts)
        ingest = artefacts.ingested_rows(ctx, program)
        delivered = con.execute(f"SELECT count(*) FROM read_parquet('{sql_string(str(ingest))}')").fetchone()[0]
        judged, distinct = con.execute(
            f"SELECT count(*), count(DISTINCT (source_file, source_row)) FROM read_parquet([{sources}])"
        ).fetchone()
        if not delivered == judged == distinct:
            raise RunError(f"{program}: {delivered} rows delivered, {judged} judged across {len(cities)} city "
                           f"partitions ({distinct} distinct): books do not balance")
        checkpoint("validate.before_write")
        copy_to_parquet(con, f"SELECT * FROM read_parquet([{sources}], union_by_name = true) "
                             "ORDER BY source_file, source_row", artefacts.validated_rows(ctx, program))
        summaries = {}
        for c in cities:
            gx = artefacts.validation_summary(ctx, program, c)
            summaries[c] = json.loads(gx.read_text(encoding="utf-8")) if gx.exists() else None
        write_bytes_atomic(artefacts.validation_summary(ctx, program), (json.dumps(
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
