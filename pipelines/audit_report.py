"""The auditors' exception list (issue 4): every finding of the month, by type and county.

`<out>/<YYYY-MM>/reports/exceptions.xlsx`: a summary sheet (type × county: how many, what was
done) and one sheet per finding type listing each finding, sorted by county, with the source file
and row a county can find it by; and the sheet 应追缴: every receivable recognised up to the month
(a line paid for a month after a death learnt later), by county, with what was recovered and what
is outstanding. `exceptions.html`: the same for a browser. ID numbers are masked; details are
written masked by the checks that produce them, and the free text they quote (a registry remark, a
bank's reason, a clearance note) is masked again here (macro mask_long_numbers).
"""

from __future__ import annotations

import datetime
import html
import io
import re

from pipelines import artefacts
from pipelines.io import atomic_path
from pipelines.settings import RunContext
from pipelines.spreadsheet import new_workbook, print_setup, signature_block, wrap_columns, write_table
from pipelines.vocabulary import FINDING_ACTIONS_ZH as ACTIONS_ZH
from pipelines.vocabulary import FINDING_TYPES, LINE_TYPE_ZH, PROGRAM_NAMES_ZH, SEVERITY_ZH

DETAIL_HEADERS = ["行政区划代码", "县区", "项目", "身份证号（脱敏）", "关联身份证号（脱敏）", "级别", "处理", "说明",
                  "文件", "行号"]


# a time doudi records (ISO 8601, UTC: a hold cleared, a bank return withdrawn), as quoted in a detail
UTC_TIME = re.compile(r"\b(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?(?:\+00:00|Z)")
LOCAL_ZONE = "Asia/Shanghai"


def local_times(text):
    """A text with every recorded UTC time in it as the bureau's clock reads it (北京时间)."""
    if not isinstance(text, str) or "T" not in text:
        return text
    from zoneinfo import ZoneInfo

    def local(m: re.Match) -> str:
        t = datetime.datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}+00:00").astimezone(ZoneInfo(LOCAL_ZONE))
        return t.strftime("%Y-%m-%d %H:%M") + "（北京时间）"

    return UTC_TIME.sub(local, text)


def query_findings(con, month: str) -> list[tuple]:
    """con has the warehouse attached as `wh` and stg_regions built."""
    return con.execute("""
        SELECT f.finding_type, coalesce(f.region_code, '') AS region_code, coalesce(r.county_name, '') AS county,
               f.program, mask_id(f.id_number), mask_id(f.related_id_number), f.severity, f.action,
               mask_long_numbers(f.detail),
               f.source_file, f.source_row
        FROM wh.finding f LEFT JOIN stg_regions r USING (region_code)
        WHERE f.payroll_month = ?
        ORDER BY f.finding_type, f.region_code NULLS LAST, f.source_file, f.source_row, f.finding_id""",
                       [month]).fetchall()


RECEIVABLE_HEADERS = ["行政区划代码", "县区", "项目", "身份证号（脱敏）", "发放月份", "所属月份", "款项类型", "金额",
                      "已追回/核销", "未追回", "状态", "死亡月份", "登记报送月份", "支付流水号", "认定月份"]
RECEIVABLE_STATUS_ZH = {"open": "待追缴", "settled": "已结清", "withdrawn": "登记已撤回（不再追缴）"}


