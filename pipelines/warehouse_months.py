"""The warehouse's month tables as Parquet files, one per table and payroll month (issue 22).

Publishing a month used to copy its rows into DuckDB tables inside one transaction (delete the month,
insert it again, 3.5 million ledger lines at 2.6M roster rows), and compute read the ledger history
back out of those tables. Now:

- publish writes each month table's rows for the month as one Parquet file beside the warehouse,
  `<warehouse>_months/<table>/<YYYY-MM>-<sha256 prefix>.parquet`, owner-only, before its transaction;
- the transaction records which file is the month's (`warehouse_file`) and redefines the table as
  a view over its files: a constant amount of writing, however many months the warehouse holds;
- a rerun of a month writes its files again (the same name when the rows are the same) and the
  transaction points the view at them; files no committed view names are removed afterwards. A crash
  before the commit leaves the views on the files they named, and the new files unnamed (removed by
  the next publish);
- compute's ledger history (`hist_ledger`) is read through the same view, from the same files.

`payment_ledger.payment_state` is not stored: the view derives it from the bank's answers
(`bank_return_answer`, pipelines/bank_returns.py), as the UPDATE after each return load used to.

The views name the files by absolute path. Keep the warehouse file and its `_months` folder together:
a warehouse moved or restored with its folder is pointed at it again the next time doudi opens it
(`repoint_views`, `point_views_here`); `doudi verify` names a month file missing beside the warehouse.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from pipelines.catalog import base_tables, lock_holder, sql_string
from pipelines.io import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, ensure_dir, sha256_file
from pipelines.settings import PSEUDONYM_KEY_NAME, RunError

# what publish writes per month; the order the files are written in (the ledger first: the largest)
MONTH_TABLES = ("payment_ledger", "row_disposition", "finding", "roster_row", "source_file",
                "payout_record", "payout_file", "registry_entry", "receivable")
# rows in a file are sorted, so that the same rows make the same file (and the same name)
SORT_KEYS = {"payment_ledger": "line_id", "row_disposition": "source_file, source_row",
             "roster_row": "source_file, source_row", "finding": "finding_id", "source_file": "source_file",
             "payout_record": "payment_ref", "payout_file": "name"}
REGISTRY_COLUMNS = ("table_name VARCHAR, payroll_month VARCHAR, file_name VARCHAR, sha256 VARCHAR, "
                    "row_count BIGINT")
# the payment state a payable line has: the bank's latest answer in effect for its ref, else sent
PAYMENT_STATE = ("CASE WHEN l.status = 'payable' THEN coalesce(CASE WHEN a.answer IN ('paid', 'failed') "
                 "THEN a.answer END, 'sent') ELSE l.payment_state END")


def months_dir(warehouse: Path) -> Path:
    """The folder of the warehouse's month files: `var/warehouse.duckdb` -> `var/warehouse_months/`."""
    warehouse = Path(warehouse)
    return warehouse.with_name(f"{warehouse.stem}_months")


