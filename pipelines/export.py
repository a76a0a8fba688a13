"""`doudi export --month M`: the analyst tables as Parquet, readable by any engine (issue 7).

Facts are written under `<root>/<table>/payroll_month=M/region_code=C/` (Hive partitioning; a
re-export of a month replaces that month's partitions, other months stay); dimensions and policy
tables, which are not by month, as one file each under `<root>/<table>/<table>.parquet`. The source
is the analyst database, so the files carry no ID number, name or account.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipelines.analyst import ANALYST_TABLES
from pipelines.io import ensure_dir
from pipelines.settings import RunContext, RunError
from pipelines.sqlrun import sql_string

FACTS = ("a_fact_payment", "a_fact_enrolment", "a_fact_finding")


def export_month(ctx: RunContext, output: str | None = None) -> dict:
    import duckdb

    from pipelines.sqlrun import apply_resource_limits

    if not ctx.analyst_db.exists():
        raise RunError(f"no analyst database at {ctx.analyst_db}: publish a month first (doudi run)")
    root = ensure_dir(Path(output) if output else ctx.out / "export")
    con = duckdb.connect(str(ctx.analyst_db), read_only=True)
    try:
        apply_resource_limits(con, ctx)
        months = {r[0] for r in con.execute("SELECT DISTINCT payroll_month FROM a_fact_payment").fetchall()}
        if ctx.month not in months:
            raise RunError(f"{ctx.month} is not in the analyst database (months: {', '.join(sorted(months))})")
        for table in ANALYST_TABLES:
            target = root / table
            if table in FACTS:
                shutil.rmtree(target / f"payroll_month={ctx.month}", ignore_errors=True)
                ensure_dir(target)
                con.execute(f"COPY (SELECT * FROM {table} WHERE payroll_month = ? ORDER BY ALL) "
                            f"TO '{sql_string(str(target))}' (FORMAT parquet, "
                            "PARTITION_BY (payroll_month, region_code), OVERWRITE_OR_IGNORE, "
                            "FILENAME_PATTERN 'part_{i}')", [ctx.month])
            else:
                ensure_dir(target)
                con.execute(f"COPY (SELECT * FROM {table} ORDER BY ALL) TO "
                            f"'{sql_string(str(target / (table + '.parquet')))}' (FORMAT parquet)")
    finally:
        con.close()
    return {"root": str(root), "tables": len(ANALYST_TABLES)}
