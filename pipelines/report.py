"""Stage 7, report: reconciliation for finance and audit, and the quarantine workbook for counties.

Reads the published month from the warehouse (read-only) and the payout files from disk, checks
ledger ↔ payout records ↔ payout files (every file re-read: SHA-256, record count, control sum),
and writes under `<out>/<YYYY-MM>/reports/`:

- reconciliation.xlsx  summary by county × program with fund parts and control totals, the payout
                       files, changes since last month, findings
- reconciliation.html  the same for reading in a browser, with charts (inline SVG, no network)
- quarantine.xlsx      every quarantined row, one sheet per county, named by file and row number
- temporary_assistance.xlsx  临时救助 by approving county: cases by event, amounts against caps,
                       一事一议, people from elsewhere, also on a monthly program, findings
- validation/<county>.html  for each county's caseworkers, in Chinese: each validation rule its rows
                       broke, and the rows to fix (pipelines/caseworker_page.py)
- exceptions.xlsx/html every finding, by type and county, for auditors (pipelines/audit_report.py)
- statistical_return.xlsx  the monthly statistical return by city and county and the raise's progress
                       (pipelines/watch.py)

and, for caseworkers, under `<out>/<YYYY-MM>/casework/` the watch list (监测预警名单) and the visit
list (走访探视名单) of each county, with names (pipelines/watch.py).

ID numbers, names and accounts are masked everywhere in the reports; the caseworkers' lists name
people (ID numbers and accounts masked).
"""

from __future__ import annotations

import html
import io
from decimal import Decimal

from pipelines import artefacts
from pipelines.audit_report import (
    PRINT_CSS,
    SIGNATURE_HTML,
    html_table,
    local_times,
    query_findings,
    query_receivables,
    write_exceptions,
)
from pipelines.caseworker_page import write_caseworker_pages
from pipelines.faults import checkpoint
from pipelines.io import atomic_path
from pipelines.lifecycle import read_manifest, read_payout_csv, reconcile  # noqa: F401  (importable here as before)
from pipelines.months import shift_month
from pipelines.settings import RunContext
from pipelines.spreadsheet import (
    new_workbook,
    print_setup,
    printed_width,
    signature_block,
    title_rows,
    wrap_columns,
    write_table,
)
from pipelines.sqlrun import attach_warehouse, connect, register_reference, run_model, tables_in
from pipelines.vocabulary import (
    DISPOSITIONS_ZH,
    FINDING_ACTIONS_ZH,
    FINDING_TYPES,
    FUND_LEVELS_ZH,
    LINE_TYPE_ZH,
    PAYOUT_FORMATS_ZH,
    PROGRAM_NAMES_ZH,
    REASONS,
    SEVERITY_ZH,
    label,
)
from pipelines.watch import write_watch_reports