def query_receivables(con, month: str) -> list[tuple]:
    """Every receivable recognised up to `month`, by county (con: warehouse attached as `wh`)."""
    from pipelines.sqlrun import tables_in

    if not {"receivable", "receivable_recovery", "registry_withdrawal"} <= tables_in(con, "wh"):
        return []
    return con.execute("""
        WITH recovered AS (SELECT receivable_id, sum(amount) AS amount FROM wh.receivable_recovery GROUP BY 1),
             withdrawn AS (SELECT DISTINCT id_number FROM wh.registry_withdrawal
                           WHERE registry = 'deaths' AND effective_payroll <= ?)
        SELECT coalesce(r.region_code, ''), coalesce(g.county_name, ''), r.program, mask_id(r.id_number),
               r.paid_payroll, r.service_month, r.line_type, r.amount, coalesce(x.amount, 0),
               r.amount - coalesce(x.amount, 0),
               CASE WHEN w.id_number IS NOT NULL THEN 'withdrawn'
                    WHEN coalesce(x.amount, 0) >= r.amount THEN 'settled' ELSE 'open' END,
               r.death_month, r.reported_month, r.payment_ref, r.payroll_month
        FROM wh.receivable r
        LEFT JOIN recovered x USING (receivable_id)
        LEFT JOIN withdrawn w USING (id_number)
        LEFT JOIN stg_regions g ON g.region_code = r.region_code
        WHERE r.payroll_month <= ?
        ORDER BY 1, r.id_number, r.service_month, r.program, r.line_type""", [month, month]).fetchall()


def _receivable_row(r: tuple) -> list:
    row = list(r)
    row[2] = PROGRAM_NAMES_ZH.get(row[2], row[2])
    row[6] = LINE_TYPE_ZH.get(row[6], row[6])
    row[10] = RECEIVABLE_STATUS_ZH.get(row[10], row[10])
    return row


def _detail_row(f: tuple) -> list:
    _type, region, county, program, pid, related, severity, action, detail, source_file, source_row = f
    return [region, county, PROGRAM_NAMES_ZH.get(program, program or ""), pid, related,
            SEVERITY_ZH.get(severity, severity), ACTIONS_ZH.get(action, action), local_times(detail), source_file,
            source_row]


def summarise(findings: list[tuple]) -> list[list]:
    counts: dict[tuple, int] = {}
    for f in findings:
        key = (f[0], f[1], f[2], f[7])
        counts[key] = counts.get(key, 0) + 1
    return [[FINDING_TYPES.get(t, t), region, county, ACTIONS_ZH.get(a, a), n]
            for (t, region, county, a), n in sorted(counts.items())]


