"""The payout renderers doudi used before issue 22, row by row in Python (the csv module, XlsxWriter
cell by cell, an lxml tree): kept as the oracle the tests compare pipelines/payout_render.py's
DuckDB-composed files with, byte for byte. Never used by the pipeline."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from pipelines.payout_render import CSV_COLUMNS, CSV_HEADERS_ZH, PAIN001_NS, lxml_schema, xlsx_heading, xlsx_layout
from pipelines.settings import RunContext, RunError


def render_batch(ctx: RunContext, formats: list[str], stem: str, rows: list[tuple], bank_code: str,
                 batch_id: str) -> tuple[Decimal, list[tuple[str, str, bytes]]]:
    """Every format of one payout file: (total, [(format, file name, bytes)]). `rows` as
    pipelines/payout.py used to fetch them: the CSV columns, then the BIC, in file order."""
    total = sum((r[5] for r in rows), Decimal("0.00"))
    return total, [(fmt, *render(ctx, fmt, stem, rows, bank_code, batch_id, total)) for fmt in formats]


def render(ctx: RunContext, fmt: str, stem: str, rows: list[tuple], bank_code: str, batch_id: str,
           total: Decimal) -> tuple[str, bytes]:
    if fmt in ("csv", "csv_gbk"):
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow(CSV_COLUMNS)
        for r in rows:
            w.writerow([*r[:5], f"{r[5]:.2f}", *r[6:9]])
        text = buf.getvalue()
        if fmt == "csv":
            return f"{stem}.csv", text.encode("utf-8")
        return f"{stem}.gbk.csv", text.encode("gb18030")
    if fmt == "xlsx":
        part = int(stem.rsplit("_", 1)[1])
        return f"{stem}.xlsx", render_xlsx(ctx, rows, total, bank_code, batch_id, part)
    if fmt == "pain001":
        return f"{stem}.pain001.xml", render_pain001(ctx, stem, rows, batch_id, total)
    raise RunError(f"unknown payout format {fmt!r} (DOUDI_PAYOUT_FORMATS takes csv_gbk, xlsx, pain001)")


def render_xlsx(ctx: RunContext, rows: list[tuple], total: Decimal, bank_code: str, batch_id: str,
                part: int) -> bytes:
    """Laid out for printing and signing (issue 21): the heading (bank and batch, paying account and
    date, the totals), the table, the total row, the signature; A4 landscape, fit to width."""
    from pipelines.spreadsheet import new_workbook, print_setup, signature_block, title_rows, write_table

    s = ctx.settings
    buf = io.BytesIO()
    wb, fmt = new_workbook(buf, ctx.month)
    ws = wb.add_worksheet("代发明细")
    bank_name = min((r[4] for r in rows if r[4]), default="")
    heading = xlsx_heading(ctx.month, bank_code, bank_name, batch_id, part, s.debtor_name, s.debtor_account,
                           f"{ctx.month}-01", len(rows), total)
    header_row = title_rows(ws, fmt, *heading) + 1
    end = write_table(ws, fmt, CSV_HEADERS_ZH, [[*r[:5], r[5], *r[6:9]] for r in rows], money_columns={5},
                      start_row=header_row)
    xlsx_layout(ws, fmt)
    ws.write_row(end, 0, ["合计", f"{len(rows)} 笔"], fmt["bold"])
    ws.write_number(end, 5, float(total), fmt["money_bold"])
    print_setup(ws, (header_row, header_row), len(CSV_HEADERS_ZH) - 1)
    signature_block(ws, fmt, end + 1)
    wb.close()
    return buf.getvalue()


def render_pain001(ctx: RunContext, stem: str, rows: list[tuple], batch_id: str, total: Decimal) -> bytes:
    """ISO 20022 pain.001.001.09, Chinese accounts as `Othr/Id`, amounts in CNY."""
    from lxml import etree

    from pipelines.payout import execution_date

    s = ctx.settings
    ns = PAIN001_NS
    E = lambda tag, parent=None, text=None: _el(etree, ns, tag, parent, text)  # noqa: E731
    doc = etree.Element(f"{{{ns}}}Document", nsmap={None: ns})
    root = E("CstmrCdtTrfInitn", doc)
    hdr = E("GrpHdr", root)
    E("MsgId", hdr, stem[:35])
    # a fixed creation time (the first of the payroll month) keeps reruns byte-identical
    E("CreDtTm", hdr, f"{ctx.month}-01T00:00:00+08:00")
    E("NbOfTxs", hdr, str(len(rows)))
    E("CtrlSum", hdr, f"{total:.2f}")
    E("Nm", E("InitgPty", hdr), s.debtor_name)
    pmt = E("PmtInf", root)
    E("PmtInfId", pmt, stem.replace("-", "").replace("_", "")[:35])
    E("PmtMtd", pmt, "TRF")
    E("NbOfTxs", pmt, str(len(rows)))
    E("CtrlSum", pmt, f"{total:.2f}")
    E("Dt", E("ReqdExctnDt", pmt), execution_date(ctx.month, s.execution_day))
    E("Nm", E("Dbtr", pmt), s.debtor_name)
    E("Id", E("Othr", E("Id", E("DbtrAcct", pmt))), s.debtor_account)
    E("BICFI", E("FinInstnId", E("DbtrAgt", pmt)), s.debtor_bic)
    for ref, name, account, _bank_code, _bank_name, amount, _programs, _region, memo, bic in rows:
        tx = E("CdtTrfTxInf", pmt)
        E("EndToEndId", E("PmtId", tx), ref)
        amt = E("InstdAmt", E("Amt", tx), f"{amount:.2f}")
        amt.set("Ccy", "CNY")
        if bic:
            E("BICFI", E("FinInstnId", E("CdtrAgt", tx)), bic)
        E("Nm", E("Cdtr", tx), (name or "")[:140])
        E("Id", E("Othr", E("Id", E("CdtrAcct", tx))), account)
        E("Ustrd", E("RmtInf", tx), (memo or "")[:140])
    data = etree.tostring(doc, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    validate_pain001(data)
    return data


def _el(etree, ns, tag, parent, text):
    el = etree.SubElement(parent, f"{{{ns}}}{tag}") if parent is not None else etree.Element(f"{{{ns}}}{tag}")
    if text is not None:
        el.text = text
    return el


def validate_pain001(data: bytes) -> None:
    from lxml import etree

    schema = lxml_schema()
    if not schema.validate(etree.fromstring(data)):
        err = schema.error_log.last_error
        raise RunError(f"pain.001 file fails the XSD: {err.message} (line {err.line})")
