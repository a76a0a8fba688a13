"""The payout files of one batch part, composed by DuckDB (issue 22): no record passes through Python.

- CSV: `COPY` of the records; the bytes Python's csv module wrote before (QUOTE_MINIMAL, CRLF, an
  empty field for an empty or missing value). `csv_gbk` is the same text transcoded to GB18030.
- pain.001: the document composed as text by one query, one XML fragment per record, with the
  group header and control sums from the same query; the bytes lxml's pretty printer wrote before.
  The file is then parsed back by libxml2 in one streaming pass that validates it against the XSD.
- XLSX: the sheet's rows and its shared-string table composed by one query each, in the order and
  with the escaping XlsxWriter applies; XlsxWriter writes every other part of the workbook and the
  zip container as before. The bytes are XlsxWriter's own for the same cells.

Each file is written to a temporary name, read back independently (the CSV by Python's csv module,
the pain.001 by the validating parse, the XLSX by calamine), and renamed into place only when that
reading gives the query's count and sum: the manifest's counts and sums are those readings.
`tests/payout_oracle.py` keeps the row-by-row renderers these replace, and the tests compare the
bytes of both on the test months and on hostile values.
"""

from __future__ import annotations

import csv
import threading
from decimal import Decimal
from pathlib import Path

from pipelines.settings import RunError
from pipelines.sqlrun import sql_string

CSV_COLUMNS = ("payment_ref", "payee_name", "payee_account", "bank_code", "bank_name", "amount",
               "programs", "region_code", "memo")
CSV_HEADERS_ZH = ("支付流水号", "收款人", "收款账号", "银行代码", "开户银行", "金额", "项目", "行政区划代码", "摘要")
STRING_COLUMNS = tuple(c for c in CSV_COLUMNS if c != "amount")
MONEY_COLUMN = CSV_COLUMNS.index("amount")
PAIN001_NS = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
PAIN001_XSD = "pain.001.001.09.xsd"
# The workbook as the bureau prints and signs it (issue 21): three heading rows (title; paying account
# and date; the totals, on the first page), a blank row, the header, the records, the total row, a
# blank row and the signature line. Widths so that a reference, a name and an account never run
# into each other; printed landscape on A4, fit to the width.
XLSX_HEADER_ROW = 4
XLSX_COLUMN_WIDTHS = (20, 14, 24, 9, 18, 14, 30, 12, 90)  # a memo names every program paid


def load_batch(con, bank_code: str, batch_id: str, part: int) -> tuple[int, Decimal]:
    """`batch`: one file's records in file order (rn from 1), from `payout_records`; returns the
    query's count and sum, which the readings of every file are checked against."""
    con.execute("CREATE OR REPLACE TEMP TABLE batch AS "
                f"SELECT row_number() OVER (ORDER BY seq) AS rn, {', '.join(CSV_COLUMNS)}, bic "
                "FROM payout_records WHERE bank_code = ? AND batch_id = ? AND part = ?",
                [bank_code, batch_id, part])
    count, total = con.execute("SELECT count(*), coalesce(sum(amount), 0) FROM batch").fetchone()
    return int(count), Decimal(total)


# ------------------------------------------------------------------------------------------ CSV

def write_csv(con, path: Path) -> None:
    """The batch as CSV, UTF-8: a header of the column names, then one line per record."""
    columns = ", ".join("CAST(amount AS VARCHAR) AS amount" if c == "amount" else f"nullif({c}, '') AS {c}"
                        for c in CSV_COLUMNS)
    con.execute(f"COPY (SELECT {columns} FROM batch ORDER BY rn) TO '{sql_string(str(path))}' "
                "(FORMAT csv, HEADER, DELIMITER ',', QUOTE '\"', ESCAPE '\"', NEW_LINE '\\r\\n', COMMENT '', "
                "COMPRESSION 'none')")


def transcode_gb18030(source: Path, target: Path) -> None:
    target.write_bytes(source.read_bytes().decode("utf-8").encode("gb18030"))


def read_csv_totals(path: Path, encoding: str = "utf-8") -> tuple[int, Decimal]:
    """Count and sum of a payout CSV as a bank reads it: Python's csv module, the amount column."""
    count, total = 0, Decimal("0.00")
    with open(path, encoding=encoding, newline="") as fh:
        rows = csv.reader(fh, strict=True)
        try:
            header = next(rows, None)
            if header is None or tuple(header) != CSV_COLUMNS:
                raise RunError(f"{path.name}: not a payout CSV (header {header})")
            for row in rows:
                if len(row) != len(CSV_COLUMNS):
                    raise RunError(f"{path.name}: record {count + 1} has {len(row)} fields")
                count += 1
                total += Decimal(row[MONEY_COLUMN])
        except csv.Error as exc:
            raise RunError(f"{path.name} cannot be read back: {exc}") from exc
    return count, total


