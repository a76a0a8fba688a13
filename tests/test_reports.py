"""The reports as their readers open them: workbooks in LibreOffice (headless), Data Docs and the
reconciliation page on disk, and no full ID number, account or name anywhere in them."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess

import pytest
from python_calamine import CalamineWorkbook

from tests.helpers import query

ID_RE = re.compile(r"(?<![0-9])[1-9][0-9]{16}[0-9X](?![0-9])")
ACCOUNT_RE = re.compile(r"(?<![0-9*])[0-9]{12,30}(?![0-9])")


def soffice_to_csv(xlsx, outdir):
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    assert soffice, "LibreOffice is installed by `make test` (make test-deps)"
    proc = subprocess.run([soffice, "--headless", "--norestore", f"-env:UserInstallation=file://{outdir}/profile",
                           "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76", "--outdir", str(outdir),
                           str(xlsx)], capture_output=True, text=True, timeout=180, check=False)
    out = outdir / (xlsx.stem + ".csv")
    assert proc.returncode == 0 and out.exists(), proc.stdout + proc.stderr
    with open(out, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def table_rows(sheet: list[list], header_row: int = 2) -> list[list]:
    """A printed sheet's table: the rows under its header, to the blank row before the signature."""
    rows = []
    for r in sheet[header_row + 1:]:
        if not any(c not in ("", None) for c in r):
            break
        rows.append(r)
    return rows


def test_workbooks_open_in_libreoffice(four_months, tmp_path):
    reports = four_months["out"] / "2020-03" / "reports"
    recon = soffice_to_csv(reports / "reconciliation.xlsx", tmp_path)
    assert "社会救助资金发放对账表" in recon[0][0]
    assert recon[2][0].startswith("临时发放（不断）：")  # the counties paid provisionally, before anything else
    assert recon[3][:4] == ["行政区划代码", "县区", "项目", "类型"]
    quarantine = soffice_to_csv(reports / "quarantine.xlsx", tmp_path)
    assert quarantine[0][0].startswith("2020-03 名册暂缓处理清单")
    assert quarantine[2][:2] == ["文件", "行号（数据行，从1起）"]
    # the sample inbox delivers temporary assistance: the first sheet is its first approving county's
    assert soffice_to_csv(reports / "temporary_assistance.xlsx", tmp_path)[0][0].startswith("2020-03 临时救助 21")
    from decimal import Decimal as D

    from pipelines.report import TEMPORARY_CASE_COLUMNS, render_temporary
    from tests.helpers import context

    # a month without cases: one sentence
    empty = tmp_path / "empty" / "temporary_assistance.xlsx"
    empty.parent.mkdir()
    empty.write_bytes(render_temporary(context(tmp_path, "2020-03"), [], []))
    assert soffice_to_csv(empty, tmp_path / "empty_converted")[0][0] == "2020-03 没有临时救助案件"
    # a county's sheet with a case, rendered from rows shaped as report._temporary_assistance returns
    # them, opened by LibreOffice
    case = ("210112", "浑南区", "LS-1", "110101********0041", "是", "失业滞留", "2020-03-02", "县级", "YSYY-1",
            D("5000.01"), D("1310.00"), D("5000.00"), "发放", "", "")
    finding = ("210112", "浑南区", "temporary_above_cap", "held", "210112********0052", "超过限额", "rosters/temporary/a.csv", 2)
    book = tmp_path / "temporary_assistance.xlsx"
    book.write_bytes(render_temporary(context(tmp_path, "2020-03"), [case], [finding]))
    sheet = soffice_to_csv(book, tmp_path / "converted")
    assert sheet[0][0] == "2020-03 临时救助 210112 浑南区"
    assert sheet[3][:4] == ["失业滞留", "1", "5000.01", "0"]  # the CSV filter writes the values, not the format
    assert TEMPORARY_CASE_COLUMNS == sheet[next(i for i, r in enumerate(sheet) if r[0] == "审批编号")][:13]


def test_quarantine_workbook_has_one_sheet_per_county_and_every_quarantined_row(four_months):
    reports = four_months["out"] / "2020-03" / "reports"
    wb = CalamineWorkbook.from_path(str(reports / "quarantine.xlsx"))
    rows = []
    for name in wb.sheet_names:
        assert re.match(r"^\d{6} ", name) or name.startswith("未知"), name
        sheet = wb.get_sheet_by_name(name).to_python()
        assert sheet[0][0] == f"2020-03 名册暂缓处理清单　{name}" and sheet[2][0] == "文件"
        table = sheet[3:sheet.index(next(r for r in sheet[3:] if not any(r)))]  # to the blank row
        assert sheet[1][0] == f"共 {len(table)} 行未予发放：请按“原因”更正后重新报送"
        rows += table
    expected = query(four_months["warehouse"], "SELECT count(*) FROM row_disposition WHERE payroll_month = '2020-03' "
                                               "AND disposition = 'quarantined'")[0][0]
    assert len(rows) == expected > 0
    assert all(r[0].startswith("rosters/") and int(r[1]) >= 1 and r[5] for r in rows)
    # each reason in words, after its code
    assert all(re.match(r"[A-Z_]+ [^\x00-\x7f]", r[5]) for r in rows), rows[0][5]