def reconcile_and_report(ctx: RunContext) -> dict:
    con = connect(ctx)
    attach_warehouse(con, ctx.warehouse)
    register_reference(con, ctx.reference)
    run_model(con, "staging/stg_regions.sql")
    m = ctx.month
    manifest = read_manifest(ctx)
    checks = reconcile(ctx, con, manifest)
    summary = con.execute("""
        SELECT l.region_code, coalesce(r.county_name, '') AS county, l.program, l.line_type,
               count(*) AS lines, count(DISTINCT l.id_number) AS persons, sum(l.amount) AS amount,
               sum(l.fund_central), sum(l.fund_provincial), sum(l.fund_city), sum(l.fund_county)
        FROM wh.payment_ledger l LEFT JOIN stg_regions r USING (region_code)
        WHERE l.payroll_month = ? AND l.status = 'payable'
        GROUP BY ALL ORDER BY ALL""", [m]).fetchall()
    by_program = con.execute("""
        SELECT program, line_type, count(*), sum(amount) FROM wh.payment_ledger
        WHERE payroll_month = ? AND status = 'payable' GROUP BY ALL ORDER BY ALL""", [m]).fetchall()
    held = con.execute("""SELECT program, hold_reason, count(*), sum(amount) FROM wh.payment_ledger
        WHERE payroll_month = ? AND status = 'held' GROUP BY ALL ORDER BY ALL""", [m]).fetchall()
    trend = con.execute("""
        SELECT payroll_month, sum(amount) FILTER (WHERE line_type <> 'price_subsidy'),
               sum(amount) FILTER (WHERE line_type = 'price_subsidy'), count(DISTINCT id_number)
        FROM wh.payment_ledger WHERE status = 'payable' AND payroll_month <= ?
        GROUP BY 1 ORDER BY 1""", [m]).fetchall()
    # the first payroll the warehouse holds has nothing to compare with: every unit would be "new",
    # millions of rows at province scale, so the change list says so instead
    has_previous = con.execute("SELECT count(*) > 0 FROM wh.payment_ledger WHERE payroll_month = ?",
                               [shift_month(m, -1)]).fetchone()[0]
    changes = [] if not has_previous else con.execute("""
        WITH cur AS (SELECT unit_key, program, sum(amount) AS amount, min(region_code) AS region_code
                     FROM wh.payment_ledger WHERE payroll_month = ? AND line_type = 'regular' GROUP BY ALL),
             prev AS (SELECT unit_key, program, sum(amount) AS amount, min(region_code) AS region_code
                      FROM wh.payment_ledger WHERE payroll_month = ? AND line_type = 'regular' GROUP BY ALL)
        SELECT coalesce(c.region_code, p.region_code), coalesce(c.program, p.program), mask_id(coalesce(c.unit_key, p.unit_key)),
               CASE WHEN p.unit_key IS NULL THEN '新增' WHEN c.unit_key IS NULL THEN '停发' ELSE '金额变化' END,
               p.amount, c.amount
        FROM cur c FULL JOIN prev p USING (unit_key, program)
        WHERE p.unit_key IS NULL OR c.unit_key IS NULL OR c.amount <> p.amount
        ORDER BY 1, 2, 4, 3""", [m, shift_month(m, -1)]).fetchall()
    findings = con.execute("""
        SELECT coalesce(region_code, ''), finding_type, severity, program, mask_id(id_number), action,
               mask_long_numbers(detail),
               source_file, source_row
        FROM wh.finding WHERE payroll_month = ? ORDER BY finding_type, region_code, source_file, source_row""",
                           [m]).fetchall()
    quarantined = con.execute("""
        SELECT d.region_code, coalesce(r.county_name, '未知'), d.source_file, d.source_row, d.program,
               mask_id(d.id_number), mask_name(rr.name), d.reasons
        FROM wh.row_disposition d
        LEFT JOIN wh.roster_row rr ON rr.payroll_month = d.payroll_month AND rr.source_file = d.source_file
             AND rr.source_row = d.source_row
        LEFT JOIN stg_regions r ON r.region_code = d.region_code
        WHERE d.payroll_month = ? AND d.disposition = 'quarantined'
        ORDER BY d.region_code NULLS LAST, d.source_file, d.source_row""", [m]).fetchall()
    dispositions = con.execute("""SELECT program, disposition, count(*) FROM wh.row_disposition
        WHERE payroll_month = ? GROUP BY ALL ORDER BY ALL""", [m]).fetchall()
    # the records each bank is sent, by batch (the bank's name from banks.csv where it has one)
    by_bank = con.execute("""SELECT p.bank_code, coalesce(min(b.bank_name), min(p.bank_name), ''), p.batch_id,
               count(*), sum(p.amount)
        FROM wh.payout_record p LEFT JOIN raw_banks b USING (bank_code)
        WHERE p.payroll_month = ? GROUP BY p.bank_code, p.batch_id ORDER BY 1, 3""", [m]).fetchall()
    provisional = provisional_counties(con, m)
    exceptions = query_findings(con, m)
    receivables = query_receivables(con, m)
    failures, three_way = _failures(con, m)
    temporary = _temporary_assistance(con, m)
    watch = write_watch_reports(ctx, con)  # issue 20: watch and visit lists, statistical return
    pages = write_caseworker_pages(ctx, con)  # issue 21: what each county has to fix, in Chinese
    con.close()

    ctx.reports_dir.mkdir(parents=True, exist_ok=True)
    data = dict(summary=summary, by_program=by_program, held=held, trend=trend, changes=changes,
                has_previous=has_previous,
                findings=findings, checks=checks, manifest=manifest, dispositions=dispositions, by_bank=by_bank,
                failures=failures, three_way=three_way, provisional=provisional)
    xlsx = artefacts.reconciliation_xlsx(ctx)
    with atomic_path(xlsx) as tmp:
        tmp.write_bytes(render_xlsx(ctx, data))
    checkpoint("report.after_xlsx")
    page = artefacts.reconciliation_html(ctx)
    with atomic_path(page) as tmp:
        tmp.write_text(render_html(ctx, data), encoding="utf-8")
    qbook = artefacts.quarantine_xlsx(ctx)
    with atomic_path(qbook) as tmp:
        tmp.write_bytes(render_quarantine(ctx, quarantined))
    tbook = artefacts.temporary_assistance_xlsx(ctx)
    with atomic_path(tbook) as tmp:
        tmp.write_bytes(render_temporary(ctx, *temporary))
    audit = write_exceptions(ctx, exceptions, receivables)
    return {"reports": str(ctx.reports_dir), "reconciliation_html": str(page), "reconciliation_xlsx": str(xlsx),
            "quarantine_xlsx": str(qbook), "temporary_assistance_xlsx": str(tbook),
            "exceptions_xlsx": audit["exceptions_xlsx"],
            "exceptions_html": audit["exceptions_html"], "checks": checks["status"],
            "quarantined_rows": len(quarantined), **watch, **pages}