# ------------------------------------------------------------------------------------ pain.001

def _xml_text(expr: str) -> str:
    """Text as libxml2 serialises an element's content: & < > escaped, CR as a character reference."""
    return (f"replace(replace(replace(replace({expr}, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), "
            "chr(13), '&#13;')")


def pain001_bytes(con, month: str, stem: str, debtor_name: str, debtor_account: str, debtor_bic: str,
                  execution_date: str) -> bytes:
    """The batch as an ISO 20022 pain.001.001.09 document (Chinese accounts as `Othr/Id`, amounts in
    CNY), composed by one query: the records' fragments in file order between a group header and a
    payment information block whose counts and control sums the same query adds up. A fixed
    creation time (the first of the payroll month) and a fixed execution date (a setting,
    pipelines/payout.py execution_date) keep reruns byte-identical."""
    i = lambda n: "\n" + "  " * n  # noqa: E731  the pretty printer's indentation, two spaces a level
    name, account, memo = (_xml_text(e) for e in ("left(coalesce(payee_name, ''), 140)", "coalesce(payee_account, '')",
                                                  "left(coalesce(memo, ''), 140)"))
    fragment = (
        f"'{i(3)}<CdtTrfTxInf>{i(4)}<PmtId>{i(5)}<EndToEndId>' || {_xml_text('payment_ref')} || "
        f"'</EndToEndId>{i(4)}</PmtId>{i(4)}<Amt>{i(5)}<InstdAmt Ccy=\"CNY\">' || CAST(amount AS VARCHAR) || "
        f"'</InstdAmt>{i(4)}</Amt>' || "
        f"CASE WHEN coalesce(bic, '') = '' THEN '' ELSE '{i(4)}<CdtrAgt>{i(5)}<FinInstnId>{i(6)}<BICFI>' || "
        f"{_xml_text('bic')} || '</BICFI>{i(5)}</FinInstnId>{i(4)}</CdtrAgt>' END || "
        f"'{i(4)}<Cdtr>{i(5)}<Nm>' || {name} || '</Nm>{i(4)}</Cdtr>"
        f"{i(4)}<CdtrAcct>{i(5)}<Id>{i(6)}<Othr>{i(7)}<Id>' || {account} || "
        f"'</Id>{i(6)}</Othr>{i(5)}</Id>{i(4)}</CdtrAcct>{i(4)}<RmtInf>{i(5)}<Ustrd>' || "
        f"{memo} || '</Ustrd>{i(4)}</RmtInf>{i(3)}</CdtTrfTxInf>'"
    )
    esc = _escape_text_py
    head = (f"<?xml version='1.0' encoding='UTF-8'?>\n<Document xmlns=\"{PAIN001_NS}\">{i(1)}<CstmrCdtTrfInitn>"
            f"{i(2)}<GrpHdr>{i(3)}<MsgId>{esc(stem[:35])}</MsgId>{i(3)}<CreDtTm>{month}-01T00:00:00+08:00</CreDtTm>")
    initiating = (f"{i(3)}<InitgPty>{i(4)}<Nm>{esc(debtor_name)}</Nm>{i(3)}</InitgPty>{i(2)}</GrpHdr>"
                  f"{i(2)}<PmtInf>{i(3)}<PmtInfId>{esc(stem.replace('-', '').replace('_', '')[:35])}</PmtInfId>"
                  f"{i(3)}<PmtMtd>TRF</PmtMtd>")
    debtor = (f"{i(3)}<ReqdExctnDt>{i(4)}<Dt>{execution_date}</Dt>{i(3)}</ReqdExctnDt>{i(3)}<Dbtr>{i(4)}"
              f"<Nm>{esc(debtor_name)}</Nm>{i(3)}</Dbtr>{i(3)}<DbtrAcct>{i(4)}<Id>{i(5)}<Othr>{i(6)}"
              f"<Id>{esc(debtor_account)}</Id>{i(5)}</Othr>{i(4)}</Id>{i(3)}</DbtrAcct>{i(3)}<DbtrAgt>{i(4)}"
              f"<FinInstnId>{i(5)}<BICFI>{esc(debtor_bic)}</BICFI>{i(4)}</FinInstnId>{i(3)}</DbtrAgt>")
    footer = f"{i(2)}</PmtInf>{i(1)}</CstmrCdtTrfInitn>\n</Document>\n"
    # NbOfTxs and CtrlSum, in the group header and again in the payment information
    control = (f"'{i(3)}<NbOfTxs>' || CAST(count(*) AS VARCHAR) || '</NbOfTxs>{i(3)}<CtrlSum>' || "
               "CAST(sum(amount) AS VARCHAR) || '</CtrlSum>'")
    data = con.execute(
        f"SELECT encode($1 || {control} || $2 || {control} || $3 || string_agg({fragment}, '' ORDER BY rn) || $4) "
        "FROM batch", [head, initiating, debtor, footer]).fetchone()[0]
    return bytes(data)


