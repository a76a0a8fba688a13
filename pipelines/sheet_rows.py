"""A table's rows written into an XlsxWriter sheet without passing through Python.

`spreadsheet.write_table` hands XlsxWriter one Python value a cell: at province scale the county
visit lists are 870,000 rows and 10 million cells, and XlsxWriter's cell-by-cell path took most of
the report stage (issue 22). `write_table_from_query` writes the same workbook: XlsxWriter still
writes everything else (title and header rows, signature, styles, print set-up, the zip), while
the rows' `<row>`/`<c>` elements are composed by one DuckDB query when the workbook is closed, and
their strings are entered in the workbook's shared-string table in the order XlsxWriter would have
entered them. The bytes are those of `write_table` given the same rows
(tests/test_sheet_rows.py holds the two side by side)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pyarrow as pa

from pipelines.settings import RunError
from pipelines.sqlrun import table_from_arrow

# Excel's limit on a cell's text is 32,767 UTF-16 units; XlsxWriter cuts a longer string. Refused
# instead, at half (a code point is at most two units): by the payout workbooks and the county lists.
MAX_CELL_CHARS = 32767 // 2
_block_ids = itertools.count()


def neutralised_sql(expr: str) -> str:
    """spreadsheet.neutralise in SQL: a leading apostrophe before a formula trigger."""
    from pipelines.spreadsheet import FORMULA_TRIGGERS

    triggers = ", ".join("'" + t.replace("'", "''") + "'" if t.isprintable() else f"chr({ord(t)})"
                         for t in FORMULA_TRIGGERS)
    return f"CASE WHEN left({expr}, 1) IN ({triggers}) THEN '''' || {expr} ELSE {expr} END"


def column_letters(c: int) -> str:
    if not 0 <= c < 26:
        raise ValueError(f"column {c}: sheet_rows writes columns A to Z only")
    return chr(65 + c)


@dataclass
class _Block:
    table: str  # temp table of the block's cells: rn (1-based), c, v (text or a number as written), num
    first_row: int  # the sheet row (0-based) of rn = 1
    last_row: int
    spans: dict[int, tuple[int, int]]  # block of 16 rows -> (min, max) column of the block's cells


def write_table_from_query(ws, fmt, headers, con, query: str, params: list, kinds: str,
                           money_columns=frozenset(), start_row: int = 0) -> int:
    """spreadsheet.write_table for rows that stay in DuckDB. `query` gives one row per sheet row:
    its first column `rn` numbers them from 1 in the order they are written, the next ones are the
    cells from column A, each of a kind in `kinds`: `t` text (neutralised against formulas; NULL
    or '' is no cell), `n` a number (written as XlsxWriter writes a float; NULL is no cell). A
    DECIMAL in an `n` column is written as the nearest double, as write_table writes a money
    column. Returns the next free row."""
    ws.write_row(start_row, 0, list(headers), fmt["header"])
    ws.set_column(0, max(len(headers) - 1, 0), 16)
    for c in money_columns:
        ws.set_column(c, c, 14, fmt["money"])
    count = _add_block(ws, con, query, params, kinds, start_row + 1)
    ws.freeze_panes(start_row + 1, 0)
    return start_row + count + 1


def _add_block(ws, con, query: str, params: list, kinds: str, first_row: int) -> int:
    table = f"sheet_rows_{next(_block_ids)}"
    parts = []
    for c, kind in enumerate(kinds):
        col = f"c{c}"
        if kind == "t":
            parts.append(f"SELECT rn, {c} AS c, {neutralised_sql(f'CAST({col} AS VARCHAR)')} AS v, false AS num "
                         f"FROM src WHERE {col} IS NOT NULL AND CAST({col} AS VARCHAR) <> ''")
        elif kind == "n":
            parts.append(f"SELECT rn, {c} AS c, printf('%.16G', CAST({col} AS DOUBLE)) AS v, true AS num FROM src "
                         f"WHERE {col} IS NOT NULL")
        else:
            raise ValueError(f"column kind {kind!r}: t or n")
        column_letters(c)
    names = ", ".join(["rn"] + [f"c{c}" for c in range(len(kinds))])
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS WITH src({names}) AS ({query}) "
                + " UNION ALL ".join(parts), params)
    count = con.execute(f"SELECT count(*) FROM ({query})", params).fetchone()[0]
    too_long, first_rn, last_rn, first_c, last_c, text_cells = con.execute(
        f"SELECT max(length(v)) FILTER (WHERE NOT num), min(rn), max(rn), min(c), max(c), "
        f"count(*) FILTER (WHERE NOT num) FROM {table}").fetchone()
    if too_long is not None and too_long >= MAX_CELL_CHARS:
        con.execute(f"DROP TABLE {table}")
        raise RunError(f"a value of {too_long} characters for sheet {ws.name!r}: longer than an XLSX cell takes")
    # the rows' strings enter the workbook's shared strings now, in the order write_row would have
    # entered them (row by row, left to right), so that strings written after the table (the
    # signature, the next sheet) get the numbers they would have got
    strings = [s for (s,) in con.execute(
        f"SELECT v FROM {table} WHERE NOT num GROUP BY v ORDER BY min(rn * 32 + c)").fetchall()]
    shared = ws.str_table
    numbers = [shared._get_shared_string_index(s) for s in strings]
    shared.count += text_cells - len(strings)  # every string cell counts, as XlsxWriter counts them
    table_from_arrow(con, f"{table}_strings", pa.table({"v": strings, "idx": numbers}), temp=True)
    last_row = first_row + count - 1
    if first_rn is not None:  # the block's cells, inside the sheet's dimension as XlsxWriter keeps it
        ws._check_dimensions(first_row + first_rn - 1, first_c)
        ws._check_dimensions(first_row + last_rn - 1, last_c)
    spans = {block: (lo, hi) for block, lo, hi in con.execute(
        f"SELECT (rn - 1 + {first_row}) // 16, min(c), max(c) FROM {table} GROUP BY 1").fetchall()}
    blocks = getattr(ws, "sheet_rows_blocks", None)
    if blocks is None:
        blocks = ws.sheet_rows_blocks = []
        ws._write_sheet_data = lambda: _write_sheet_data(ws, con)
    blocks.append(_Block(table, first_row, last_row, spans))
    return count


def _write_sheet_data(ws, con) -> None:
    """XlsxWriter's _write_sheet_data and _write_rows, with each block's rows from its query: the
    rows XlsxWriter holds (title, header, signature) as it writes them, a block's rows in its place,
    the spans of each 16 rows over both."""
    blocks = sorted(ws.sheet_rows_blocks, key=lambda b: b.first_row)
    if ws.comments:
        raise RunError("sheet_rows: a sheet with comments is not supported")
    if ws.dim_rowmin is None:
        ws._xml_empty_tag("sheetData")
        return
    edge_rows = sorted(r for r in set(ws.table) | set(ws.row_info) if ws.dim_rowmin <= r <= ws.dim_rowmax)
    for b in blocks:
        if any(b.first_row <= r <= b.last_row for r in edge_rows):
            raise RunError(f"sheet_rows: sheet {ws.name!r} has cells of its own inside the rows of a query")
    spans: dict[int, tuple[int, int]] = {}
    for r in edge_rows:
        for c in ws.table.get(r, {}):
            if ws.dim_colmin <= c <= ws.dim_colmax:
                lo, hi = spans.get(r // 16, (c, c))
                spans[r // 16] = (min(lo, c), max(hi, c))
    for b in blocks:
        for block, (c0, c1) in b.spans.items():
            lo, hi = spans.get(block, (c0, c1))
            spans[block] = (min(lo, c0), max(hi, c1))
    span_text = {k: f"{lo + 1}:{hi + 1}" for k, (lo, hi) in spans.items()}
    ws._xml_start_tag("sheetData")
    pending = list(blocks)
    for r in edge_rows:
        while pending and pending[0].first_row < r:
            _write_block(ws, con, pending.pop(0), span_text)
        _write_edge_row(ws, r, span_text.get(r // 16))
    for b in pending:
        _write_block(ws, con, b, span_text)
    ws._xml_end_tag("sheetData")


def _write_edge_row(ws, r: int, span: str | None) -> None:
    """One row XlsxWriter holds, as its _write_rows writes it."""
    cells = ws.table.get(r)
    info = ws.row_info.get(r)
    if cells:
        if info is None:
            ws._write_row(r, span)
        else:
            ws._write_row(r, span, info)
        for c in range(ws.dim_colmin, ws.dim_colmax + 1):
            if c in cells:
                ws._write_cell(r, c, cells[c])
        ws._xml_end_tag("row")
    elif info is not None:
        ws._write_empty_row(r, span, info)


def _write_block(ws, con, b: _Block, span_text: dict[int, str]) -> None:
    """A block's rows: `<row r=.. spans=..>` and its cells, each with its column's style (a cell of
    write_row has no format of its own, so XlsxWriter gives it the column's)."""
    styles = []
    for c in range(26):
        info = ws.col_info.get(c)
        fmt = info.column_format if info is not None else None
        styles.append(f' s="{fmt._get_xf_index()}"' if fmt is not None else "")
    if any(r in ws.row_info for r in range(b.first_row, b.last_row + 1)):
        raise RunError(f"sheet_rows: sheet {ws.name!r} sets a row's format inside the rows of a query")
    blocks = sorted(span_text)
    table_from_arrow(con, f"{b.table}_spans", pa.table({"block": blocks, "span": [span_text[k] for k in blocks]}),
                     temp=True)
    table_from_arrow(con, f"{b.table}_styles", pa.table({"c": list(range(26)), "s": styles}), temp=True)
    xml = con.execute(f"""
        WITH cells AS (
            SELECT x.rn, x.c, '<c r="' || chr(65 + x.c) || CAST(x.rn + {b.first_row} AS VARCHAR) || '"' || st.s
                   || CASE WHEN x.num THEN '><v>' || x.v ELSE ' t="s"><v>' || CAST(d.idx AS VARCHAR) END
                   || '</v></c>' AS xml
            FROM {b.table} x JOIN {b.table}_styles st USING (c)
                 LEFT JOIN {b.table}_strings d ON NOT x.num AND d.v = x.v),
        rows_ AS (
            SELECT rn, '<row r="' || CAST(rn + {b.first_row} AS VARCHAR) || '" spans="' || min(sp.span) || '">'
                       || string_agg(xml, '' ORDER BY c) || '</row>' AS xml
            FROM cells JOIN {b.table}_spans sp ON sp.block = (rn - 1 + {b.first_row}) // 16
            GROUP BY rn)
        SELECT coalesce(string_agg(xml, '' ORDER BY rn), '') FROM rows_""").fetchone()[0]
    ws.fh.write(xml)
    for suffix in ("", "_strings", "_spans", "_styles"):
        con.execute(f"DROP TABLE IF EXISTS {b.table}{suffix}")