def provisional_counties(con, month: str) -> list[tuple]:
    """不断 (issue 20): the counties paid provisionally this month, by program: (region, county name,
    program, why, from which month, units, lines' sum); and the counties not paid for a missing file
    (why 未发放, no sum). Shown first in the reconciliation, so that nobody signs without seeing them."""
    return con.execute("""
        SELECT l.region_code, coalesce(min(r.county_name), ''), l.program,
               CASE WHEN starts_with(l.source_file, 'carried/') THEN '名册未报送或被退回，按以往名册临时发放'
                    ELSE '参考数据有误，按最近一次发放金额临时发放' END AS why,
               l.provisional_from, count(DISTINCT l.unit_key), sum(l.amount)
        FROM wh.payment_ledger l LEFT JOIN stg_regions r USING (region_code)
        WHERE l.payroll_month = ? AND l.provisional_from IS NOT NULL AND l.status = 'payable'
        GROUP BY l.region_code, l.program, why, l.provisional_from
        UNION ALL
        SELECT f.region_code, coalesce(min(r.county_name), ''), f.program, '名册未报送，且不能临时发放：本月未发放',
               NULL, NULL, NULL
        FROM wh.finding f LEFT JOIN stg_regions r USING (region_code)
        WHERE f.payroll_month = ? AND f.finding_type = 'county_file_not_delivered'
        GROUP BY f.region_code, f.program
        ORDER BY 1, 3, 4""", [month, month]).fetchall()


def _provisional_line(rows: list[tuple]) -> str:
    if not rows:
        return "临时发放（不断）：无，各县区均按本月名册和参考数据发放。"
    paid = [r for r in rows if r[6] is not None]
    counties = sorted({r[0] for r in rows})
    total = sum((r[6] for r in paid), Decimal("0.00"))
    unpaid = sorted({r[0] for r in rows if r[6] is None})
    return (f"临时发放（不断）：{len(counties)} 个县区 {'、'.join(counties[:8])}{'等' if len(counties) > 8 else ''}，"
            f"临时发放 {total:,.2f} 元" + (f"，未发放 {len(unpaid)} 个县区" if unpaid else "")
            + "，详见“临时发放”表；补报或更正后以补充批次多退少补。")


def _provisional_rows(rows: list[tuple]) -> list[list]:
    return [[r[0], r[1], _program(r[2]), r[3], r[4] or "", r[5], r[6]] for r in rows]


PROVISIONAL_HEADERS = ["行政区划代码", "县区", "项目", "原因", "沿用月份", "对象数", "临时发放金额"]


def _program(p: str) -> str:
    return label(PROGRAM_NAMES_ZH, p)


def _finding(finding_type: str) -> str:
    """A finding type as a bureau reads it, with its code for whoever searches the warehouse."""
    name = FINDING_TYPES.get(finding_type)
    return f"{name}（{finding_type}）" if name else finding_type


def _failures(con, month: str) -> tuple[list[tuple], list[tuple]]:
    """This month's payments the bank returned as failed, with their reissue (if any), the month's
    reissue lines, and the three-way reconciliation findings of the month."""
    tables = tables_in(con, "wh")
    if "bank_return" not in tables:
        return [], []
    failures = con.execute("""
        WITH reissues AS (SELECT unnest(reissue_of) AS line_id, payroll_month, status, payment_ref
                          FROM wh.payment_ledger WHERE line_type = 'reissue'),
             latest AS (SELECT * FROM wh.bank_return QUALIFY row_number() OVER (PARTITION BY payment_ref
                        ORDER BY received_month DESC, source_file DESC, source_row DESC) = 1)
        SELECT '退回' AS kind, l.region_code, l.program, mask_id(l.id_number), l.service_month, l.line_type, l.amount,
               l.payment_ref, coalesce(mask_long_numbers(b.reason), ''),
               coalesce(string_agg(r.payroll_month || CASE r.status WHEN 'payable' THEN ' 已重发 ' ELSE ' 重发暂停 ' END
                                   || coalesce(r.payment_ref, ''), '; '
                                   ORDER BY r.payroll_month, r.payment_ref),
                        '未重发')
        FROM wh.payment_ledger l LEFT JOIN latest b USING (payment_ref)
        LEFT JOIN reissues r ON r.line_id = l.line_id
        WHERE l.payroll_month = ? AND l.payment_state = 'failed'
        GROUP BY ALL
        UNION ALL
        SELECT '重发', region_code, program, mask_id(id_number), service_month, line_type, amount,
               coalesce(payment_ref, ''), coalesce(hold_reason, ''),
               CASE status WHEN 'payable' THEN '发放' ELSE '暂停' END
        FROM wh.payment_ledger WHERE payroll_month = ? AND line_type = 'reissue'
        ORDER BY 1, 2, 3, 4, 5, 6""", [month, month]).fetchall()
    three_way = con.execute("""SELECT finding_type, severity, coalesce(payment_ref, ''), coalesce(program, ''),
               mask_id(id_number), mask_long_numbers(detail)
               FROM wh.reconciliation_finding WHERE payroll_month = ? OR payroll_month IS NULL
               ORDER BY 1, 3""", [month]).fetchall() if "reconciliation_finding" in tables else []
    return failures, three_way


