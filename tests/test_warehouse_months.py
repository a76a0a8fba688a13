"""The warehouse's month tables as month files (issue 22, pipelines/warehouse_months.py): publish
appends the month's Parquet and names it in a transaction that writes the same small amount whatever
the history; a rerun replaces the month's files; an older warehouse is moved to files once; compute's
ledger history is read from the same files; a payable line's payment state follows the bank."""

from __future__ import annotations

import shutil
import stat
from decimal import Decimal as D
from pathlib import Path

import duckdb
import pytest

from pipelines.warehouse_months import (
    MONTH_TABLES,
    define_views,
    migrate_tables,
    months_dir,
    register_month,
    remove_unnamed_files,
    write_month_file,
)
from tests.helpers import context, query

LEDGER = ("SELECT '{m}' AS payroll_month, 'L' || i AS line_id, 'R' || i AS payment_ref, "
          "CASE WHEN i = 3 THEN 'held' ELSE 'payable' END AS status, "
          "CASE WHEN i = 3 THEN NULL ELSE 'sent' END AS payment_state, (i * 100.25)::DECIMAL(18, 2) AS amount "
          "FROM range(1, 4) t(i)")


def _publish(con, wh: Path, month: str, sql: str) -> dict:
    files = {"payment_ledger": write_month_file(con, wh, "payment_ledger", month, sql)}
    con.execute("BEGIN TRANSACTION")
    register_month(con, month, files)
    define_views(con, wh)
    con.execute("COMMIT")
    remove_unnamed_files(con, wh)
    return files


@pytest.mark.unit
def test_month_files_are_whole_owner_only_named_by_their_rows_and_replaced_by_a_rerun(tmp_path):
    wh = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(wh))
    first = _publish(con, wh, "2020-01", LEDGER.format(m="2020-01"))
    again = _publish(con, wh, "2020-01", LEDGER.format(m="2020-01"))
    assert again == first  # the same rows, the same file (sorted, so the row order never matters)
    folder = months_dir(wh) / "payment_ledger"
    assert [p.name for p in folder.iterdir()] == [first["payment_ledger"][0]]
    assert stat.S_IMODE((folder / first["payment_ledger"][0]).stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE(months_dir(wh).stat().st_mode) == 0o700
    _publish(con, wh, "2020-02", LEDGER.format(m="2020-02"))
    # a rerun with other rows: the month's new file, the old one gone, the other month untouched
    changed = _publish(con, wh, "2020-01", LEDGER.format(m="2020-01").replace("100.25", "100.26"))
    assert changed != first and not (folder / first["payment_ledger"][0]).exists()
    assert len(list(folder.iterdir())) == 2
    assert query_con(con, "SELECT payroll_month, sum(amount) FROM payment_ledger GROUP BY 1 ORDER BY 1") == [
        ("2020-01", D("601.56")), ("2020-02", D("601.50"))]
    # the ledger rows are not in the warehouse file: the table is a view over the files
    assert "payment_ledger" not in {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    con.close()


def query_con(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


@pytest.mark.unit
def test_a_failed_publish_leaves_the_views_on_the_files_they_named(tmp_path):
    wh = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(wh))
    named = _publish(con, wh, "2020-01", LEDGER.format(m="2020-01"))
    new = {"payment_ledger": write_month_file(con, wh, "payment_ledger", "2020-01",
                                              LEDGER.format(m="2020-01").replace("100.25", "999.99"))}
    con.execute("BEGIN TRANSACTION")
    register_month(con, "2020-01", new)
    define_views(con, wh)
    con.execute("ROLLBACK")  # what a failed check or a crash before the commit does
    assert remove_unnamed_files(con, wh) == 1
    assert query_con(con, "SELECT file_name FROM warehouse_file") == [(named["payment_ledger"][0],)]
    assert query_con(con, "SELECT sum(amount) FROM payment_ledger")[0][0] == D("601.50")
    con.close()


@pytest.mark.unit
def test_a_payable_lines_state_follows_the_banks_latest_answer(tmp_path):
    wh = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(wh))
    _publish(con, wh, "2020-01", LEDGER.format(m="2020-01"))
    states = "SELECT line_id, payment_state FROM payment_ledger ORDER BY line_id"
    assert query_con(con, states) == [("L1", "sent"), ("L2", "sent"), ("L3", None)]
    con.execute("CREATE OR REPLACE TABLE bank_return_answer AS SELECT * FROM (VALUES ('R1', 'paid'), "
                "('R2', 'contradictory'), ('R3', 'failed')) t(payment_ref, answer)")
    # a contradictory answer leaves the payment sent; a line that is not payable has no state
    assert query_con(con, states) == [("L1", "paid"), ("L2", "sent"), ("L3", None)]
    con.close()


@pytest.mark.unit
def test_an_older_warehouse_is_moved_to_month_files_once(tmp_path):
    wh = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(wh))
    con.execute(f"CREATE TABLE payment_ledger AS {LEDGER.format(m='2020-01')} UNION ALL {LEDGER.format(m='2020-02')}")
    con.execute("CREATE TABLE finding AS SELECT '2020-02' AS payroll_month, 'x' AS finding_id")
    before = query_con(con, "SELECT * FROM payment_ledger ORDER BY ALL")
    assert migrate_tables(con, wh) == ["payment_ledger", "finding"]
    assert query_con(con, "SELECT * FROM payment_ledger ORDER BY ALL") == before
    assert query_con(con, "SELECT table_name, payroll_month FROM warehouse_file ORDER BY ALL") == [
        ("finding", "2020-02"), ("payment_ledger", "2020-01"), ("payment_ledger", "2020-02")]
    assert migrate_tables(con, wh) == []  # once
    con.close()


