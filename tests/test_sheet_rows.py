"""pipelines/sheet_rows.py writes a table's rows from a DuckDB query: the workbook must be the bytes
spreadsheet.write_table writes from the same rows as Python values, whatever the values."""

from __future__ import annotations

import io
from decimal import Decimal

import duckdb
import pytest

from pipelines.settings import RunError

pytestmark = pytest.mark.unit

HOSTILE = ["=1+1", "+86", "-5", "@SUM(A1)", "\tx", "\rx", " lead", "trail ", "a\nb", "_x0041_", "<r>rich</r>",
           "a&b<c>\"d'", "\x01ctrl\x1f", "\ufffe", "𠀀 beyond BMP", "全角　空格　", "'quoted", "", None, "未发放",
           "张三", "x" * 300]


def rows_of(n: int, seed: int) -> list[tuple]:
    """Rows of a serial, texts (some hostile, some repeated), an age, money and trailing blanks."""
    import random

    rnd = random.Random(seed)
    rows = []
    for i in range(1, n + 1):
        rows.append((i, rnd.choice(HOSTILE), f"名{rnd.randint(0, n // 3)}", rnd.choice([None, rnd.randint(0, 99)]),
                     rnd.choice([None, Decimal(rnd.randint(0, 10**8)) / 100, Decimal("0.07"), Decimal("0")]),
                     rnd.choice(HOSTILE), "", None))
    return rows


def workbook(sheets: dict[str, list[tuple]], from_query: bool) -> bytes:
    from pipelines.sheet_rows import write_table_from_query
    from pipelines.spreadsheet import new_workbook, print_setup, signature_block, write_table

    con = duckdb.connect()
    con.execute("CREATE TABLE t (sheet VARCHAR, rn BIGINT, c0 BIGINT, c1 VARCHAR, c2 VARCHAR, c3 BIGINT, "
                "c4 DECIMAL(18, 2), c5 VARCHAR, c6 VARCHAR, c7 VARCHAR)")
    for name, rows in sheets.items():
        if rows:
            con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [(name, k, *r) for k, r in enumerate(rows, start=1)])
    buf = io.BytesIO()
    wb, fmt = new_workbook(buf, "2020-01")
    headers = ["序号", "类别", "姓名", "年龄", "金额", "依据", "空", "空"]
    for name, rows in sheets.items():
        ws = wb.add_worksheet(name)
        ws.write(0, 0, f"标题 {name}", fmt["title"])
        ws.write(1, 0, "合计 " + str(len(rows)), fmt["bold"])
        if from_query:
            end = write_table_from_query(ws, fmt, headers, con, "SELECT rn, c0, c1, c2, c3, c4, c5, c6, c7 FROM t "
                                         "WHERE sheet = ? ORDER BY rn", [name], "nttnnttt", money_columns={4},
                                         start_row=2)
        else:
            end = write_table(ws, fmt, headers, rows, money_columns={4}, start_row=2)
        for col, width in ((0, 6), (1, 22), (4, 11), (5, 30)):
            ws.set_column(col, col, width, fmt["money"] if col == 4 else None)
        print_setup(ws, header_rows=(2, 2), last_col=len(headers) - 1)
        signature_block(ws, fmt, end + 1)
    wb.close()
    con.close()
    return buf.getvalue()


@pytest.mark.parametrize("sizes", [(0,), (1,), (13,), (14, 0, 40), (200, 3, 17)])
def test_rows_from_a_query_are_the_bytes_write_table_writes(sizes):
    sheets = {f"乡镇{i}": rows_of(n, seed=n * 7 + i) for i, n in enumerate(sizes)}
    assert workbook(sheets, from_query=True) == workbook(sheets, from_query=False)


def test_rows_from_a_query_are_read_back_as_written(tmp_path):
    """Not only the same bytes as the other path: a spreadsheet reader sees the values."""
    from python_calamine import CalamineWorkbook

    rows = [(1, "=cmd", "李四", 42, Decimal("1234.56"), "a\nb", "", None)]
    path = tmp_path / "t.xlsx"
    path.write_bytes(workbook({"s": rows}, from_query=True))
    got = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
    assert got[3][:6] == [1, "'=cmd", "李四", 42, 1234.56, "a\nb"]


def test_a_value_too_long_for_a_cell_is_refused_in_one_sentence():
    with pytest.raises(RunError, match="longer than an XLSX cell takes"):
        workbook({"s": [(1, "x" * 20000, "", None, None, "", "", None)]}, from_query=True)