def write_month_file(con, warehouse: Path, table: str, month: str, select_sql: str) -> tuple[str, str, int]:
    """`select_sql`'s rows, sorted, as the month's file of `table`: (file name, sha256, rows).
    Written under a temporary name and renamed: a file under its final name is always whole."""
    folder = ensure_dir(months_dir(warehouse) / table)
    os.chmod(folder, PRIVATE_DIR_MODE)
    os.chmod(folder.parent, PRIVATE_DIR_MODE)
    tmp = folder / f".{month}.tmp-{os.getpid()}.parquet"
    order = SORT_KEYS.get(table, "ALL")
    try:
        rows = con.execute(f"COPY (SELECT * FROM ({select_sql}) ORDER BY {order}) TO '{sql_string(str(tmp))}' "
                           "(FORMAT parquet, COMPRESSION zstd)").fetchone()[0]
        os.chmod(tmp, PRIVATE_FILE_MODE)
        digest = sha256_file(tmp)
        name = f"{month}-{digest[:16]}.parquet"
        os.replace(tmp, folder / name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return name, digest, int(rows)


def register_month(con, month: str, files: dict[str, tuple[str, str, int]]) -> None:
    """Inside the publish transaction: these files are the month's, for every table written."""
    con.execute(f"CREATE TABLE IF NOT EXISTS warehouse_file ({REGISTRY_COLUMNS})")
    con.execute("DELETE FROM warehouse_file WHERE payroll_month = ? AND table_name IN ("
                + ", ".join("?" for _ in files) + ")", [month, *files])
    con.executemany("INSERT INTO warehouse_file VALUES (?, ?, ?, ?, ?)",
                    [(table, month, name, digest, rows) for table, (name, digest, rows) in files.items()])


def define_views(con, warehouse: Path, tables=MONTH_TABLES) -> None:
    """Each month table as a view over the files `warehouse_file` names (columns by name: a month
    written before a column existed reads it as NULL)."""
    folder = months_dir(warehouse)
    for table in tables:
        names = [r[0] for r in con.execute("SELECT file_name FROM warehouse_file WHERE table_name = ? "
                                           "ORDER BY payroll_month", [table]).fetchall()]
        if not names:
            continue
        files = ", ".join(f"'{sql_string(str(folder / table / n))}'" for n in names)
        source = f"read_parquet([{files}], union_by_name = true)"
        if table == "payment_ledger":
            con.execute("CREATE TABLE IF NOT EXISTS bank_return_answer (payment_ref VARCHAR, received_month VARCHAR, "
                        "load_id BIGINT, source_file VARCHAR, answer VARCHAR, source_rows VARCHAR)")
            # the answers' table exists before any return is loaded (bank_returns replaces it on each load)
            con.execute(f"CREATE OR REPLACE VIEW payment_ledger AS SELECT l.* REPLACE ({PAYMENT_STATE} AS "
                        f"payment_state) FROM {source} l "
                        "LEFT JOIN bank_return_answer a ON a.payment_ref = l.payment_ref")
        else:
            con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM {source}")


def copy_warehouse(source: Path, target: Path) -> None:
    """A copy of a warehouse that works on its own: the file, its `_months` folder and the analysts'
    pseudonym key beside it (default place; not over a key already there), owner-only. The copy's
    views are pointed at its own folder the first time doudi opens it."""
    import shutil

    source, target = Path(source), Path(target)
    shutil.copy2(source, target)
    if months_dir(source).is_dir():
        shutil.copytree(months_dir(source), months_dir(target), dirs_exist_ok=True)
    key = source.with_name(PSEUDONYM_KEY_NAME)
    if key.exists() and not target.with_name(PSEUDONYM_KEY_NAME).exists():
        shutil.copy2(key, target.with_name(PSEUDONYM_KEY_NAME))


def views_elsewhere(con, warehouse: Path, database: str | None = None) -> list[str]:
    """The month tables whose views name files in another folder than the one beside `warehouse`
    (a warehouse copied, moved or restored from a backup with its `_months` folder)."""
    database = database or con.execute("SELECT current_database()").fetchone()[0]
    here = "'" + sql_string(str(months_dir(warehouse))) + "/"
    return [name for name, sql in con.execute(
        "SELECT view_name, sql FROM duckdb_views() WHERE database_name = ? AND NOT internal", [database]
    ).fetchall() if name in MONTH_TABLES and here not in sql]


def repoint_views(con, warehouse: Path) -> bool:
    """On a read-write connection: views naming files elsewhere are defined again over the folder
    beside the warehouse, which must hold every file `warehouse_file` names. Whether they were."""
    if not views_elsewhere(con, warehouse):
        return False
    missing = [f"{t}/{n}" for t, n in con.execute("SELECT table_name, file_name FROM warehouse_file ORDER BY ALL")
               .fetchall() if not (months_dir(warehouse) / t / n).exists()]
    if missing:
        raise RunError(f"the warehouse {warehouse} was copied or moved without its month files: it names "
                       f"{len(missing)} month files not found in {months_dir(warehouse)} (such as {missing[0]}); "
                       "copy the _months folder from the same place or backup as the warehouse file, then rerun")
    define_views(con, warehouse)
    return True


def point_views_here(warehouse: Path) -> None:
    """Before a read-only open of a copied or moved warehouse: its views pointed at its own folder,
    through a short read-write connection."""
    import duckdb

    try:
        con = duckdb.connect(str(warehouse))
    except duckdb.IOException as exc:
        holder = lock_holder(str(exc))
        raise RunError(f"the warehouse {warehouse} was copied or moved and its month tables still read the files "
                       f"where it was; it could not be pointed at its own _months folder because it is held open by "
                       f"{holder}: close that program or connection, then rerun") from exc
    try:
        repoint_views(con, warehouse)
    finally:
        con.close()


def migrate_tables(con, warehouse: Path) -> list[str]:
    """A warehouse written before the month files holds its month tables as tables: each month's rows
    become that month's file and the table a view, in one transaction. The tables it moved."""
    old = [t for t in MONTH_TABLES if t in base_tables(con)]
    if not old:
        return []
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS warehouse_file ({REGISTRY_COLUMNS})")
        for table in old:
            months = [r[0] for r in con.execute(f"SELECT DISTINCT payroll_month FROM {table} ORDER BY 1").fetchall()]
            for month in months:
                file = write_month_file(con, warehouse, table, month,
                                        f"SELECT * FROM {table} WHERE payroll_month = '{sql_string(month)}'")
                register_month(con, month, {table: file})
            con.execute(f"DROP TABLE {table}")
        define_views(con, warehouse, old)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return old


def remove_unnamed_files(con, warehouse: Path) -> int:
    """After a commit (or a rollback): every file in the months folder no committed view names, such
    as a month's files replaced by a rerun, or those a failed publish wrote. The number removed."""
    folder = months_dir(warehouse)
    if not folder.is_dir():
        return 0
    named = {(t, n) for t, n in con.execute("SELECT table_name, file_name FROM warehouse_file").fetchall()} \
        if "warehouse_file" in base_tables(con) else set()
    removed = 0
    for table_dir in folder.iterdir():
        if not table_dir.is_dir():
            continue
        for path in table_dir.iterdir():
            if (table_dir.name, path.name) not in named:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
    return removed


def changed_month_files(con, warehouse: Path, month: str, database: str = "wh") -> list[str]:
    """The month's files the warehouse names that are missing or whose bytes are not the ones
    published (their SHA-256 in `warehouse_file`): for `doudi verify`. A warehouse from before the
    month files names none."""
    known = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = "
                        "'warehouse_file'", [database]).fetchone()[0]
    if not known:
        return []
    problems = []
    for table, name, digest in con.execute(f"SELECT table_name, file_name, sha256 FROM {database}.warehouse_file "
                                           "WHERE payroll_month = ? ORDER BY 1", [month]).fetchall():
        path = months_dir(warehouse) / table / name
        if not path.exists():
            problems.append(f"{table}/{name} is missing")
        elif sha256_file(path) != digest:
            problems.append(f"{table}/{name} has changed since it was published")
    return problems
