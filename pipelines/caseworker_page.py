"""The caseworkers' validation pages (issue 21): what each county has to fix in its rosters, in Chinese.

`<out>/<YYYY-MM>/reports/validation/<region_code>.html`, one per county of the province (and
`unknown.html` for rows whose county is not known), and `index.html` listing the counties with
their counts. Per program, each rule the county's rows broke: the rule in words (the reason's
message, with the roster headers the county's staff see), how many rows break it, what to do,
and the rows to fix: file, row number, masked ID number and the delivered values (names masked,
long digit runs masked; ID numbers and accounts never shown). A county with nothing to fix gets a
page that says so. GX's Data Docs (reports/data_docs/) stay, for the data team.

Read from the published warehouse and aggregated in DuckDB: at most ROWS_PER_RULE rows per rule
and county reach Python, with the count of the rest (quarantine.xlsx lists every row). The pages
are self-contained (inline CSS, no external URL), print on A4, and hold no time of day, so a rerun
writes the same bytes.
"""

from __future__ import annotations

import html

from pipelines import artefacts
from pipelines.audit_report import PRINT_CSS, html_table
from pipelines.expectations_sql import literal
from pipelines.io import atomic_path
from pipelines.settings import RunContext
from pipelines.vocabulary import (
    DEFAULT_REASON_ACTION,
    NAME_COLUMNS,
    PROGRAM_NAMES_ZH,
    REASON_ACTIONS,
    REASON_COLUMNS,
    REASONS,
    UNSHOWN_COLUMNS,
    column_header,
    label,
)

ROWS_PER_RULE = 200
UNKNOWN_COUNTY = "unknown"
PROGRAM_ORDER = ("dibao", "tekun", "orphan", "disability", "temporary")
ROW_HEADERS = ["文件", "行号（数据行，从1起）", "身份证号（脱敏）", "报送的内容"]

PAGE_CSS = """body{font-family:"Noto Sans CJK SC","Source Han Sans SC","WenQuanYi Micro Hei",sans-serif;margin:2em;
max-width:1100px;color:#222}h1{font-size:22px}h2{font-size:18px;border-bottom:2px solid #2f6fae;padding-bottom:2px}
h3{font-size:15px;margin-bottom:.2em}table{border-collapse:collapse;margin:.5em 0 1em}
td,th{border:1px solid #bbb;padding:3px 8px;font-size:13px;text-align:left;overflow-wrap:anywhere}
th{background:#ddebf7}.code{color:#666;font-size:12px}.todo{margin:.2em 0}.more{color:#a33}
.none{font-size:16px;color:#1a7f37}.count{color:#a33;font-weight:bold}"""


def _shown_columns(code: str) -> tuple[str, ...]:
    return tuple(c for c in REASON_COLUMNS.get(code, ()) if c not in UNSHOWN_COLUMNS)


def _values_sql() -> str:
    """SQL: per quarantined row and reason code, the delivered values of the reason's shown columns
    (a list, in _shown_columns order), masked as every report masks them."""
    whens = []
    for code in sorted(REASON_COLUMNS):
        cols = _shown_columns(code)
        if not cols:
            continue
        values = []
        for c in cols:
            raw = f"json_extract_string(r.delivered, {literal('$.' + c)})"
            values.append(f"mask_name({raw})" if c in NAME_COLUMNS else f"mask_long_numbers({raw})")
        whens.append(f"WHEN {literal(code)} THEN [{', '.join(values)}]")
    return f"CASE q.code {' '.join(whens)} END" if whens else "NULL::VARCHAR[]"


def query_rules(con, month: str) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """(rule counts, capped rows, rows per county) of the month's quarantined rows; con has the
    warehouse attached as `wh`."""
    quarantined = f"""SELECT coalesce(d.region_code, '{UNKNOWN_COUNTY}') AS county, d.program, d.source_file,
                             d.source_row, d.id_number, unnest(d.reason_codes) AS code
                      FROM wh.row_disposition d
                      WHERE d.payroll_month = {literal(month)} AND d.disposition = 'quarantined'"""
    counts = con.execute(f"SELECT county, program, code, count(*) FROM ({quarantined}) GROUP BY ALL "
                         "ORDER BY ALL").fetchall()
    rows = con.execute(f"""
        WITH q AS (SELECT *, row_number() OVER (PARTITION BY county, program, code
                                                ORDER BY source_file, source_row) AS n
                   FROM ({quarantined}))
        SELECT q.county, q.program, q.code, q.source_file, q.source_row, coalesce(mask_id(q.id_number), '（空）'),
               {_values_sql()}
        FROM q LEFT JOIN wh.roster_row r ON r.payroll_month = {literal(month)} AND r.source_file = q.source_file
             AND r.source_row = q.source_row
        WHERE q.n <= {ROWS_PER_RULE}
        ORDER BY q.county, q.program, q.code, q.source_file, q.source_row""").fetchall()
    by_county = con.execute(f"""
        SELECT coalesce(region_code, '{UNKNOWN_COUNTY}'), count(*), count(*) FILTER (WHERE disposition = 'quarantined')
        FROM wh.row_disposition WHERE payroll_month = {literal(month)} GROUP BY 1 ORDER BY 1""").fetchall()
    return counts, rows, by_county


