"""Stage 2, validate: normalise one program's rows and judge them with its Great Expectations suite.

Normalisation is SQL (sql/staging/stg_roster_base.sql and stg_<program>.sql); judgement is the GX
suite `expectations/roster_common.json` + `expectations/roster_<program>.json`, run on a pandas
frame of the rows in play. Each expectation carries the reason code its unexpected rows receive.
The disposition of every row (accepted / quarantined / duplicate) is then decided in SQL
(sql/intermediate/int_roster_validated.sql), and the books are checked: rows out == rows in.

Writes `_work/validate/<program>.parquet`, `_work/validate/<program>.gx.json` (the validation
result without personal data) and `reports/data_docs/<program>.html` (GX Data Docs).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pipelines.faults import checkpoint
from pipelines.io import atomic_path, ensure_dir, write_bytes_atomic
from pipelines.settings import EXPECTATIONS_DIR, RunContext, RunError
from pipelines.sqlrun import connect, copy_to_parquet, register_reference, run_model, sql_string

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
    from pipelines.partitions import file_city_sql

    ingest_path = ctx.work_dir / "ingest" / f"{program}.parquet"
    if not ingest_path.exists():
        raise RunError(f"ingest output missing for {program}: run the ingest stage first ({ingest_path})")
    con = connect(ctx)
    register_reference(con, ctx.reference)
    for model in ("stg_regions", "stg_banks", "stg_policy_parameters"):
        run_model(con, f"staging/{model}.sql")
    # the roster's grain beyond the person: a disability row is one person *and subsidy*
    # and a temporary-assistance row one case (its approval number)
    grain_extra = {"disability": "norm_text(subsidy_type)", "temporary": "norm_code(approval_no)"}.get(
        program, "NULL::VARCHAR")
    # row keys are numbered over the whole delivery before a partition is cut out of it
    in_partition = "true"
    if city is not None:
        files = ctx.work_dir / "ingest" / f"{program}.files.parquet"
        in_partition = (f"source_file IN (SELECT source_file FROM read_parquet('{sql_string(str(files))}') "
                        f"WHERE {file_city_sql('county')} = '{sql_string(city)}')")
    con.execute(f"CREATE VIEW raw_roster_keyed AS SELECT * FROM (SELECT *, {grain_extra} AS grain_extra, "
                f"row_number() OVER (ORDER BY source_file, source_row) AS row_key "
                f"FROM read_parquet('{sql_string(str(ingest_path))}')) WHERE {in_partition}")
    con.execute("CREATE VIEW raw_roster AS SELECT * EXCLUDE (row_key) FROM raw_roster_keyed")
    con.execute("CREATE VIEW raw_roster_keys AS SELECT source_file, source_row, row_key FROM raw_roster_keyed")
    disability = ctx.work_dir / "ingest" / "disability.parquet"
    if program == "tekun" and disability.exists():
        # every city's disability roster: a tekun person's disability row may be in another city
        con.execute("CREATE TABLE disability_roster_ids AS SELECT DISTINCT norm_code(id_number) AS id_number "
                    f"FROM read_parquet('{sql_string(str(disability))}') WHERE file_status = 'loaded'")
    else:
        con.execute("CREATE TABLE disability_roster_ids (id_number VARCHAR)")
    run_model(con, "staging/stg_roster_base.sql")
    run_model(con, f"staging/stg_{program}.sql")
    household = "household_id" if program == "dibao" else "NULL::VARCHAR"
    con.execute(f"CREATE VIEW stg_roster AS SELECT *, {household} AS household_key FROM stg_{program}")

    county_codes = [r[0] for r in con.execute("SELECT region_code FROM stg_regions ORDER BY 1").fetchall()]
    if not county_codes:
        raise RunError(f"regions.csv lists no county of province {ctx.settings.province_code}")
    suite = load_suite_dicts(program)
    columns = sorted({"row_key"} | {v for e in suite for k, v in e["kwargs"].items()
                                    if k in ("column", "column_A", "column_B")} | _condition_columns(suite))
    frame = con.execute(
        f"SELECT {', '.join(columns)} FROM stg_roster WHERE in_play AND same_file_duplicate_of_row IS NULL"
    ).df()
    failures, result = run_gx(program, frame, suite, {"county_codes": county_codes})
    con.execute("CREATE TABLE gx_failures (row_key BIGINT, reason_code VARCHAR)")
    if failures:
        con.executemany("INSERT INTO gx_failures VALUES (?, ?)", failures)
    run_model(con, "intermediate/int_roster_validated.sql")

    delivered = con.execute("SELECT count(*) FROM raw_roster").fetchone()[0]
    counts = dict(con.execute("SELECT disposition, count(*) FROM int_roster_validated GROUP BY 1").fetchall())
    if sum(counts.values()) != delivered:
        raise RunError(f"{program}: {delivered} rows delivered but {sum(counts.values())} judged: books do not balance")

    out_dir = ensure_dir(validate_dir(ctx, city))
    out_path = out_dir / f"{program}.parquet"
    checkpoint("validate.before_write")
    copy_to_parquet(con, "SELECT * FROM int_roster_validated ORDER BY source_file, source_row", out_path)
    # the failing rows are read; from here the result keeps counts only, no personal values
    _strip_personal_values(result)
    summary = result.to_json_dict() if result is not None else {"success": True, "results": []}
    write_bytes_atomic(out_dir / f"{program}.gx.json",
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


def _condition_columns(suite: list[dict]) -> set[str]:
    """Columns named by the suite's row conditions (GX condition objects, serialised as dicts)."""
    return {e["kwargs"]["row_condition"]["column"]["name"] for e in suite if e["kwargs"].get("row_condition")}