def html_table(headers, rows) -> str:
    """An HTML table, every value escaped; shared by the report pages."""
    esc = html.escape
    head = "".join(f"<th>{esc(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc('' if v is None else str(v))}</td>" for v in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


SIGNATURE_HTML = ('<p class="signature">制表人：__________　　审核人：__________　　负责人：__________　　'
                  '日期：______年____月____日</p>')
# Printing (issue 21): A4 landscape; every table within the page's width (a long value wraps, no
# column is cut on the right); headers repeated on each page; a heading kept with its table.
PRINT_CSS = """@page{size:A4 landscape;margin:12mm}
@media print{body{margin:0;max-width:none;font-size:11px}table{width:100%}td,th{font-size:10px;padding:2px 4px}
thead{display:table-header-group}tr{break-inside:avoid}h1,h2{break-after:avoid}svg{max-width:100%;height:auto}
#charts{break-after:page}}"""


def write_exceptions(ctx: RunContext, findings: list[tuple], receivables: list[tuple] = ()) -> dict:
    ctx.reports_dir.mkdir(parents=True, exist_ok=True)
    book = artefacts.exceptions_xlsx(ctx)
    with atomic_path(book) as tmp:
        tmp.write_bytes(render_xlsx(ctx, findings, receivables))
    page = artefacts.exceptions_html(ctx)
    with atomic_path(page) as tmp:
        tmp.write_text(render_html(ctx, findings, receivables), encoding="utf-8")
    return {"exceptions_xlsx": str(book), "exceptions_html": str(page), "findings": len(findings),
            "receivables": len(receivables)}


def _receivables_title(month: str, receivables) -> str:
    outstanding = sum((r[9] for r in receivables if r[10] == "open"), start=0)
    return (f"{month} 应追缴清单（截至本月认定 {len(receivables)} 笔，待追缴合计 {outstanding} 元）：死亡等信息晚到、"
            "已发放的款项；不自动扣减以后的发放")


def _by_type(findings: list[tuple]) -> dict[str, list[tuple]]:
    grouped: dict[str, list[tuple]] = {}
    for f in findings:
        grouped.setdefault(f[0], []).append(f)
    return grouped


def _printable(ws, fmt, last_col: int, end: int, landscape: bool = True) -> None:
    """A4, fit to width, the title and header (rows 0 to 2) on every page, signed under the table."""
    print_setup(ws, (2, 2), last_col, landscape=landscape)
    signature_block(ws, fmt, end)


def render_xlsx(ctx: RunContext, findings: list[tuple], receivables=()) -> bytes:
    buf = io.BytesIO()
    wb, fmt = new_workbook(buf, ctx.month)
    ws = wb.add_worksheet("汇总")
    ws.write(0, 0, f"{ctx.month} 异常与核查清单（按类型、县区）：共 {len(findings)} 条", fmt["title"])
    end = write_table(ws, fmt, ["类型", "行政区划代码", "县区", "处理", "条数"], summarise(findings), start_row=2)
    ws.set_column(0, 0, 44)
    _printable(ws, fmt, 4, end, landscape=False)
    rs = wb.add_worksheet("应追缴")
    rs.write(0, 0, _receivables_title(ctx.month, receivables), fmt["title"])
    end = write_table(rs, fmt, RECEIVABLE_HEADERS, [_receivable_row(r) for r in receivables], start_row=2)
    _printable(rs, fmt, len(RECEIVABLE_HEADERS) - 1, end)
    used: set[str] = {"汇总", "应追缴"}
    for finding_type, items in _by_type(findings).items():
        # sheet names: at most 31 characters, unique, without []:*?/\
        name = FINDING_TYPES.get(finding_type, finding_type)
        for ch in "[]:*?/\\":
            name = name.replace(ch, "")
        name = name[:28]
        while name in used:
            name = name[:26] + f"_{len(used)}"
        used.add(name)
        sheet = wb.add_worksheet(name)
        title = f"{ctx.month} {FINDING_TYPES.get(finding_type, finding_type)}（{finding_type}）：{len(items)} 条"
        sheet.write(0, 0, title, fmt["title"])
        end = write_table(sheet, fmt, DETAIL_HEADERS, [_detail_row(f) for f in items], start_row=2)
        sheet.set_column(3, 4, 22)
        wrap_columns(sheet, fmt, {7: 70, 8: 34})
        _printable(sheet, fmt, len(DETAIL_HEADERS) - 1, end)
    wb.close()
    return buf.getvalue()


def render_html(ctx: RunContext, findings: list[tuple], receivables=()) -> str:
    esc = html.escape
    table = html_table
    sections = []
    for finding_type, items in _by_type(findings).items():
        title = f"{FINDING_TYPES.get(finding_type, finding_type)}（{finding_type}，{len(items)} 条）"
        sections.append(f'<section id="{esc(finding_type)}"><h2>{esc(title)}</h2>'
                        f"{table(DETAIL_HEADERS, [_detail_row(f) for f in items])}</section>")
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{esc(ctx.month)} 异常与核查清单</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;overflow-wrap:anywhere}}th{{background:#fde9d9}}
.signature{{margin-top:3em}}
{PRINT_CSS}</style>
</head><body>
<h1>{esc(ctx.month)} 异常与核查清单</h1>
<p>共 {len(findings)} 条。身份证号已脱敏；“文件”“行号”指县区报送文件中的数据行（从 1 起）。</p>
<h2>汇总（类型 × 县区）</h2>{table(["类型", "行政区划代码", "县区", "处理", "条数"], summarise(findings))}
<section id="receivables"><h2>{esc(_receivables_title(ctx.month, receivables))}</h2>
{table(RECEIVABLE_HEADERS, [_receivable_row(r) for r in receivables])}</section>
{"".join(sections)}
{SIGNATURE_HTML}
</body></html>
"""
