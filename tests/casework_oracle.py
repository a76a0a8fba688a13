"""The county watch and visit workbooks as pipelines/watch.py wrote them before issue 22, one
Python value a cell through spreadsheet.write_table: the oracle that the query-composed workbooks
(pipelines/watch.py write_casework, pipelines/sheet_rows.py) must equal byte for byte. The sheets'
widths, print set-up and signature are the product's own (finish_list_sheet); their rows are not."""

from __future__ import annotations

import io

from pipelines.vocabulary import VISIT_RULES, WATCH_RULES
from pipelines.watch import (
    ORDER,
    VISIT_COLUMN_WIDTHS,
    VISIT_HEADERS,
    VISIT_MONEY_COLUMN,
    WATCH_COLUMN_WIDTHS,
    WATCH_HEADERS,
    _age_expr,
    _program_zh,
    _rule_order,
    _sheet_name,
    county_names,
    finish_list_sheet,
)


def list_rows(con, table: str, rules: dict, extra: str = "") -> list[tuple]:
    return con.execute(f"""
        SELECT region_code, township, rule, program, name, mask_id(id_number), sex,
               {_age_expr()}, household_id, evidence{extra}
        FROM {table} {ORDER.format(rules=_rule_order(rules))}""").fetchall()


def _summary(rows: list[tuple], rules: dict, index: int = 2) -> str:
    counts = {}
    for r in rows:
        counts[r[index]] = counts.get(r[index], 0) + 1
    parts = [f"{rules[k]} {counts[k]}" for k in rules if k in counts]
    return f"合计 {len(rows)} 条" + ("：" + "，".join(parts) if parts else "（本月无）")


def render_watch(month: str, region: str, county: str, rows: list[tuple]) -> bytes:
    from pipelines.spreadsheet import new_workbook, write_table

    buf = io.BytesIO()
    wb, fmt = new_workbook(buf, month)
    ws = wb.add_worksheet("监测预警名单")
    ws.write(0, 0, f"{month} 监测预警名单　{region} {county}", fmt["title"])
    ws.write(1, 0, _summary(rows, WATCH_RULES), fmt["bold"])
    body = [[i, WATCH_RULES.get(r[2], r[2]), r[2], r[4], r[5], r[6], r[7], _program_zh(r[3]), r[8], r[9], "", ""]
            for i, r in enumerate(rows, start=1)]
    end = write_table(ws, fmt, WATCH_HEADERS, body, start_row=2)
    finish_list_sheet(ws, fmt, WATCH_HEADERS, WATCH_COLUMN_WIDTHS, end)
    wb.close()
    return buf.getvalue()


def render_visit(month: str, region: str, county: str, rows: list[tuple]) -> bytes:
    from pipelines.spreadsheet import new_workbook, write_table

    buf = io.BytesIO()
    wb, fmt = new_workbook(buf, month)
    towns: dict[str, list] = {}
    for r in rows:
        towns.setdefault(r[1] or "", []).append(r)
    if not towns:
        towns[""] = []
    used: set[str] = set()
    for town, items in sorted(towns.items(), key=lambda kv: (kv[0] == "", kv[0])):
        sheet = _sheet_name(town or "未填乡镇（街道）" if len(towns) > 1 else town or "走访探视名单", used)
        ws = wb.add_worksheet(sheet)
        place = f"{region} {county}" + (f" {town}" if town else "")
        ws.write(0, 0, f"{month} 走访探视名单　{place}", fmt["title"])
        ws.write(1, 0, _summary(items, VISIT_RULES) + "；一人多类者各列一行，走访一次即可", fmt["bold"])
        body = [[i, VISIT_RULES.get(r[2], r[2]), r[4], r[5], r[6], r[7], _program_zh(r[3]), r[9],
                 r[10] or "未发放", r[11], r[12], r[13], r[14], "", "", ""] for i, r in enumerate(items, start=1)]
        end = write_table(ws, fmt, VISIT_HEADERS, body, money_columns={VISIT_MONEY_COLUMN}, start_row=2)
        finish_list_sheet(ws, fmt, VISIT_HEADERS, VISIT_COLUMN_WIDTHS, end, money_column=VISIT_MONEY_COLUMN)
    wb.close()
    return buf.getvalue()


def casework_bytes(con, month: str) -> dict[str, bytes]:
    """Every county's two workbooks, by file name, from the watch_list and visit_list temp tables."""
    watch = list_rows(con, "watch_list", WATCH_RULES)
    visit = list_rows(con, "visit_list", VISIT_RULES,
                      ", last_paid_month, last_paid_amount, payee_name, mask_account(payee_account), payee_bank_name")
    counties = county_names(con)
    by_county_w: dict[str, list] = {}
    by_county_v: dict[str, list] = {}
    for r in watch:
        by_county_w.setdefault(r[0] or "", []).append(r)
    for r in visit:
        by_county_v.setdefault(r[0] or "", []).append(r)
    files = {}
    for region in sorted(set(counties) | set(by_county_w) | set(by_county_v)):
        label = f"{region or '000000'}_{counties.get(region, '未知县区')}"
        files[f"{label}_监测预警名单.xlsx"] = render_watch(month, region, counties.get(region, "未知县区"),
                                                       by_county_w.get(region, []))
        files[f"{label}_走访探视名单.xlsx"] = render_visit(month, region, counties.get(region, "未知县区"),
                                                       by_county_v.get(region, []))
    return files
