"""The reports as the finance bureau prints and signs them (issue 21): every workbook of a month's
reports/ and payouts/ printed to PDF by LibreOffice, the reconciliation and exception pages by
Chromium, and the printed pages read back by pdftotext. On the first page: the title, the month and
the grand total. On every page: the title (repeated rows), nothing beyond the page's right edge, and
a sheet's last column on its first page (fit to width: one page across). The last page is signed."""

from __future__ import annotations

import re
import shutil
import subprocess
from decimal import Decimal
from html import unescape

import pytest
from python_calamine import CalamineWorkbook

from tests.helpers import query

MONTH = "2020-03"


def _which(*names: str) -> str:
    found = next((shutil.which(n) for n in names if shutil.which(n)), None)
    assert found, f"{names[0]} is installed by `make test` (make test-deps)"
    return found


def xlsx_to_pdf(books: list, outdir) -> None:
    """One LibreOffice for every workbook: each printed with its own page set-up."""
    soffice = _which("soffice", "libreoffice")
    proc = subprocess.run([soffice, "--headless", "--norestore", f"-env:UserInstallation=file://{outdir}/profile",
                           "--convert-to", "pdf", "--outdir", str(outdir), *map(str, books)],
                          capture_output=True, text=True, timeout=600, check=False)
    missing = [b.name for b in books if not (outdir / (b.stem + ".pdf")).exists()]
    assert proc.returncode == 0 and not missing, (missing, proc.stdout + proc.stderr)


def html_to_pdf(page, pdf, profile) -> None:
    chromium = _which("chromium", "chromium-browser")
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={profile}", "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
                           page.as_uri()], capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0 and pdf.exists(), proc.stderr[-2000:]


WORD_RE = re.compile(r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)" yMax="[\d.]+">(.*?)</word>')
PAGE_RE = re.compile(r'<page width="([\d.]+)" height="[\d.]+">(.*?)</page>', re.S)


def printed_pages(pdf) -> list[tuple[str, float, float]]:
    """Each page of a PDF as (its text without white space, its width, the right edge of its
    rightmost word), by pdftotext (poppler)."""
    proc = subprocess.run([_which("pdftotext"), "-bbox", str(pdf), "-"], capture_output=True, text=True,
                          timeout=120, check=True)
    pages = []
    for width, body in PAGE_RE.findall(proc.stdout):
        words = WORD_RE.findall(body)
        text = "".join(unescape(w[2]) for w in words)
        pages.append((text, float(width), max((float(w[1]) for w in words), default=0.0)))
    return pages


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", str(text))


def sheets_of(book) -> list[tuple[str, str]]:
    """(title, last column header) of each sheet, read by calamine: the title is the first cell, the
    header the first row of several cells under it."""
    wb = CalamineWorkbook.from_path(str(book))
    out = []
    for name in wb.sheet_names:
        rows = wb.get_sheet_by_name(name).to_python()
        header = next((r for r in rows[1:] if sum(1 for c in r if c != "") >= 2), [""])
        out.append((rows[0][0], squeeze([c for c in header if c != ""][-1] if any(header) else "")))
    return out


def has_title(text: str, title: str) -> bool:
    """pdftotext may order the parts of a title (split at its spaces) apart: each part is there."""
    return all(part in text for part in str(title).split())


@pytest.fixture(scope="module")
def printed(four_months, tmp_path_factory) -> dict:
    """The month's workbooks (reports/ and the first payout workbooks of payouts/) and its two pages,
    printed to PDF once for the module's tests."""
    month_dir = four_months["out"] / MONTH
    outdir = tmp_path_factory.mktemp("printed")
    books = sorted((month_dir / "reports").glob("*.xlsx")) + sorted((month_dir / "payouts").glob("*.xlsx"))[:3]
    assert len(books) >= 8, books
    xlsx_to_pdf(books, outdir)
    pages = {b.name: printed_pages(outdir / (b.stem + ".pdf")) for b in books}
    for page in ("reconciliation.html", "exceptions.html"):
        pdf = outdir / (page + ".pdf")
        html_to_pdf(month_dir / "reports" / page, pdf, outdir / "chromium")
        pages[page] = printed_pages(pdf)
    return {"books": {b.name: b for b in books}, "pages": pages}


def test_every_printed_page_is_within_the_page_and_titled(printed):
    """Nothing is printed beyond a page's right edge; each workbook's pages each carry a sheet's title
    (repeated rows), and each sheet's first page its last column (one page across); the last page of
    each report carries the signature block (the payout workbooks' and quarantine sheets' their last)."""
    for name, pages in printed["pages"].items():
        assert pages, name
        for i, (_text, width, right) in enumerate(pages, start=1):
            assert right <= width + 0.5, f"{name} page {i}: a word ends at {right}, the page at {width}"
        assert any("制表人" in text and "负责人" in text for text, _w, _r in pages), f"{name} is not signed"
        if name.endswith(".xlsx"):
            sheets = sheets_of(printed["books"][name])
            for i, (text, _w, _r) in enumerate(pages, start=1):
                assert any(has_title(text, title) for title, _ in sheets), f"{name} page {i} has no title: {text[:80]}"
            for title, last_header in sheets:
                first = next((text for text, _w, _r in pages if has_title(text, title)), None)
                assert first is not None, f"{name}: sheet {title} not printed"
                assert last_header in first, f"{name}: {title}'s last column {last_header} is not on its first page"