def write_caseworker_pages(ctx: RunContext, con) -> dict:
    """Write reports/validation/: a page per county and the index. con has the warehouse attached as
    `wh` and stg_regions built."""
    counts, rows, by_county = query_rules(con, ctx.month)
    names = dict(con.execute("SELECT region_code, county_name FROM stg_regions ORDER BY 1").fetchall())
    delivered = {c: (int(n), int(q)) for c, n, q in by_county}
    counties = sorted(set(names) | set(delivered))
    rules: dict[str, dict[str, dict[str, int]]] = {}
    for county, program, code, n in counts:
        rules.setdefault(county, {}).setdefault(program, {})[code] = int(n)
    listed: dict[tuple[str, str, str], list[tuple]] = {}
    for county, program, code, *row in rows:
        listed.setdefault((county, program, code), []).append(tuple(row))

    out = artefacts.caseworker_pages_dir(ctx)
    for county in counties:
        page = render_county_page(ctx.month, county, names.get(county, ""), delivered.get(county, (0, 0)),
                                  rules.get(county, {}), listed)
        with atomic_path(out / f"{county}.html") as tmp:
            tmp.write_text(page, encoding="utf-8")
    index = render_index(ctx.month, [(c, names.get(c, ""), *delivered.get(c, (0, 0)),
                                      len({code for p in rules.get(c, {}).values() for code in p}))
                                     for c in counties])
    with atomic_path(out / "index.html") as tmp:
        tmp.write_text(index, encoding="utf-8")
    return {"validation_pages": str(out), "counties_to_fix": sum(1 for c in counties if rules.get(c))}


def _county_title(county: str, name: str) -> str:
    return "县区不明（区划代码缺失）" if county == UNKNOWN_COUNTY else f"{county} {name}".strip()


def _document(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8"><title>{html.escape(title)}</title>\n'
            f"<style>{PAGE_CSS}\n{PRINT_CSS}</style></head><body>\n{body}\n</body></html>\n")


def _rule_order(code: str) -> tuple[int, str]:
    order = list(REASONS)
    return (order.index(code), code) if code in REASONS else (len(order), code)


def rule_sentence(program: str, code: str) -> str:
    """A rule as a caseworker reads it: the roster headers it looks at, then what is wrong."""
    headers = "、".join(column_header(program, c) for c in REASON_COLUMNS.get(code, ()))
    message = REASONS[code].message_zh if code in REASONS else code
    return f"【{headers}】{message}" if headers else message


def render_county_page(month: str, county: str, name: str, delivered: tuple[int, int],
                       rules: dict[str, dict[str, int]], listed: dict) -> str:
    esc = html.escape
    title = f"{month} 名册校验结果　{_county_title(county, name)}"
    rows_in, rows_to_fix = delivered
    parts = [f"<h1>{esc(title)}</h1>"]
    if not rules:
        said = (f"本月报送 {rows_in} 行，全部通过校验，没有需要更正的行。" if rows_in
                else "本月没有收到本县区的名册行，没有需要更正的行。")
        parts.append(f'<p class="none" id="nothing-to-fix">{esc(said)}</p>')
        return _document(title, "\n".join(parts))
    parts.append(f'<p id="summary">本月报送 {rows_in} 行，其中 <span class="count">{rows_to_fix}</span> 行未通过校验，'
                 "暂缓发放。请按下列规则逐项更正原表后重新报送；身份证号已脱敏，"
                 "“行号”指文件中的数据行（从 1 起）。</p>")
    for program in sorted(rules, key=lambda p: (PROGRAM_ORDER.index(p) if p in PROGRAM_ORDER else 99, p)):
        parts.append(f'<h2>{esc(label(PROGRAM_NAMES_ZH, program))}</h2>')
        for code in sorted(rules[program], key=_rule_order):
            total = rules[program][code]
            shown = _shown_columns(code)
            table_rows = []
            for source_file, source_row, masked_id, values in listed.get((county, program, code), []):
                said = "；".join(f"{column_header(program, c)}：{'（空）' if v is None else v}"
                                for c, v in zip(shown, values or [], strict=False))
                table_rows.append((source_file, source_row, masked_id, said))
            more = total - len(table_rows)
            parts.append(
                f'<section class="rule"><h3>{esc(rule_sentence(program, code))} '
                f'<span class="code">（{esc(code)}）</span></h3>'
                f'<p>共 <span class="count">{total}</span> 行不符合此规则。</p>'
                f'<p class="todo">如何更正：{esc(REASON_ACTIONS.get(code, DEFAULT_REASON_ACTION))}</p>'
                + html_table(ROW_HEADERS, table_rows)
                + (f'<p class="more">另有 {more} 行未列出，见 quarantine.xlsx 本县区工作表。</p>' if more > 0 else "")
                + "</section>")
    return _document(title, "\n".join(parts))


def render_index(month: str, counties: list[tuple]) -> str:
    """counties: (region_code, name, rows delivered, rows to fix, rules broken)."""
    esc = html.escape
    title = f"{month} 名册校验结果　各县区"
    to_fix = [c for c in counties if c[3]]
    head = "".join(f"<th>{h}</th>" for h in ("行政区划代码", "县区", "报送行数", "待更正行数", "未通过的规则数"))
    body = "".join(
        f'<tr><td><a href="{esc(c[0])}.html">{esc(c[0] if c[0] != UNKNOWN_COUNTY else "不明")}</a></td>'
        f"<td>{esc(c[1])}</td><td>{c[2]}</td><td>{c[3]}</td><td>{c[4]}</td></tr>" for c in counties)
    return _document(title, f"<h1>{esc(title)}</h1>\n<p>{len(to_fix)} 个县区有需要更正的行（共 "
                            f"{sum(c[3] for c in counties)} 行），{len(counties) - len(to_fix)} 个县区没有。"
                            "点击县区查看需更正的行。</p>\n"
                            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