def run_gx(program: str, frame, suite_dicts: list[dict], parameters: dict):
    """Validate a frame with the suite; return ([(row_key, reason_code)], validation result)."""
    from pipelines.gxrun import validate_frame

    if frame.empty:
        return [], None
    result = validate_frame(
        f"roster_{program}", frame, suite_dicts, parameters,
        {"result_format": "COMPLETE", "unexpected_index_column_names": ["row_key"],
         "partial_unexpected_count": 0, "return_unexpected_index_query": False},
    )
    failures: list[tuple[int, str]] = []
    for r in result.results:
        if r.success:
            continue
        code = r.expectation_config.meta["reason_code"]
        for item in r.result.get("unexpected_index_list") or []:
            failures.append((int(item["row_key"]), code))
    return failures, result


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


def validate_dir(ctx: RunContext, city: str | None = None) -> Path:
    """Where validation writes: `_work/validate/`, or a city partition's folder under it."""
    base = ctx.work_dir / "validate"
    return base if city is None else base / "partitions" / city


def data_docs_path(ctx: RunContext, program: str, city: str | None = None) -> Path:
    docs = ctx.reports_dir / "data_docs"
    return docs / f"{program}.html" if city is None else docs / program / f"{city}.html"


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _number_collapse_ids(html: str) -> str:
    """GX's page template names each collapsible block with a fresh uuid4. Its last group is 12 hex
    digits, all of them decimal now and then, which the report scan rightly takes for an account
    number (CI failed on one); it also makes the page differ on every render. Number them instead."""
    numbers: dict[str, int] = {}
    return _UUID.sub(lambda m: f"block{numbers.setdefault(m.group(0), len(numbers) + 1)}", html)


def write_data_docs(ctx: RunContext, program: str, result, city: str | None = None) -> Path | None:
    """GX Data Docs for the program's roster (or one city's part of it): static HTML of a result
    already stripped of personal values (counts only)."""
    if result is None:
        return None
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    html = _number_collapse_ids(DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result)))
    path = data_docs_path(ctx, program, city)
    with atomic_path(path) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return path