NO_PREVIOUS_PAYROLL = "仓库中没有上月发放记录（首个发放月）：无可比较的变动"


SUMMARY_HEADERS = ["行政区划代码", "县区", "项目", "类型", "笔数", "人数", "金额", "中央", "省级", "市级", "县级"]
# a table wider than this (characters) prints landscape: about what an A4 page takes upright
PORTRAIT_WIDTH = 100


def print_table(ws, fmt, title: str, lines: list[str], headers: list[str], rows: list[list],
                money_columns=frozenset(), widths: dict[int, int] | None = None,
                wrap: dict[int, int] | None = None) -> int:
    """A sheet of one table for printing and signing (issue 21): the title and its lines, the header
    under them (title and header repeated on every page), the rows, A4 fit to the width (landscape
    where wide), the signature block. Returns the header's row."""
    header_row = title_rows(ws, fmt, title, *lines)
    end = write_table(ws, fmt, headers, rows, money_columns=money_columns, start_row=header_row)
    for col, width in (widths or {}).items():
        ws.set_column(col, col, width, fmt["money"] if col in money_columns else None)
    wrap_columns(ws, fmt, wrap or {})
    last = max(len(headers) - 1, 0)
    print_setup(ws, (header_row, header_row), last, landscape=printed_width(ws, last) > PORTRAIT_WIDTH)
    signature_block(ws, fmt, end)
    return header_row


