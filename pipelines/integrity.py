"""Stage 3, integrity: decisions that need all four rosters of the month at once.

Duplicates across counties, exclusive programs (reference exclusions.csv), the disability living
subsidy only for dibao household members, the death registry, accounts not held by the person the
contract says is paid, accounts shared by unrelated payees, one ID under two names. Each rule is a
model under sql/intermediate/; together they set, on every row, its final disposition and what
the payment engine must do with it (not paid, held, member excluded, no price subsidy), and they
write the month's integrity findings.

Writes `_work/integrity/roster.parquet` (every delivered row) and `_work/integrity/findings.parquet`.
"""

from __future__ import annotations

from pipelines.io import ensure_dir
from pipelines.settings import PROGRAMS, RunContext, RunError
from pipelines.sqlrun import connect, copy_to_parquet, register_reference, run_model, sql_string

INTEGRITY_MODELS = (
    "int_roster_all",
    "int_cross_county_duplicates",
    "int_person_programs",
    "int_exclusions",
    "int_deaths",
    "int_roster_final",
    "int_integrity_findings",
)


def check_integrity(ctx: RunContext) -> dict:
    paths = [ctx.work_dir / "validate" / f"{p}.parquet" for p in PROGRAMS]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise RunError("validation output missing, run the validate stage first: " + ", ".join(missing))
    con = connect(ctx)
    register_reference(con, ctx.reference)
    run_model(con, "staging/stg_exclusions.sql")
    files = ", ".join(f"'{sql_string(str(p))}'" for p in paths)
    con.execute(f"CREATE VIEW validated_rows AS SELECT * FROM read_parquet([{files}], union_by_name = true)")
    _register_deaths(ctx, con)
    for model in INTEGRITY_MODELS:
        run_model(con, f"intermediate/{model}.sql")
    delivered = con.execute("SELECT count(*) FROM validated_rows").fetchone()[0]
    final = con.execute("SELECT count(*) FROM int_roster_final").fetchone()[0]
    if final != delivered:
        raise RunError(f"integrity: {delivered} rows in, {final} rows out: books do not balance")
    out = ensure_dir(ctx.work_dir / "integrity")
    copy_to_parquet(con, "SELECT * FROM int_roster_final ORDER BY program, source_file, source_row",
                    out / "roster.parquet")
    copy_to_parquet(con, "SELECT * FROM int_integrity_findings ORDER BY finding_type, source_file, source_row",
                    out / "findings.parquet")
    by_disposition = dict(con.execute("SELECT disposition, count(*) FROM int_roster_final GROUP BY 1").fetchall())
    by_finding = dict(con.execute("SELECT finding_type, count(*) FROM int_integrity_findings GROUP BY 1").fetchall())
    con.close()
    return {
        "roster_path": str(out / "roster.parquet"),
        "findings_path": str(out / "findings.parquet"),
        "rows": int(delivered),
        "by_disposition": {k: int(v) for k, v in sorted(by_disposition.items())},
        "findings": {k: int(v) for k, v in sorted(by_finding.items())},
    }


def _register_deaths(ctx: RunContext, con) -> None:
    """The month's death-registry extract (contract section 3), or an empty one where absent."""
    from pipelines.io import inbox_path

    path = inbox_path(ctx.inbox) / ctx.month / "registry" / "deaths.csv"
    con.execute("CREATE TABLE raw_deaths (id_number VARCHAR, name VARCHAR, death_date VARCHAR, source VARCHAR)")
    if not path.exists():
        return
    import csv
    import io

    from pipelines.ingest import FileRejected, decode_text

    try:
        text, _ = decode_text(path.read_bytes())
    except FileRejected as exc:
        raise RunError(f"registry/deaths.csv cannot be read: {exc.detail}") from exc
    reader = csv.DictReader(io.StringIO(text))
    need = {"id_number", "death_date"}
    if not need <= set(reader.fieldnames or []):
        raise RunError(f"registry/deaths.csv needs columns {sorted(need)}, has {reader.fieldnames}")
    rows = [(r.get("id_number"), r.get("name"), r.get("death_date"), r.get("source")) for r in reader]
    if rows:
        con.executemany("INSERT INTO raw_deaths VALUES (?, ?, ?, ?)", rows)