def test_first_page_has_title_month_and_grand_total(printed, four_months):
    wh = four_months["warehouse"]
    pages = printed["pages"]
    ledger = query(wh, "SELECT sum(amount), count(DISTINCT payment_ref) FROM payment_ledger "
                       "WHERE payroll_month = ? AND status = 'payable'", [MONTH])[0]
    grand = f"{ledger[0]:,.2f}"
    for name, title in (("reconciliation.xlsx", "社会救助资金发放对账表"), ("reconciliation.html", "社会救助资金发放对账报告")):
        first = pages[name][0][0]
        assert title in first and MONTH in first and grand in first, (name, first[:300])
    # the fund split and the totals per bank, labelled: on the page, no raw code
    html = (four_months["out"] / MONTH / "reports" / "reconciliation.html").read_text(encoding="utf-8")
    assert "中央负担" in html and "县级负担" in html and 'id="banks"' in html
    for code in ("<td>arrears</td>", "<td>awaiting_account_correction</td>", "<td>paid_and_flagged</td>",
                 "<td>warning</td>", "<td>regular</td>"):
        assert code not in html, code

    findings = query(wh, "SELECT count(*) FROM finding WHERE payroll_month = ?", [MONTH])[0][0]
    for name in ("exceptions.xlsx", "exceptions.html"):
        first = pages[name][0][0]
        assert "异常与核查清单" in first and MONTH in first and f"共{findings}条" in first, (name, first[:300])

    quarantined = query(wh, "SELECT region_code, count(*) FROM row_disposition WHERE payroll_month = ? "
                            "AND disposition = 'quarantined' GROUP BY 1 ORDER BY 1 NULLS LAST", [MONTH])
    first = pages["quarantine.xlsx"][0][0]
    assert f"{MONTH}名册暂缓处理清单{quarantined[0][0]}" in first and f"共{quarantined[0][1]}行" in first, first[:300]
    # a county of a few rows prints on one page: the workbook, one page a county
    assert len(pages["quarantine.xlsx"]) == len(quarantined)
    assert all("制表人" in text for text, _w, _r in pages["quarantine.xlsx"])

    first = pages["temporary_assistance.xlsx"][0][0]
    assert f"{MONTH}临时救助" in first and "发放" in first and "元" in first

    for name, book in printed["books"].items():
        if book.parent.name != "payouts":
            continue
        count, total = query(wh, "SELECT count, sum FROM payout_file WHERE payroll_month = ? AND name = ?",
                             [MONTH, name])[0]
        first = pages[name][0][0]
        assert f"{MONTH}社会救助资金代发明细" in first and "付款账号" in first and "代发日期" in first, first[:300]
        assert f"合计{count}笔，金额{Decimal(total):,.2f}元" in first
        # the total row's count and its sum on one page, the last, which is signed
        assert f"{count}笔" in pages[name][-1][0] and "制表人" in pages[name][-1][0]


@pytest.mark.unit
def test_recorded_utc_times_are_printed_as_beijing_time():
    from pipelines.audit_report import local_times

    assert local_times("已由 张三 于 2020-03-05T16:30:00+00:00 撤回") == "已由 张三 于 2020-03-06 00:30（北京时间） 撤回"
    assert local_times("2020-03 月 T 台账") == "2020-03 月 T 台账" and local_times(None) is None


@pytest.mark.unit
def test_a_county_sheet_is_set_up_for_a4_and_signed(tmp_path):
    """A quarantine sheet from rows shaped as report.reconcile_and_report queries them: titled with the
    month and county, reasons in words, landscape A4 fit to one page across, title and header rows
    repeated, the print area ending with the signature block; and byte-identical when rendered again."""
    import openpyxl

    from pipelines.report import render_quarantine
    from tests.helpers import context

    rows = [("210102", "和平区", "rosters/dibao/210102_dibao_202003.csv", 7, "dibao", "210102********0011", "张*",
             "ID_CHECK_DIGIT 身份证号校验位错误，请核对号码")]
    ctx = context(tmp_path, MONTH)
    data = render_quarantine(ctx, rows)
    assert render_quarantine(ctx, rows) == data
    book = tmp_path / "quarantine.xlsx"
    book.write_bytes(data)
    ws = openpyxl.load_workbook(book).worksheets[0]
    assert ws["A1"].value == f"{MONTH} 名册暂缓处理清单　210102 和平区" and ws["A3"].value == "文件"
    assert ws["F4"].value == "ID_CHECK_DIGIT 身份证号校验位错误，请核对号码"
    assert ws.page_setup.orientation == "landscape" and ws.page_setup.paperSize == 9
    # one page across (1, the default, is left unwritten), as many down as needed
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth in (None, 1)
    assert ws.page_setup.fitToHeight == 0
    assert ws.print_title_rows == "$1:$3"
    assert ws["A6"].value.startswith("制表人") and ws.print_area == "'210102 和平区'!$A$1:$F$6"


@pytest.mark.unit
def test_the_signature_block_fits_a_narrow_sheet(tmp_path):
    """Two columns of 16 characters take a signer a line; the print area ends with the last."""
    import openpyxl
    import xlsxwriter

    from pipelines.spreadsheet import SIGNATURE_PARTS, print_setup, signature_block

    book = tmp_path / "narrow.xlsx"
    wb = xlsxwriter.Workbook(str(book))
    fmt = {"bold": wb.add_format({"bold": True})}
    ws = wb.add_worksheet("窄")
    ws.set_column(0, 1, 16)
    print_setup(ws, (0, 0), 1, landscape=False)
    assert signature_block(ws, fmt, 3) == 8
    wb.close()
    sheet = openpyxl.load_workbook(book).worksheets[0]
    assert [sheet.cell(r, 1).value for r in range(5, 9)] == list(SIGNATURE_PARTS)
    assert sheet.print_area == "'窄'!$A$1:$B$8" and sheet.page_setup.orientation == "portrait"