def render_xlsx(ctx: RunContext, d: dict) -> bytes:
    """reconciliation.xlsx: every sheet titled with the month and printable on A4; the summary's
    totals (with the fund split) directly under its header, on the first page."""
    buf = io.BytesIO()
    wb, fmt = new_workbook(buf, ctx.month)
    m, c = ctx.month, d["checks"]
    ws = wb.add_worksheet("汇总")
    funds = [sum((r[i] for r in d["summary"]), Decimal("0.00")) for i in (7, 8, 9, 10)]
    totals = [["台账应付合计", "", "", "", c["ledger_lines"], "", c["ledger_sum"], *funds],
              ["代发文件合计", "", "", "", c["csv_records"], "", c["csv_sum"]]]
    rows = [[r[0], r[1], _program(r[2]), label(LINE_TYPE_ZH, r[3]), r[4], r[5], r[6], r[7], r[8], r[9], r[10]]
            for r in d["summary"]]
    header_row = print_table(
        ws, fmt, f"{m} 社会救助资金发放对账表　全省",
        [f"对账结果：台账、代发记录与代发文件一致；台账 {c['ledger_lines']} 行，代发 {c['records']} 笔，"
         f"合计 {c['ledger_sum']:,.2f} 元（金额单位：元）", _provisional_line(d["provisional"])],
        SUMMARY_HEADERS, totals + rows, money_columns={6, 7, 8, 9, 10}, widths={1: 12, 2: 20, 3: 12, 4: 8, 5: 8})
    for i, total in enumerate(totals):  # the totals in bold, as the first rows under the header
        for col, v in enumerate(total):
            if col in (6, 7, 8, 9, 10):
                ws.write_number(header_row + 1 + i, col, float(v), fmt["money_bold"])
            else:
                ws.write(header_row + 1 + i, col, v, fmt["bold"])
    sheet = lambda name, title, *args, **kw: print_table(wb.add_worksheet(name), fmt, f"{m} {title}", *args, **kw)  # noqa: E731
    sheet("按银行", "代发汇总（按银行、批次）", [f"合计 {c['records']} 笔，{c['ledger_sum']:,.2f} 元"],
          ["银行代码", "银行", "批次", "笔数", "金额"],
          [list(r) for r in d["by_bank"]] + [["合计", "", "", sum(r[3] for r in d["by_bank"]),
                                             sum((r[4] for r in d["by_bank"]), Decimal("0.00"))]],
          money_columns={4}, widths={1: 24})
    sheet("临时发放", "临时发放的县区（不断：名册未报送、被退回或参考数据有误）", [_provisional_line(d["provisional"])],
          PROVISIONAL_HEADERS, _provisional_rows(d["provisional"]), money_columns={6}, widths={1: 14, 2: 20},
          wrap={3: 40})
    files = [[f[0], label(PAYOUT_FORMATS_ZH, f[1]), f[2], f[3], f[4]] for f in c["files"]]
    sheet("代发文件", "代发文件（SHA-256、笔数与金额已逐一复核）",
          [f"CSV 文件合计 {c['csv_records']} 笔，{c['csv_sum']:,.2f} 元"],
          ["文件", "格式", "笔数", "金额", "校验"], files, money_columns={3}, widths={1: 18}, wrap={0: 36})
    if d["has_previous"]:
        sheet("变动", "与上月相比的变动", [f"共 {len(d['changes'])} 项"],
              ["行政区划代码", "项目", "对象（脱敏）", "变动", "上月金额", "本月金额"],
              [[r[0], _program(r[1]), r[2], r[3], r[4], r[5]] for r in d["changes"]], money_columns={4, 5},
              widths={1: 20, 2: 22})
    else:
        sheet("变动", "与上月相比的变动", [NO_PREVIOUS_PAYROLL], [], [])
    sheet("异常", "异常与核查", [f"共 {len(d['findings'])} 条"],
          ["行政区划代码", "类型", "级别", "项目", "身份证号（脱敏）", "处理", "说明", "文件", "行号"],
          [[r[0], label(FINDING_TYPES, r[1]), label(SEVERITY_ZH, r[2]), _program(r[3]), r[4],
            label(FINDING_ACTIONS_ZH, r[5]), local_times(r[6]), *r[7:]] for r in d["findings"]],
          widths={1: 30, 4: 22, 8: 8}, wrap={6: 60, 7: 30})
    sheet("退回与重发", "银行退回与重发", [f"共 {len(d['failures'])} 笔"],
          ["类别", "行政区划代码", "项目", "身份证号（脱敏）", "所属月份", "类型", "金额", "支付流水号", "原因",
           "重发情况 / 状态"],
          [[r[0], r[1], _program(r[2]), r[3], r[4], label(LINE_TYPE_ZH, r[5]), r[6], r[7], _reason_text(r[8]),
            r[9]] for r in d["failures"]], money_columns={6}, widths={3: 22, 7: 20}, wrap={8: 30, 9: 30})
    sheet("三方对账", "三方对账差异（台账、代发记录、银行回盘）", [f"共 {len(d['three_way'])} 条"],
          ["类型", "级别", "支付流水号", "项目", "身份证号（脱敏）", "说明"],
          [[label(FINDING_TYPES, r[0]), label(SEVERITY_ZH, r[1]), r[2], _program(r[3]), r[4], local_times(r[5])]
           for r in d["three_way"]], widths={0: 30, 2: 20, 4: 22}, wrap={5: 60})
    sheet("暂停发放", "暂停发放", [f"共 {sum(r[2] for r in d['held'])} 笔，"
                                  f"{sum((r[3] for r in d['held']), Decimal('0.00')):,.2f} 元"],
          ["项目", "原因", "笔数", "金额"], [[_program(r[0]), label(FINDING_TYPES, r[1]), r[2], r[3]] for r in d["held"]],
          money_columns={3}, widths={0: 20}, wrap={1: 40})
    wb.close()
    return buf.getvalue()


def _reason_text(code: str) -> str:
    """A hold reason (a finding type) by its label; a bank's reason text as it is."""
    return label(FINDING_TYPES, code)


TEMPORARY_CASE_COLUMNS = ["审批编号", "身份证号（脱敏）", "外省人员", "救助事由", "事由发生日期", "审批层级", "一事一议编号",
                          "核定金额", "标准金额（月数×低保标准）", "审批层级限额", "状态", "暂停原因", "同时享受按月救助"]


