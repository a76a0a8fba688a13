"""XLSX writing for every workbook doudi produces: one look, deterministic bytes, and cells that
cannot run as formulas (a cell starting with = + - @ is written as text with a leading apostrophe,
so a hostile name never becomes a formula in Excel or LibreOffice)."""

from __future__ import annotations

import datetime
from decimal import Decimal

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value):
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def new_workbook(target, month: str):
    import xlsxwriter

    wb = xlsxwriter.Workbook(target, {"strings_to_numbers": False, "strings_to_formulas": False,
                                      "strings_to_urls": False, "in_memory": True})
    # fixed document date: the same inputs give byte-identical workbooks
    wb.set_properties({"created": datetime.datetime.strptime(month + "-01", "%Y-%m-%d"), "author": "doudi"})
    fmt = {
        "header": wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1}),
        "money": wb.add_format({"num_format": "#,##0.00"}),
        "money_bold": wb.add_format({"num_format": "#,##0.00", "bold": True}),
        "bold": wb.add_format({"bold": True}),
        "title": wb.add_format({"bold": True, "font_size": 14}),
        # free text (a finding's detail, a file's path): wrapped within its column when printed
        "wrap": wb.add_format({"text_wrap": True, "valign": "top"}),
    }
    return wb, fmt


def write_table(ws, fmt, headers, rows, money_columns=frozenset(), start_row: int = 0) -> int:
    """Headers then rows, a row at a time; money columns as numbers with two decimals.
    Returns the next free row."""
    ws.write_row(start_row, 0, list(headers), fmt["header"])
    ws.set_column(0, max(len(headers) - 1, 0), 16)
    for c in money_columns:
        ws.set_column(c, c, 14, fmt["money"])
    r = start_row
    for r, row in enumerate(rows, start=start_row + 1):
        ws.write_row(r, 0, [_cell(v, c in money_columns) for c, v in enumerate(row)])
    ws.freeze_panes(start_row + 1, 0)
    return r + 1


def _cell(value, money: bool):
    if value is None:
        return None
    if isinstance(value, Decimal):
        return float(value) if money else str(value)  # display only: the files' sums come from the ledger
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return neutralise(str(value))


SIGNATURE_PARTS = ("制表人：__________", "审核人：__________", "负责人：__________", "日期：______年____月____日")
SIGNATURE_LINE = "　　".join(SIGNATURE_PARTS)
DEFAULT_COLUMN_WIDTH = 8.43  # Excel's, in characters


def wrap_columns(ws, fmt, widths: dict[int, int]) -> None:
    """Columns of free text, wrapped at the given widths: a long value prints on more lines instead
    of running under (and being cut by) the next column."""
    for col, width in widths.items():
        ws.set_column(col, col, width, fmt["wrap"])


def title_rows(ws, fmt, title: str, *lines: str) -> int:
    """A sheet's title (what the report is, its month, county or bank and batch) and the lines under
    it (totals that belong on the first page, the unit); returns the next free row."""
    ws.write(0, 0, title, fmt["title"])
    for row, line in enumerate(lines, start=1):
        ws.write(row, 0, line, fmt["bold"])
    return len(lines) + 1


def print_setup(ws, header_rows: tuple[int, int], last_col: int, landscape: bool = True) -> None:
    """A sheet that prints readably on A4 (issue 21): landscape (portrait for a narrow table), fit to
    the page's width (as many pages down as needed), the title and header rows repeated on every
    page, centred, page numbers in the footer."""
    ws.set_paper(9)  # A4
    if landscape:
        ws.set_landscape()
    else:
        ws.set_portrait()
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(0, header_rows[1])
    ws.center_horizontally()
    ws.set_margins(left=0.4, right=0.4, top=0.6, bottom=0.6)
    ws.set_footer("&C第 &P 页，共 &N 页")
    ws.last_col_printed = last_col  # read by signature_block


def printed_width(ws, last_col: int) -> float:
    """The width in characters of columns 0..last_col (XlsxWriter keeps them in pixels: 7 a character
    of the default font, and 5 of padding)."""
    info = getattr(ws, "col_info", {})
    return sum(((info[c].width - 5) / 7 if c in info and info[c].width is not None else DEFAULT_COLUMN_WIDTH)
               for c in range(last_col + 1))


def text_width(text: str) -> int:
    """Characters a text takes in a cell: a CJK or full-width character two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def signature_block(ws, fmt, row: int) -> int:
    """The signature block under a table (制表人 / 审核人 / 负责人, date, left blank to be signed: a
    printed run date would change the bytes of a rerun), and the print area ending with it. On a
    sheet too narrow for it on one line it takes two or four, so that the print area cuts none of it."""
    last_col = getattr(ws, "last_col_printed", None)
    width = printed_width(ws, last_col) if last_col is not None else None
    if width is None or text_width(SIGNATURE_LINE) <= width:
        lines = [SIGNATURE_LINE]
    elif text_width("　　".join(SIGNATURE_PARTS[:2])) <= width:
        lines = ["　　".join(SIGNATURE_PARTS[:2]), "　　".join(SIGNATURE_PARTS[2:])]
    else:
        lines = list(SIGNATURE_PARTS)
    for i, line in enumerate(lines):
        ws.write(row + 1 + i, 0, line, fmt["bold"])
    end = row + len(lines)
    if last_col is not None:
        ws.print_area(0, 0, end, last_col)
    return end + 1