def test_data_docs_and_charts_exist(four_months):
    reports = four_months["out"] / "2020-03" / "reports"
    for program in ("dibao", "tekun", "orphan", "disability"):
        page = (reports / "data_docs" / f"{program}.html").read_text(encoding="utf-8")
        assert f"roster_{program}" in page and "Evaluated Expectations" in page
        assert "pandas_data_fingerprint" not in page  # hex that can look like an account number
        assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", page)  # GX's random uuids, likewise
        assert 'href="#section-1-content-block-3-collapse-body-block1"' in page
        assert "id=section-1-content-block-3-collapse-body-block1 " in page
    html = (reports / "reconciliation.html").read_text(encoding="utf-8")
    assert html.count("<svg") == 4 and 'class="bar"' in html
    assert "对账结果：台账、代发记录与代发文件一致" in html


@pytest.mark.parametrize("month", ["2020-01", "2020-04"])
def test_no_personal_data_in_reports(four_months, month):
    reports = four_months["out"] / month / "reports"
    names = {r[0] for r in query(four_months["warehouse"], "SELECT DISTINCT name FROM roster_row "
                                                           "WHERE length(name) >= 2")}
    texts = []
    for path in reports.rglob("*"):
        if path.suffix == ".html":
            texts.append(path.read_text(encoding="utf-8"))
        elif path.suffix == ".xlsx":
            wb = CalamineWorkbook.from_path(str(path))
            for sheet in wb.sheet_names:
                texts.append("\n".join("\t".join(str(c) for c in row)
                                       for row in wb.get_sheet_by_name(sheet).to_python()))
    assert texts
    for text in texts:
        assert not ID_RE.search(text)
        assert not ACCOUNT_RE.search(text)
        assert not [n for n in names if n in text]


def test_exception_list_has_every_finding_by_type_and_county(four_months, tmp_path):
    reports = four_months["out"] / "2020-03" / "reports"
    expected = dict(query(four_months["warehouse"], "SELECT finding_type, count(*) FROM finding "
                                                    "WHERE payroll_month = '2020-03' GROUP BY 1"))
    assert {"near_duplicate", "registry_vehicle", "account_changed_with_holder"} <= set(expected)
    wb = CalamineWorkbook.from_path(str(reports / "exceptions.xlsx"))
    assert wb.sheet_names[:2] == ["汇总", "应追缴"] and len(wb.sheet_names) == 2 + len(expected)
    summary = wb.get_sheet_by_name("汇总").to_python()
    assert summary[2] == ["类型", "行政区划代码", "县区", "处理", "条数"]
    assert sum(int(r[4]) for r in table_rows(summary)) == sum(expected.values())
    # the receivables recognised up to the month, one row each
    receivables = wb.get_sheet_by_name("应追缴").to_python()
    assert receivables[2][:4] == ["行政区划代码", "县区", "项目", "身份证号（脱敏）"]
    assert len(table_rows(receivables)) == query(four_months["warehouse"], "SELECT count(*) FROM receivable "
                                                                   "WHERE payroll_month <= '2020-03'")[0][0]
    listed = 0
    for name in wb.sheet_names[2:]:
        rows = wb.get_sheet_by_name(name).to_python()
        assert rows[2][:4] == ["行政区划代码", "县区", "项目", "身份证号（脱敏）"]
        counties = [r[0] for r in table_rows(rows)]
        assert counties == sorted(counties)  # by county within the type
        listed += len(table_rows(rows))
    assert listed == sum(expected.values())
    page = (reports / "exceptions.html").read_text(encoding="utf-8")
    assert all(f'<section id="{t}">' in page for t in expected)
    # auditors open it in LibreOffice too
    assert soffice_to_csv(reports / "exceptions.xlsx", tmp_path)[0][0].startswith("2020-03 异常与核查清单")


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB(A) scanlines of a PNG (8-bit truecolour, as Chromium writes it)."""
    import struct
    import zlib

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r[i:i + 3]) for r in rows for i in range(0, stride, bpp)]


def test_reconciliation_page_renders_its_charts_in_headless_chromium(four_months, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is installed by `make test` (make test-deps)"
    page = four_months["out"] / "2020-03" / "reports" / "reconciliation.html"
    shot = tmp_path / "page.png"
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1400", "--hide-scrollbars",
                           f"--screenshot={shot}", page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    width, height, pixels = _png_pixels(shot.read_bytes())
    assert (width, height) == (1200, 1400)
    # the bars of the charts are drawn in the page's bar colour (#2f6fae), in quantity
    bar = bytes((0x2F, 0x6F, 0xAE))
    assert sum(1 for px in pixels if px == bar) > 5000


def test_change_list_compares_with_the_previous_payroll_only_when_there_is_one(four_months):
    """The first payroll has no month before it: its change list says so instead of listing every
    unit as new (1.6 million rows at province scale); later months list what changed."""
    from pipelines.report import NO_PREVIOUS_PAYROLL

    def changes(month):
        wb = CalamineWorkbook.from_path(str(four_months["out"] / month / "reports" / "reconciliation.xlsx"))
        return wb.get_sheet_by_name("变动").to_python()

    assert changes("2020-01")[1][0] == NO_PREVIOUS_PAYROLL
    later = changes("2020-02")
    assert later[0][0] == "2020-02 与上月相比的变动"
    assert later[2][:4] == ["行政区划代码", "项目", "对象（脱敏）", "变动"] and len(later) > 3
    table = later[3:later.index(next(r for r in later[3:] if not any(r)))]
    assert table and {r[3] for r in table} <= {"新增", "停发", "金额变化"}