def _temporary_assistance(con, month: str) -> tuple[list[tuple], list[tuple]]:
    """The month's temporary-assistance cases (one_off lines, each with what it was judged by) and the
    findings on cases, paid or not, by approving county (issue 19: the county's monthly sheet)."""
    cases = con.execute("""
        SELECT l.region_code, coalesce(r.county_name, '') AS county, l.approval_no, mask_id(l.id_number),
               CASE WHEN left(l.id_number, 2) <> getvariable('province_code') THEN '是' ELSE '' END,
               l.event_type, strftime(l.event_date, '%Y-%m-%d'), json_extract_string(l.inputs, '$.approval_level'),
               json_extract_string(l.inputs, '$.case_by_case_no'), l.amount,
               CAST(json_extract_string(l.inputs, '$.standard_amount') AS DECIMAL(18, 2)),
               CAST(json_extract_string(l.inputs, '$.level_cap') AS DECIMAL(18, 2)),
               CASE l.status WHEN 'payable' THEN '发放' ELSE '暂停' END, coalesce(l.hold_reason, ''),
               coalesce((SELECT string_agg(DISTINCT mask_long_numbers(f.detail), '；' ORDER BY mask_long_numbers(f.detail))
                         FROM wh.finding f WHERE f.payroll_month = l.payroll_month
                          AND f.finding_type = 'temporary_also_on_monthly_program'
                          AND f.source_file = l.source_file AND f.source_row = l.source_row), '')
        FROM wh.payment_ledger l LEFT JOIN stg_regions r USING (region_code)
        WHERE l.payroll_month = ? AND l.line_type = 'one_off'
        ORDER BY l.region_code, l.approval_no""", [month]).fetchall()
    findings = con.execute("""
        SELECT f.region_code, coalesce(r.county_name, ''), f.finding_type, f.action, mask_id(f.id_number),
               mask_long_numbers(f.detail), f.source_file, f.source_row
        FROM wh.finding f LEFT JOIN stg_regions r USING (region_code)
        WHERE f.payroll_month = ? AND starts_with(f.finding_type, 'temporary_')
        ORDER BY f.region_code, f.finding_type, f.source_file, f.source_row""", [month]).fetchall()
    return cases, findings


def render_temporary(ctx: RunContext, cases: list[tuple], findings: list[tuple]) -> bytes:
    """temporary_assistance.xlsx: a sheet per approving county with its cases by event, each case
    against the cap of the level that approved it, 一事一议 cases, people from elsewhere, recipients
    also on a monthly program, and every finding on a case (those not paid included)."""
    buf = io.BytesIO()
    wb, fmt = new_workbook(buf, ctx.month)
    counties: dict[str, tuple[list, list]] = {}
    for c in cases:
        counties.setdefault(f"{c[0]} {c[1]}".strip(), ([], []))[0].append(c)
    for f in findings:
        counties.setdefault(f"{f[0] or '未知'} {f[1]}".strip(), ([], []))[1].append(f)
    if not counties:
        ws = wb.add_worksheet("无")
        ws.write(0, 0, f"{ctx.month} 没有临时救助案件")
        print_setup(ws, (0, 0), 3, landscape=False)
    for sheet, (county_cases, county_findings) in sorted(counties.items()):
        ws = wb.add_worksheet(sheet[:31])
        paid = [c for c in county_cases if c[12] == "发放"]
        title_rows(ws, fmt, f"{ctx.month} 临时救助 {sheet}",
                   f"发放 {len(paid)} 件，{sum((c[9] for c in paid), Decimal('0.00')):,.2f} 元；"
                   f"暂停 {len(county_cases) - len(paid)} 件；核查发现 {len(county_findings)} 条（金额单位：元）")
        by_event: dict[str, list] = {}
        for c in county_cases:
            by_event.setdefault(c[5], []).append(c)
        row = write_table(ws, fmt, ["救助事由", "案件数", "发放金额", "暂停金额"],
                          [[event, len(items), sum((c[9] for c in items if c[12] == "发放"), Decimal(0)),
                            sum((c[9] for c in items if c[12] != "发放"), Decimal(0))]
                           for event, items in sorted(by_event.items())], money_columns={2, 3}, start_row=2)
        counts = [("一事一议案件", sum(1 for c in county_cases if c[8])),
                  ("外省人员", sum(1 for c in county_cases if c[4])),
                  ("同时享受按月救助", sum(1 for c in county_cases if c[14])),
                  ("超过审批层级限额", sum(1 for c in county_cases if c[11] is not None and c[9] > c[11]))]
        row = write_table(ws, fmt, ["其中", "案件数"], counts, start_row=row + 1)
        ws.write(row + 1, 0, "案件明细（金额对照审批层级限额）", fmt["bold"])
        row = write_table(ws, fmt, TEMPORARY_CASE_COLUMNS, [list(c[2:]) for c in county_cases],
                          money_columns={7, 8, 9}, start_row=row + 2)
        ws.write(row + 1, 0, "核查发现（含未发放的案件）", fmt["bold"])
        row = write_table(ws, fmt, ["发现", "处理", "身份证号（脱敏）", "说明", "文件", "行号"],
                          [[_finding(f[2]), label(FINDING_ACTIONS_ZH, f[3]), f[4], local_times(f[5]), f[6], f[7]]
                           for f in county_findings], start_row=row + 2)
        ws.freeze_panes(0, 0)
        wrap_columns(ws, fmt, {1: 22, 3: 40, 4: 30})
        # several tables on a sheet: the title is what every page repeats
        print_setup(ws, (0, 0), len(TEMPORARY_CASE_COLUMNS) - 1)
        signature_block(ws, fmt, row)
    wb.close()
    return buf.getvalue()