def _escape_text_py(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def xsd_path() -> Path:
    """The official XSD, as the sepaxml package ships it."""
    import sepaxml

    return Path(sepaxml.__file__).parent / "schemas" / PAIN001_XSD


# one parsed schema per thread: batch parts are checked side by side in threads, and libxml2 parsing
# the XSD in two threads at once failed ("xmlSchemaPValAttrNodeValue, the given type is not a
# built-in type": a 250k-row bench month, 2026-12-07), so the parsing is also done under a lock
_SCHEMAS = threading.local()
_SCHEMA_PARSING = threading.Lock()


def lxml_schema():
    schema = getattr(_SCHEMAS, "pain001", None)
    if schema is None:
        from lxml import etree

        with _SCHEMA_PARSING:
            schema = _SCHEMAS.pain001 = etree.XMLSchema(etree.parse(str(xsd_path())))
    return schema


def read_pain001_totals(path: Path) -> tuple[int, Decimal]:
    """One streaming pass of libxml2 over a written pain.001 file: it is validated against the XSD
    while its transactions are counted and their amounts added up; the counts and control sums of
    the group header and of every payment information block must equal them. Returns
    (transactions, their sum)."""
    from lxml import etree

    ns = f"{{{PAIN001_NS}}}"
    count, total = 0, Decimal("0.00")
    declared: list[tuple[str, str, str]] = []  # (parent, NbOfTxs or CtrlSum, text)
    tags = [ns + t for t in ("InstdAmt", "CdtTrfTxInf", "NbOfTxs", "CtrlSum")]
    try:
        for _event, el in etree.iterparse(str(path), events=("end",), tag=tags, schema=lxml_schema(),
                                          remove_blank_text=True):
            tag = el.tag[len(ns):]
            if tag == "InstdAmt":
                if el.get("Ccy") != "CNY":
                    raise RunError(f"{path.name}: an amount in {el.get('Ccy')}, not CNY")
                count += 1
                total += Decimal(el.text)
            elif tag == "CdtTrfTxInf":  # done with this transaction: keep memory flat
                el.clear()
                parent = el.getparent()
                while el.getprevious() is not None:
                    del parent[0]
            else:
                declared.append((el.getparent().tag[len(ns):], tag, el.text))
    except etree.XMLSyntaxError as exc:
        raise RunError(f"pain.001 file fails the XSD: {exc}") from exc
    expected = {"NbOfTxs": str(count), "CtrlSum": f"{total:.2f}"}
    wrong = [d for d in declared if d[2] != expected[d[1]]]
    if wrong or len(declared) != 4:
        raise RunError(f"{path.name}: control totals {declared} differ from its {count} transactions / {total:.2f}")
    return count, total


# ---------------------------------------------------------------------------------------- XLSX

# Python's \s (XlsxWriter keeps a string's leading or trailing white space with xml:space="preserve"),
# less the control characters, which are escaped as _xHHHH_ before the test
_WS = r"[ \t\n\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
_CONTROL = [c for c in range(0x20) if c not in (0x09, 0x0A)]


def _escape_control(expr: str) -> str:
    """XlsxWriter's _escape_control_characters: a literal _xHHHH_ gets its underscore escaped, a
    control character becomes _xHHHH_, and so do U+FFFE and U+FFFF."""
    replaced = f"regexp_replace({expr}, '(_x[0-9a-fA-F]{{4}}_)', '_x005F\\1', 'g')"
    for c in _CONTROL:
        replaced = f"replace({replaced}, chr({c}), '_x{c:04X}_')"
    return (f"replace(replace(CASE WHEN regexp_matches({expr}, '_x[0-9a-fA-F]{{4}}_|[\\x00-\\x08\\x0b-\\x1f]') "
            f"THEN {replaced} ELSE {expr} END, chr(65534), '_xFFFE_'), chr(65535), '_xFFFF_')")


def xlsx_heading(month: str, bank_code: str, bank_name: str, batch_id: str, part: int, debtor_name: str,
                 debtor_account: str, execution_date: str, count: int, total: Decimal) -> list[str]:
    """The heading rows of a payout workbook: what it is, for which bank and batch; who pays from
    which account, on which date; how many records and how much."""
    bank = f"{bank_name}（{bank_code}）" if bank_name else bank_code
    return [f"{month} 社会救助资金代发明细　{bank}　批次 {batch_id} 第 {part} 部分",
            f"付款单位：{debtor_name}　付款账号：{debtor_account}　代发日期：{execution_date}",
            f"合计 {count} 笔，金额 {total:,.2f} 元"]


def xlsx_sheet(con, formats: dict[str, int], heading: list[str]) -> tuple[str, str, int, str]:
    """The sheet's <sheetData> and the workbook's sharedStrings.xml for the batch, as XlsxWriter writes
    them for: the heading rows (the first in style `title`, the others `bold`), the header row
    (style `header`) at XLSX_HEADER_ROW, one row per record (strings neutralised against formulas, as
    pipelines/spreadsheet.py does; an empty or missing value is no cell; the amount a number in the
    column's `money` style), a total row ("合计", "<n> 笔" in `bold`, the sum in `money_bold`) and,
    after a blank row, the signature line (`bold`). Strings are shared, numbered in the order cells
    are written; a number is written as XlsxWriter writes a float, printf %.16G of the nearest double.
    Returns (sheet data, shared strings, record count, the total as written)."""
    from pipelines.sheet_rows import MAX_CELL_CHARS, neutralised_sql
    from pipelines.spreadsheet import SIGNATURE_LINE

    H = XLSX_HEADER_ROW
    headers = ", ".join(f"({c}, '{h}')" for c, h in enumerate(CSV_HEADERS_ZH))
    heading_rows = ", ".join(f"({r}, {sql_string_literal(line)}, {formats['title'] if r == 0 else formats['bold']})"
                             for r, line in enumerate(heading))
    columns = [(CSV_COLUMNS.index(c), c) for c in STRING_COLUMNS]
    too_long = con.execute(f"SELECT max(greatest({', '.join(f'length({c})' for c in STRING_COLUMNS)})) "
                           "FROM batch").fetchone()[0]
    if too_long is not None and too_long >= MAX_CELL_CHARS:
        raise RunError(f"a payout record holds a value of {too_long} characters: longer than an XLSX cell takes")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE xlsx_cells AS
        WITH totals AS (SELECT count(*) AS n, CAST(coalesce(sum(amount), 0) AS DECIMAL(18, 2)) AS total FROM batch),
        data_strings AS (
            SELECT rn + {H} AS r, unnest([{', '.join(str(c) for c, _ in columns)}]) AS c,
                   unnest([{', '.join(name for _, name in columns)}]) AS v
            FROM batch
        )
        SELECT r, 0 AS c, v, s, false AS num FROM (VALUES {heading_rows}) t(r, v, s)
        UNION ALL
        SELECT {H}, c, v, {formats['header']}, false FROM (VALUES {headers}) h(c, v)
        UNION ALL
        SELECT r, c, {neutralised_sql('v')}, NULL, false FROM data_strings WHERE v <> ''
        UNION ALL
        SELECT rn + {H}, {MONEY_COLUMN}, printf('%.16G', CAST(amount AS DOUBLE)), {formats['money']}, true
        FROM batch WHERE amount IS NOT NULL
        UNION ALL
        SELECT n + {H + 1}, 0, '合计', {formats['bold']}, false FROM totals
        UNION ALL
        SELECT n + {H + 1}, 1, CAST(n AS VARCHAR) || ' 笔', {formats['bold']}, false FROM totals
        UNION ALL
        SELECT n + {H + 1}, {MONEY_COLUMN}, printf('%.16G', CAST(total AS DOUBLE)), {formats['money_bold']}, true
        FROM totals
        UNION ALL
        SELECT n + {H + 3}, 0, {sql_string_literal(SIGNATURE_LINE)}, {formats['bold']}, false FROM totals
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE xlsx_strings AS
        SELECT v, row_number() OVER (ORDER BY min(r * 16 + c)) - 1 AS idx FROM xlsx_cells WHERE NOT num GROUP BY v
    """)
    def cell(ref: str, style: str, body: str) -> str:  # one <c> element, as XlsxWriter writes it
        return f"""'<c r="' || {ref} || '"' || {style} || {body} || '</v></c>'"""

    generic = cell("chr(65 + x.c) || CAST(x.r + 1 AS VARCHAR)",
                   """CASE WHEN x.s IS NULL THEN '' ELSE ' s="' || CAST(x.s AS VARCHAR) || '"' END""",
                   """CASE WHEN x.num THEN '><v>' || x.v ELSE ' t="s"><v>' || CAST(d.idx AS VARCHAR) END""")
    # the records' rows straight from `batch`, each string looked up in the shared strings by column
    cells = []
    for c, name in enumerate(CSV_COLUMNS):
        ref = f"'{chr(65 + c)}' || CAST(b.rn + {H + 1} AS VARCHAR)"
        if c == MONEY_COLUMN:
            money = cell(ref, f"""' s="{formats['money']}"'""", "'><v>' || printf('%.16G', CAST(b.amount AS DOUBLE))")
            cells.append(f"CASE WHEN b.amount IS NULL THEN '' ELSE {money} END")
        else:
            text = cell(ref, "''", f"""' t="s"><v>' || CAST(d{c}.idx AS VARCHAR)""")
            cells.append(f"CASE WHEN coalesce(b.{name}, '') = '' THEN '' ELSE {text} END")
    lookups = " ".join(f"LEFT JOIN xlsx_strings d{c} ON d{c}.v = {neutralised_sql('b.' + name)}"
                       for c, name in columns)
    sheet_data = con.execute(f"""
        WITH spans AS (  -- XlsxWriter's spans: the columns used in each block of 16 rows
            SELECT r // 16 AS block, CAST(min(c) + 1 AS VARCHAR) || ':' || CAST(max(c) + 1 AS VARCHAR) AS span
            FROM xlsx_cells GROUP BY block
        ),
        edges AS (  -- the heading, header, total and signature rows
            SELECT x.r, '<row r="' || CAST(x.r + 1 AS VARCHAR) || '" spans="' || min(span) || '">'
                        || string_agg({generic}, '' ORDER BY x.c) || '</row>' AS xml
            FROM xlsx_cells x LEFT JOIN xlsx_strings d ON NOT x.num AND d.v = x.v JOIN spans ON block = x.r // 16
            WHERE x.r <= {H} OR x.r > (SELECT count(*) + {H} FROM batch)
            GROUP BY x.r
        ),
        records AS (
            SELECT string_agg('<row r="' || CAST(b.rn + {H + 1} AS VARCHAR) || '" spans="' || span || '">'
                              || {' || '.join(cells)} || '</row>', '' ORDER BY b.rn) AS xml
            FROM batch b JOIN spans ON block = (b.rn + {H}) // 16 {lookups}
        )
        SELECT '<sheetData>' || (SELECT string_agg(xml, '' ORDER BY r) FROM edges WHERE r <= {H})
               || coalesce((SELECT xml FROM records), '')
               || (SELECT string_agg(xml, '' ORDER BY r) FROM edges WHERE r > {H}) || '</sheetData>'
    """).fetchone()[0]
    esc = _escape_control("v")
    shared = con.execute(f"""
        WITH escaped AS (SELECT idx, {esc} AS v FROM xlsx_strings)
        SELECT (SELECT count(*) FROM xlsx_cells WHERE NOT num), count(*),
               string_agg(CASE WHEN starts_with(v, '<r>') AND ends_with(v, '</r>') THEN '<si>' || v || '</si>'
                               ELSE '<si><t' || CASE WHEN regexp_matches(v, '^{_WS}|{_WS}$')
                                                     THEN ' xml:space="preserve"' ELSE '' END
                                    || '>' || replace(replace(replace(v, '&', '&amp;'), '<', '&lt;'), '>', '&gt;')
                                    || '</t></si>' END, '' ORDER BY idx)
        FROM escaped
    """).fetchone()
    count, total_text = con.execute(
        f"SELECT (SELECT count(*) FROM batch), max(v) FILTER (WHERE num AND s = {formats['money_bold']}) "
        "FROM xlsx_cells").fetchone()
    sst = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
           '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
           f'count="{shared[0]}" uniqueCount="{shared[1]}">{shared[2]}</sst>')
    con.execute("DROP TABLE xlsx_cells")
    con.execute("DROP TABLE xlsx_strings")
    return sheet_data, sst, int(count), total_text


def xlsx_bytes(con, month: str, bank_code: str, batch_id: str, part: int, debtor_name: str, debtor_account: str,
               execution_date: str) -> bytes:
    """The batch as an XLSX workbook (sheet 代发明细) laid out for printing and signing: XlsxWriter's
    workbook, with the sheet data and shared strings composed by xlsx_sheet. The formats are given
    their style numbers in the order XlsxWriter's own writing of these cells would (the money
    column first, then the title, bold, header and bold money, as the rows use them), so styles.xml
    and the cells' s= agree with it."""
    import io

    from xlsxwriter.packager import Packager

    from pipelines.spreadsheet import new_workbook, print_setup, signature_block, title_rows

    buf = io.BytesIO()
    wb, fmt = new_workbook(buf, month)
    formats = {name: fmt[name]._get_xf_index() for name in ("money", "title", "bold", "header", "money_bold")}
    count, total, bank_name = con.execute("SELECT count(*), coalesce(sum(amount), 0), "
                                          "coalesce(min(bank_name) FILTER (WHERE bank_name <> ''), '') FROM batch"
                                          ).fetchone()
    heading = xlsx_heading(month, bank_code, bank_name, batch_id, part, debtor_name, debtor_account, execution_date,
                           count, Decimal(total))
    sheet_data, sst, count, _total = xlsx_sheet(con, formats, heading)
    ws = wb.add_worksheet("代发明细")
    # as pipelines/spreadsheet.py lays out a printed table, less its rows (the query's): the cells
    # written here give the sheet its dimension, the calls its columns and page set-up
    H = XLSX_HEADER_ROW
    title_rows(ws, fmt, *heading)
    ws.write_row(H, 0, list(CSV_HEADERS_ZH), fmt["header"])
    ws.set_column(0, len(CSV_HEADERS_ZH) - 1, 16)
    ws.set_column(MONEY_COLUMN, MONEY_COLUMN, 14, fmt["money"])
    xlsx_layout(ws, fmt)
    ws.write_row(H + count + 1, 0, ["合计", f"{count} 笔"], fmt["bold"])
    ws.write_number(H + count + 1, MONEY_COLUMN, 0.0, fmt["money_bold"])
    print_setup(ws, (H, H), len(CSV_HEADERS_ZH) - 1)
    signature_block(ws, fmt, H + count + 2)
    ws._write_sheet_data = lambda: ws.fh.write(sheet_data)

    class SharedStringsFromQuery(Packager):
        def _write_shared_strings_file(self) -> None:
            self._filename("xl/sharedStrings.xml").write(sst)

    wb._get_packager = SharedStringsFromQuery
    wb.close()
    return buf.getvalue()


