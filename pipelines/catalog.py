"""What a DuckDB connection holds, and quoting: the few helpers every module that writes SQL needs,
below pipelines/sqlrun.py (which connects and runs models) and pipelines/warehouse_months.py."""

from __future__ import annotations


def sql_string(value: str) -> str:
    """A value to put between single quotes in SQL (paths in COPY, ATTACH and read_parquet)."""
    return value.replace("'", "''")


def ident(name) -> str:
    """A name as an SQL identifier whatever its characters (a suite's column, a database named after
    its file)."""
    return '"' + str(name).replace('"', '""') + '"'


def tables_in(con, database: str | None = None) -> set[str]:
    """Names of the tables and views in an attached database (`wh`), or in the connection's own (the
    warehouse's month tables are views over their files, pipelines/warehouse_months.py)."""
    if database is None:
        database = con.execute("SELECT current_database()").fetchall()[0][0]
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = $1 UNION "
                                      "SELECT view_name FROM duckdb_views() WHERE database_name = $1 "
                                      "AND NOT internal", [database]).fetchall()}


def base_tables(con) -> set[str]:
    """Names of the tables (not views) in the connection's own database."""
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = "
                                      "current_database() AND schema_name = 'main'").fetchall()}


def lock_holder(error_text: str) -> str:
    """Who holds a DuckDB file, from the error DuckDB raises when it cannot take the file's lock."""
    if "Conflicting lock is held in" not in error_text:
        return "another process"
    return error_text.split("Conflicting lock is held in", 1)[1].split(".", 1)[0].strip()