QUARANTINE_HEADERS = ["文件", "行号（数据行，从1起）", "项目", "身份证号（脱敏）", "姓名（脱敏）", "原因"]


def reasons_text(reasons) -> str:
    """A quarantined row's reasons as a caseworker reads them. The warehouse keeps them worded (each
    code with its message); a list of bare codes is worded here from the vocabulary."""
    if isinstance(reasons, str):
        return reasons
    return "；".join(f"{REASONS[c].message_zh}（{c}）" if c in REASONS else str(c) for c in (reasons or []))


def render_quarantine(ctx: RunContext, rows: list[tuple]) -> bytes:
    """quarantine.xlsx: a sheet per county, each a list titled with the county and month that prints
    on A4 (fit to width, landscape) and is signed."""
    buf = io.BytesIO()
    wb, fmt = new_workbook(buf, ctx.month)
    by_county: dict[str, list] = {}
    for r in rows:
        by_county.setdefault(f"{r[0] or '未知'} {r[1]}", []).append(r)
    if not by_county:
        ws = wb.add_worksheet("无")
        ws.write(0, 0, f"{ctx.month} 没有被暂缓处理的行")
        print_setup(ws, (0, 0), 3, landscape=False)
    for sheet, items in sorted(by_county.items()):
        print_table(wb.add_worksheet(sheet[:31]), fmt, f"{ctx.month} 名册暂缓处理清单　{sheet}",
                    [f"共 {len(items)} 行未予发放：请按“原因”更正后重新报送"], QUARANTINE_HEADERS,
                    [[r[2], r[3], _program(r[4]), r[5], r[6], reasons_text(r[7])] for r in items],
                    widths={1: 10, 2: 18, 3: 22, 4: 12}, wrap={0: 36, 5: 70})
    wb.close()
    return buf.getvalue()