def xlsx_layout(ws, fmt) -> None:
    """The payout sheet's column widths (after write_table's) and frozen header."""
    for col, width in enumerate(XLSX_COLUMN_WIDTHS):
        ws.set_column(col, col, width, fmt["money"] if col == MONEY_COLUMN else None)
    ws.freeze_panes(XLSX_HEADER_ROW + 1, 0)


def sql_string_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def read_xlsx_totals(path: Path) -> tuple[int, Decimal]:
    """Count and sum of a payout workbook as a spreadsheet reads it (calamine, not the writer): the
    record rows between the header and the total row, whose count and sum must agree with them, as
    must the totals the heading states on the first page."""
    from python_calamine import CalamineWorkbook

    rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
    width = len(CSV_HEADERS_ZH)
    header = next((i for i, r in enumerate(rows) if tuple(r[:width]) == CSV_HEADERS_ZH), None)
    end = None if header is None else next((i for i in range(header + 1, len(rows)) if rows[i][0] == "合计"), None)
    if end is None:
        raise RunError(f"{path.name}: not a payout workbook (header or total row missing)")
    body = rows[header + 1:end]
    fen = sum(round(r[MONEY_COLUMN] * 100) for r in body)
    total = Decimal(fen).scaleb(-2)
    if rows[end][1] != f"{len(body)} 笔" or round(rows[end][MONEY_COLUMN] * 100) != fen:
        raise RunError(f"{path.name}: its total row says {rows[end][1]} / {rows[end][MONEY_COLUMN]}, its rows "
                       f"{len(body)} / {total:.2f}")
    stated = f"合计 {len(body)} 笔，金额 {total:,.2f} 元"
    if not any(r[0] == stated for r in rows[:header]):
        raise RunError(f"{path.name}: its heading does not say {stated!r}, as its rows add up")
    return len(body), total