# --- on published months -------------------------------------------------------------------------

def test_published_months_are_views_over_their_files(four_months):
    wh = four_months["warehouse"]
    con = duckdb.connect(str(wh), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        assert not tables & set(MONTH_TABLES) and set(MONTH_TABLES) <= views
        assert {"fact_payment", "fact_enrolment", "fact_finding"} <= views
        named = con.execute("SELECT table_name, payroll_month, file_name, row_count FROM warehouse_file").fetchall()
        assert len(named) == len(MONTH_TABLES) * 4
        for table, month, name, rows in named:
            path = months_dir(wh) / table / name
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            assert con.execute(f"SELECT count(*) FROM {table} WHERE payroll_month = ?", [month]).fetchone()[0] == rows
        on_disk = {(p.parent.name, p.name) for p in months_dir(wh).glob("*/*")}
        assert on_disk == {(t, n) for t, _, n, _ in named}  # nothing else lies beside them
    finally:
        con.close()


def _copy(four_months, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(four_months["tmp"], copy)
    return copy


def test_compute_reads_its_ledger_history_from_the_month_files(four_months, tmp_path):
    """A month file gone is an error naming it, never a month without history (which would pay its
    arrears again)."""
    from pipelines.compute import compute_payments

    copy = _copy(four_months, tmp_path)
    wh = copy / "warehouse.duckdb"
    march = query(wh, "SELECT file_name FROM warehouse_file WHERE table_name = 'payment_ledger' "
                      "AND payroll_month = '2020-03'")[0][0]
    (months_dir(wh) / "payment_ledger" / march).unlink()
    with pytest.raises(Exception, match=march):
        compute_payments(context(copy, "2020-04", inbox=four_months["inbox"]))


@pytest.mark.unit
def test_a_warehouse_copied_or_restored_with_its_files_reads_them_and_without_them_says_so(tmp_path):
    """Views name files by absolute path. A copy made with copy_warehouse (the file and its folder)
    reads its own files, by a read-only open as by a read-write one, even once the original is gone;
    a copy of the file alone is one sentence naming the folder to restore, never the original's rows."""
    from pipelines.lifecycle import open_warehouse
    from pipelines.settings import RunError
    from pipelines.sqlrun import attach_warehouse
    from pipelines.warehouse_months import copy_warehouse, views_elsewhere

    original = tmp_path / "a" / "warehouse.duckdb"
    original.parent.mkdir()
    con = duckdb.connect(str(original))
    _publish(con, original, "2020-01", LEDGER.format(m="2020-01"))
    rows = query_con(con, "SELECT * FROM payment_ledger ORDER BY ALL")
    con.close()
    for read_only in (True, False):
        copy = tmp_path / f"b{read_only}" / "warehouse.duckdb"
        copy.parent.mkdir()
        copy_warehouse(original, copy)
        con = open_warehouse(context(copy.parent, "2020-02"), read_only=read_only)
        assert query_con(con, "SELECT * FROM payment_ledger ORDER BY ALL") == rows
        assert views_elsewhere(con, copy) == []
        con.close()
    shutil.rmtree(months_dir(original))
    lone = tmp_path / "c" / "warehouse.duckdb"
    lone.parent.mkdir()
    shutil.copy(original, lone)
    with pytest.raises(RunError, match=r"copied or moved without its month files: it names 1 month files not found in .*/c/warehouse_months"):
        attach_warehouse(duckdb.connect(), lone)


@pytest.mark.unit
def test_the_pseudonym_key_travels_with_the_warehouse_and_a_lost_one_is_refused(tmp_path):
    """Found by an attack on the product: a warehouse copied without its pseudonym.key made a new key
    at the next publish and every analyst person_key changed without a word. copy_warehouse takes the
    key along; publish records the key's fingerprint and refuses a missing or different key."""
    from pipelines.analyst import record_pseudonym_key
    from pipelines.settings import RunError
    from pipelines.warehouse_months import copy_warehouse

    wh = tmp_path / "a" / "warehouse.duckdb"
    wh.parent.mkdir()
    con = duckdb.connect(str(wh))
    record_pseudonym_key(context(wh.parent, "2020-01"), con)  # the first publish makes and records the key
    record_pseudonym_key(context(wh.parent, "2020-02"), con)  # the same key: nothing to say
    con.close()
    key = (wh.parent / "pseudonym.key").read_bytes()
    copy = tmp_path / "b" / "warehouse.duckdb"
    copy.parent.mkdir()
    copy_warehouse(wh, copy)
    assert (copy.parent / "pseudonym.key").read_bytes() == key
    (copy.parent / "pseudonym.key").unlink()
    con = duckdb.connect(str(copy))
    with pytest.raises(RunError, match="pseudonym key .* is missing, but this warehouse's analyst keys were made"):
        record_pseudonym_key(context(copy.parent, "2020-03"), con)
    assert not (copy.parent / "pseudonym.key").exists()
    (copy.parent / "pseudonym.key").write_text("ab" * 32 + "\n", encoding="ascii")
    with pytest.raises(RunError, match="is not the one this warehouse's analyst keys were made with"):
        record_pseudonym_key(context(copy.parent, "2020-03"), con)
    con.close()


def test_verify_names_a_month_file_changed_or_missing_since_publish(four_months, tmp_path):
    from pipelines.lifecycle import verify_month
    from pipelines.settings import RunError

    copy = _copy(four_months, tmp_path)
    wh = copy / "warehouse.duckdb"
    ctx = context(copy, "2020-04", inbox=four_months["inbox"])
    verify_month(ctx, record=False)  # as published
    ledger = query(wh, "SELECT file_name FROM warehouse_file WHERE table_name = 'payment_ledger' "
                       "AND payroll_month = '2020-04'")[0][0]
    path = months_dir(wh) / "payment_ledger" / ledger
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(RunError, match=f"payment_ledger/{ledger} has changed since it was published"):
        verify_month(ctx, record=False)
    path.unlink()
    with pytest.raises(RunError, match=f"payment_ledger/{ledger} is missing"):
        verify_month(ctx, record=False)


def test_a_warehouse_file_named_with_a_hyphen_or_a_quote_builds_its_marts(four_months, tmp_path):
    """Found by accident: a warehouse at var/wh-x.duckdb stopped publish with a parser error (its
    database is named after the file, and `USE wh-x.main` is not SQL). The marts and dimensions are
    built on such a warehouse as on any other."""
    from pipelines.marts import build_dimensions, prepare_marts
    from pipelines.warehouse_months import copy_warehouse

    wh = tmp_path / 'warehouse-2020 "v2".duckdb'
    copy_warehouse(four_months["warehouse"], wh)
    ctx = context(tmp_path, "2020-04", inbox=four_months["inbox"])
    con = duckdb.connect(str(wh))
    try:
        prepare_marts(ctx, con)
        build_dimensions(ctx, con)
        assert con.execute("SELECT current_database()").fetchone()[0] == 'warehouse-2020 "v2"'
        assert con.execute("SELECT count(*) FROM dim_person").fetchone()[0] > 0
    finally:
        con.close()