def _bar_chart(title: str, items: list[tuple[str, float]], width: int = 640) -> str:
    if not items:
        return ""
    top = max(v for _, v in items) or 1.0
    bar_h, gap, label_w = 18, 6, 170
    h = len(items) * (bar_h + gap) + 30
    parts = [f'<svg role="img" aria-label="{html.escape(title)}" width="{width}" height="{h}" '
             f'xmlns="http://www.w3.org/2000/svg"><text x="0" y="14" font-weight="bold">{html.escape(title)}</text>']
    for i, (name, v) in enumerate(items):
        y = 24 + i * (bar_h + gap)
        w = int((width - label_w - 110) * v / top)
        parts.append(f'<text x="0" y="{y + 13}" font-size="12">{html.escape(name)}</text>'
                     f'<rect class="bar" x="{label_w}" y="{y}" width="{max(w, 1)}" height="{bar_h}" fill="#2f6fae"/>'
                     f'<text x="{label_w + w + 6}" y="{y + 13}" font-size="12">{v:,.2f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def fund_split(summary: list[tuple]) -> list[list]:
    """The month's payable amount by program (the price subsidy on its own) and its fund parts, with
    a total row: the ledger's fund_central … fund_county, as summed in the summary by county."""
    by: dict[str, list[Decimal]] = {}
    for r in summary:
        key = PROGRAM_NAMES_ZH["price_subsidy"] if r[3] == "price_subsidy" else _program(r[2])
        parts = by.setdefault(key, [Decimal("0.00")] * 5)
        for i, v in enumerate((r[6], r[7], r[8], r[9], r[10])):
            parts[i] += v
    rows = [[k, *v] for k, v in sorted(by.items())]
    return rows + [["合计", *(sum((r[i] for r in rows), Decimal("0.00")) for i in range(1, 6))]]


def _yuan(rows: list[list], money: set[int]) -> list[list]:
    return [[f"{v:,.2f}" if i in money and v is not None else v for i, v in enumerate(r)] for r in rows]


def render_html(ctx: RunContext, d: dict) -> str:
    esc = html.escape
    c = d["checks"]
    by_prog: dict[str, float] = {}
    for p, t, _n, a in d["by_program"]:
        key = "价格临时补贴" if t == "price_subsidy" else _program(p)
        by_prog[key] = by_prog.get(key, 0.0) + float(a)
    by_county: dict[str, float] = {}
    for r in d["summary"]:
        by_county[f"{r[0]} {r[1]}"] = by_county.get(f"{r[0]} {r[1]}", 0.0) + float(r[6])
    counties = sorted(by_county.items(), key=lambda kv: -kv[1])[:15]
    trend = [(t[0], float(t[1] or 0)) for t in d["trend"]]
    price = [(t[0], float(t[2] or 0)) for t in d["trend"]]
    failed_by_program: dict[str, float] = {}
    for r in d["failures"]:
        if r[0] == "退回":
            failed_by_program[_program(r[2])] = failed_by_program.get(_program(r[2]), 0.0) + float(r[6])
    banks = [list(r) for r in d["by_bank"]]
    banks.append(["合计", "", "", sum(r[3] for r in banks), sum((r[4] for r in banks), Decimal("0.00"))])
    fund_headers = ["项目", "金额", *(f"{FUND_LEVELS_ZH[k]}负担" for k in ("central", "provincial", "city", "county"))]

    table = html_table

    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{esc(ctx.month)} 对账报告</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;overflow-wrap:anywhere}}th{{background:#ddebf7}}
.ok{{color:#1a7f37}}.signature{{margin-top:3em}}
{PRINT_CSS}</style>
</head><body>
<h1>{esc(ctx.month)} 社会救助资金发放对账报告　全省</h1>
<p class="ok" id="status">对账结果：台账、代发记录与代发文件一致（{c['records']} 笔，合计 {c['ledger_sum']:,.2f} 元）。</p>
<h2 id="provisional">临时发放的县区（不断）</h2><p>{esc(_provisional_line(d['provisional']))}</p>{table(PROVISIONAL_HEADERS, _yuan(_provisional_rows(d['provisional']), {6})) if d['provisional'] else ''}
<h2 id="funds">资金来源（按项目，元）</h2>{table(fund_headers, _yuan(fund_split(d['summary']), {1, 2, 3, 4, 5}))}
<h2 id="banks">代发银行汇总（按银行、批次）</h2>{table(['银行代码', '银行', '批次', '笔数', '金额'], _yuan(banks, {4}))}
<section id="charts">
{_bar_chart('按项目发放金额（元）', sorted(by_prog.items()))}
{_bar_chart('发放金额最多的县区（元）', counties)}
{_bar_chart('各月救助金（不含价格临时补贴）', trend)}
{_bar_chart('各月价格临时补贴', price)}
{_bar_chart('银行退回失败金额（按项目，元）', sorted(failed_by_program.items()))}
</section>
<h2>按项目</h2>{table(['项目', '类型', '笔数', '金额'], [(_program(p), label(LINE_TYPE_ZH, t), n, f'{a:,.2f}') for p, t, n, a in d['by_program']])}
<h2>名册处理结果</h2>{table(['项目', '处理', '行数'], [(_program(p), label(DISPOSITIONS_ZH, x), n) for p, x, n in d['dispositions']])}
<h2>代发文件</h2>{table(['文件', '格式', '笔数', '金额', '校验'], [(f[0], label(PAYOUT_FORMATS_ZH, f[1]), f[2], f'{f[3]:,.2f}', f[4]) for f in c['files']])}
<h2>暂停发放</h2>{table(['项目', '原因', '笔数', '金额'], [(_program(p), label(FINDING_TYPES, r), n, f'{a:,.2f}') for p, r, n, a in d['held']])}
<h2 id="failures">银行退回与重发（{len(d['failures'])}）</h2>{table(['类别', '区划', '项目', '身份证号', '所属月份', '类型', '金额', '支付流水号', '原因', '重发情况'], [(r[0], r[1], _program(r[2]), r[3], r[4], label(LINE_TYPE_ZH, r[5]), r[6], r[7], _reason_text(r[8]), r[9]) for r in d['failures'][:500]])}
<h2>三方对账差异（{len(d['three_way'])}）</h2>{table(['类型', '级别', '支付流水号', '项目', '身份证号', '说明'], [(_finding(r[0]), label(SEVERITY_ZH, r[1]), r[2], _program(r[3]), r[4], local_times(r[5])) for r in d['three_way'][:500]])}
<h2>与上月相比的变动（{len(d['changes'])}）</h2>{table(['区划', '项目', '对象', '变动', '上月', '本月'], [(r[0], _program(r[1]), *r[2:]) for r in d['changes'][:200]]) if d['has_previous'] else '<p>' + NO_PREVIOUS_PAYROLL + '</p>'}
<h2>异常与核查（{len(d['findings'])}）</h2>{table(['区划', '类型', '级别', '项目', '身份证号', '处理', '说明', '文件', '行'], [(r[0], _finding(r[1]), label(SEVERITY_ZH, r[2]), _program(r[3]), r[4], label(FINDING_ACTIONS_ZH, r[5]), local_times(r[6]), *r[7:]) for r in d['findings'][:500]])}
<p>身份证号、姓名与账号均已脱敏。完整名单见 reconciliation.xlsx 与 quarantine.xlsx。</p>
{SIGNATURE_HTML}
</body></html>
"""
