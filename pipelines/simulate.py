"""Raise simulation (提标测算, issue 7): what a proposed raise of the dibao standards would cost.

`doudi simulate --from-month M --urban 5% --rural 7% [--effective YYYY-MM] [--first-payroll YYYY-MM]`

The scenario never touches the live reference tables or the warehouse. It copies the reference
folder to a scratch folder and adds, for every dibao standard version in force, a new version
raised by the given share (rounded half up to the yuan, or the fen with `--round fen`), effective
from `--effective`, first paid in `--first-payroll`. The payment engine itself (pipelines/compute.py)
then computes the first payroll twice on the warehouse's accepted rosters of month M: with the
live standards and with the scenario. The difference per county and program is the monthly cost
(program payments and price subsidies); ×12 the annual cost; the program difference × the months
from `--effective` to the month before `--first-payroll` the arrears that payroll would carry
(price subsidies carry no arrears: contract section 3). For each county it also reports the
average raise of its urban and rural standards against the targets, whether the rural standard
stays above the poverty line, and the urban-rural gap before and after.
"""

from __future__ import annotations

import shutil
import tempfile
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

from pipelines import artefacts
from pipelines.months import months_between, parse_month, shift_month
from pipelines.settings import RunContext, RunError
from pipelines.sqlrun import attach_warehouse, connect, register_reference, run_model, set_variables, sql_string

ROSTER_EXCLUDE = ("payroll_month", "unit_key", "line_program")


def parse_share(text: str) -> Decimal:
    """'5%', '5', '0.05' -> Decimal('0.05')."""
    try:
        value = Decimal(str(text).strip().rstrip("%"))
    except InvalidOperation:
        raise RunError(f"a raise must be a percentage such as 5% or 0.05, got {text!r}") from None
    if not value.is_finite():
        raise RunError(f"a raise must be a percentage such as 5% or 0.05, got {text!r}")
    share = value / 100 if (str(text).strip().endswith("%") or value >= 1) else value
    if share < 0 or share > 1:
        raise RunError(f"a raise of {text} is not a share between 0 and 100%")
    return share


def scenario_reference(live: Path, target: Path, urban: Decimal, rural: Decimal, effective: str,
                       first_payroll: str, rounding: str) -> list[dict]:
    """Copy the reference folder and add the raised dibao standards; return the raised rows."""
    import csv

    shutil.copytree(live, target)
    path = target / "standards.csv"
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    con = connect()
    register_reference(con, live)
    set_variables(con, payroll_month=first_payroll)
    run_model(con, "staging/stg_standards.sql")
    in_force = con.execute("""
        SELECT region_code, urban_rural, category, amount FROM stg_standards
        WHERE program = 'dibao' AND component = 'standard' AND first_payroll <= ? AND effective_from <= ?
          AND effective_to >= ?
        QUALIFY row_number() OVER (PARTITION BY region_code, urban_rural, category ORDER BY effective_from DESC) = 1
        ORDER BY ALL""", [first_payroll, effective, effective]).fetchall()
    con.close()
    quantum = Decimal("1") if rounding == "yuan" else Decimal("0.01")
    raised = []
    for region, urban_rural, category, amount in in_force:
        share = urban if urban_rural == "城市" else rural
        new = (amount * (1 + share)).quantize(quantum, rounding=ROUND_HALF_UP)
        raised.append({"program": "dibao", "component": "standard", "region_code": region,
                       "urban_rural": urban_rural, "category": category, "amount": f"{new:.2f}",
                       "effective_from": effective, "effective_to": "", "first_payroll": first_payroll,
                       "before": amount})
    # a scenario version replaces a live one of the same key and effective month
    keys = {(r["region_code"], r["urban_rural"], r["category"]) for r in raised}
    kept = [r for r in rows if not (r["program"] == "dibao" and r["component"] == "standard"
                                    and (r["region_code"], r["urban_rural"], r.get("category") or "*") in keys
                                    and r["effective_from"] == effective)]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept + [{k: r[k] for k in fields} for r in raised])
    return raised


def _engine_lines(ctx: RunContext, integrity: Path, reference: Path, scratch: Path) -> Path:
    """Run the payment engine for ctx.month on a given integrity output (the roster, its findings, the
    deaths known) and reference folder, without history."""
    from pipelines.compute import compute_payments

    run_ctx = RunContext(month=ctx.month, inbox=ctx.inbox, reference=reference, out=scratch / "out",
                         warehouse=scratch / "no-history.duckdb")
    artefacts.integrity_dir(run_ctx).mkdir(parents=True, exist_ok=True)
    for path in (artefacts.integrity_roster, artefacts.integrity_findings, artefacts.deaths_known):
        shutil.copy(integrity / path(run_ctx).name, path(run_ctx))  # `integrity`: a folder laid out as integrity's
    # every county is computed from the simulated tables, none held: a gap there is the engine's
    # no_standard finding in the simulation's report, not a county paid forward
    return Path(compute_payments(run_ctx, held={})["ledger_path"])


def simulate(ctx: RunContext, from_month: str, urban: Decimal, rural: Decimal, effective: str | None = None,
             first_payroll: str | None = None, rounding: str = "yuan", target_urban: Decimal | None = None,
             target_rural: Decimal | None = None) -> dict:
    from_month = parse_month(from_month)
    effective = parse_month(effective or shift_month(from_month, 1))
    first_payroll = parse_month(first_payroll or effective)
    if first_payroll < effective:
        raise RunError(f"the first payroll {first_payroll} is before the raise takes effect ({effective})")
    target_urban = urban if target_urban is None else target_urban
    target_rural = rural if target_rural is None else target_rural
    with tempfile.TemporaryDirectory(prefix="doudi-simulate-") as tmp:
        scratch = Path(tmp)
        con = connect()
        attach_warehouse(con, ctx.warehouse)
        roster = scratch / artefacts.integrity_roster(ctx).name  # laid out as integrity's folder
        n = con.execute("SELECT count(*) FROM wh.roster_row WHERE payroll_month = ?", [from_month]).fetchall()[0][0]
        if not n:
            raise RunError(f"the warehouse has no rosters for {from_month}: publish that month first")
        # the provincial average weights each county's standard by its dibao recipients of month M
        weights = {(r, u): n for r, u, n in con.execute(
            "SELECT region_code, urban_rural, count(*) FROM wh.roster_row WHERE payroll_month = ? "
            "AND program = 'dibao' AND disposition = 'accepted' GROUP BY ALL", [from_month]).fetchall()}
        con.execute(f"COPY (SELECT * EXCLUDE ({', '.join(ROSTER_EXCLUDE)}) FROM wh.roster_row "
                    f"WHERE payroll_month = '{from_month}') TO '{sql_string(str(roster))}' (FORMAT parquet)")
        # the month's integrity findings explain the roster units the engine pays nothing (its invariant);
        # the simulation computes one payroll without history, so no death is carried into it
        findings = scratch / artefacts.integrity_findings(ctx).name
        con.execute(f"COPY (SELECT source_file, source_row, id_number, program FROM wh.finding "
                    f"WHERE payroll_month = '{from_month}') TO '{sql_string(str(findings))}' "
                    "(FORMAT parquet)")
        con.execute(f"COPY (SELECT NULL::VARCHAR AS id_number, NULL::VARCHAR AS death_month, "
                    f"NULL::VARCHAR AS reported_month, NULL::VARCHAR AS source LIMIT 0) "
                    f"TO '{sql_string(str(scratch / artefacts.deaths_known(ctx).name))}' (FORMAT parquet)")
        con.close()
        scenario_ref = scratch / "reference"
        raised = scenario_reference(ctx.reference, scenario_ref, urban, rural, effective, first_payroll, rounding)
        run_ctx = RunContext(month=first_payroll, inbox=ctx.inbox, reference=ctx.reference, out=ctx.out,
                             warehouse=ctx.warehouse)
        before = _engine_lines(run_ctx, scratch, ctx.reference, scratch / "before")
        after = _engine_lines(run_ctx, scratch, scenario_ref, scratch / "after")
        arrears_months = months_between(effective, shift_month(first_payroll, -1))
        con = connect()
        register_reference(con, ctx.reference)
        set_variables(con, payroll_month=first_payroll, province_code=ctx.settings.province_code)
        run_model(con, "staging/stg_regions.sql")
        run_model(con, "staging/stg_standards.sql")
        con.execute(f"CREATE TABLE before_lines AS SELECT * FROM read_parquet('{sql_string(str(before))}')")
        con.execute(f"CREATE TABLE after_lines AS SELECT * FROM read_parquet('{sql_string(str(after))}')")
        costs = con.execute("""
            WITH b AS (SELECT region_code, program, line_type, sum(amount) AS amount FROM before_lines
                       WHERE status = 'payable' OR status = 'held' GROUP BY ALL),
                 a AS (SELECT region_code, program, line_type, sum(amount) AS amount FROM after_lines
                       WHERE status = 'payable' OR status = 'held' GROUP BY ALL),
                 d AS (SELECT coalesce(a.region_code, b.region_code) AS region_code,
                              coalesce(a.program, b.program) AS program,
                              sum(coalesce(a.amount, 0) - coalesce(b.amount, 0))
                                  FILTER (WHERE coalesce(a.line_type, b.line_type) = 'regular') AS program_delta,
                              sum(coalesce(a.amount, 0) - coalesce(b.amount, 0))
                                  FILTER (WHERE coalesce(a.line_type, b.line_type) = 'price_subsidy') AS price_delta
                       FROM a FULL JOIN b USING (region_code, program, line_type) GROUP BY ALL)
            SELECT d.region_code, coalesce(r.county_name, ''), d.program,
                   coalesce(program_delta, 0), coalesce(price_delta, 0),
                   coalesce(program_delta, 0) + coalesce(price_delta, 0) AS monthly,
                   12 * (coalesce(program_delta, 0) + coalesce(price_delta, 0)) AS annual,
                   ? * coalesce(program_delta, 0) AS arrears
            FROM d LEFT JOIN stg_regions r USING (region_code)
            WHERE coalesce(program_delta, 0) <> 0 OR coalesce(price_delta, 0) <> 0
            ORDER BY 1, 3""", [arrears_months]).fetchall()
        con.execute("CREATE TABLE raised (region_code VARCHAR, urban_rural VARCHAR, before DECIMAL(18, 2), "
                    "after DECIMAL(18, 2))")
        con.executemany("INSERT INTO raised VALUES (?, ?, ?, ?)",
                        [(r["region_code"], r["urban_rural"], r["before"], Decimal(r["amount"])) for r in raised])
        standards = con.execute("""
            WITH counties AS (SELECT region_code, county_name FROM stg_regions),
                 resolved AS (
                    SELECT c.region_code, c.county_name, x.urban_rural, x.before, x.after
                    FROM counties c JOIN raised x ON starts_with(c.region_code, x.region_code)
                    QUALIFY row_number() OVER (PARTITION BY c.region_code, x.urban_rural
                                               ORDER BY length(x.region_code) DESC) = 1),
                 poverty AS (
                    SELECT c.region_code, s.amount AS line
                    FROM counties c JOIN stg_standards s ON s.program = 'reference' AND s.component = 'poverty_line'
                     AND s.urban_rural = '农村' AND starts_with(c.region_code, s.region_code)
                     AND s.first_payroll <= ? AND s.effective_from <= ? AND s.effective_to >= ?
                    QUALIFY row_number() OVER (PARTITION BY c.region_code
                                               ORDER BY length(s.region_code) DESC, s.effective_from DESC) = 1)
            SELECT r.region_code, r.county_name,
                   max(before) FILTER (WHERE urban_rural = '城市') AS urban_before,
                   max(after) FILTER (WHERE urban_rural = '城市') AS urban_after,
                   max(before) FILTER (WHERE urban_rural = '农村') AS rural_before,
                   max(after) FILTER (WHERE urban_rural = '农村') AS rural_after,
                   min(p.line) AS poverty_line
            FROM resolved r LEFT JOIN poverty p USING (region_code)
            GROUP BY ALL ORDER BY 1""", [first_payroll, effective, effective]).fetchall()
        con.close()
    quantum = Decimal("1") if rounding == "yuan" else Decimal("0.01")
    checks = []
    for region, county, ub, ua, rb, ra, line in standards:
        urban_raise = (ua / ub - 1) if ub else None
        rural_raise = (ra / rb - 1) if rb else None
        checks.append({
            "region_code": region, "county": county, "urban_before": ub, "urban_after": ua,
            "urban_raise": urban_raise, "urban_meets_target": urban_raise is not None and urban_raise >= target_urban,
            "rural_before": rb, "rural_after": ra, "rural_raise": rural_raise,
            "rural_meets_target": rural_raise is not None and rural_raise >= target_rural,
            "poverty_line": line, "rural_above_poverty_line": line is None or (ra is not None and ra > line),
            "gap_before": (ub - rb) if ub is not None and rb is not None else None,
            "gap_after": (ua - ra) if ua is not None and ra is not None else None,
            "urban_rounding": rounding_note(ub, urban, target_urban, quantum),
            "rural_rounding": rounding_note(rb, rural, target_rural, quantum),
        })
    provincial = provincial_averages(checks, weights, {"城市": urban, "农村": rural},
                                     {"城市": target_urban, "农村": target_rural})
    cost_rows = [{"region_code": r[0], "county": r[1], "program": r[2], "program_monthly": r[3],
                  "price_subsidy_monthly": r[4], "monthly": r[5], "annual": r[6], "arrears": r[7]} for r in costs]
    return {"from_month": from_month, "effective": effective, "first_payroll": first_payroll,
            "urban": urban, "rural": rural, "arrears_months": arrears_months, "costs": cost_rows,
            "standards": checks, "provincial": provincial,
            "totals": {k: sum((c[k] for c in cost_rows), Decimal("0")) for k in ("monthly", "annual", "arrears")}}


def rounding_note(before: Decimal | None, share: Decimal, target: Decimal, quantum: Decimal) -> str:
    """Why a county that is raised by the target share still misses it: the new standard is rounded
    (half up, to the yuan or the fen), and rounding down can take the raise below the target."""
    if not before or share < target:
        return ""
    exact = before * (1 + share)
    after = exact.quantize(quantum, rounding=ROUND_HALF_UP)
    if after / before - 1 >= target:
        return ""
    return (f"{before} × (1 + {share * 100:.2f}%) = {exact.normalize():f}，四舍五入为 {after}，"
            f"实际提高 {(after / before - 1) * 100:.4f}%，低于目标 {target * 100:.2f}%：差额来自取整")


def provincial_averages(checks: list[dict], weights: dict, shares: dict, targets: dict) -> list[dict]:
    """The provincial average dibao standard before and after the raise, urban and rural, both
    weighted by recipients (the month's accepted dibao persons per county) and simple (each county
    once), against the targets; a miss that only the rounding of the counties' new standards
    causes (the unrounded raise meets the target) is explained."""
    key = {"城市": ("urban_before", "urban_after"), "农村": ("rural_before", "rural_after")}
    out = []
    for ur in ("城市", "农村"):
        b_key, a_key = key[ur]
        items = [(c[b_key], c[a_key], Decimal(weights.get((c["region_code"], ur), 0)))
                 for c in checks if c[b_key] is not None and c[a_key] is not None]
        for kind, label in (("weighted", "按保障人数加权"), ("simple", "简单平均（各县区同权）")):
            w = [(b, a, wt if kind == "weighted" else Decimal(1)) for b, a, wt in items]
            total = sum((x for _b, _a, x in w), Decimal(0))
            if not total:
                out.append({"urban_rural": ur, "kind": kind, "label": label, "before": None, "after": None,
                            "raise": None, "target": targets[ur], "meets": False, "note": "无保障人数，无法加权"})
                continue
            before = sum((b * x for b, _a, x in w), Decimal(0)) / total
            after = sum((a * x for _b, a, x in w), Decimal(0)) / total
            unrounded = sum((b * (1 + shares[ur]) * x for b, _a, x in w), Decimal(0)) / total
            rise = after / before - 1
            meets = rise >= targets[ur]
            note = ""
            if not meets and unrounded / before - 1 >= targets[ur]:
                note = (f"未取整时平均提高 {(unrounded / before - 1) * 100:.4f}%，达到目标；各县区新标准四舍五入后平均"
                        f"提高 {rise * 100:.4f}%：未达标完全来自取整")
            out.append({"urban_rural": ur, "kind": kind, "label": label,
                        "before": before.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP),
                        "after": after.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP),
                        "raise": rise, "target": targets[ur], "meets": meets, "note": note})
    return out


def write_xlsx(result: dict, path: Path) -> None:
    import io

    from pipelines.io import write_bytes_atomic
    from pipelines.spreadsheet import new_workbook, write_table
    from pipelines.vocabulary import PROGRAM_NAMES_ZH

    buf = io.BytesIO()
    wb, fmt = new_workbook(buf, result["first_payroll"])
    ws = wb.add_worksheet("测算汇总")
    title = (f"提标测算：城市 +{result['urban'] * 100:.1f}%，农村 +{result['rural'] * 100:.1f}%，"
             f"{result['effective']} 起执行，{result['first_payroll']} 首次发放（以 {result['from_month']} 名册测算）")
    ws.write(0, 0, title, fmt["title"])
    write_table(ws, fmt, ["行政区划代码", "县区", "项目", "救助金月增支", "价格临时补贴月增支", "月增支合计", "年增支",
                          f"首发月补发（{result['arrears_months']}个月）"],
                [[c["region_code"], c["county"], PROGRAM_NAMES_ZH.get(c["program"], c["program"]),
                  c["program_monthly"], c["price_subsidy_monthly"], c["monthly"], c["annual"], c["arrears"]]
                 for c in result["costs"]], money_columns={3, 4, 5, 6, 7}, start_row=2)
    ws2 = wb.add_worksheet("标准与目标")
    write_table(ws2, fmt, ["行政区划代码", "县区", "城市标准(前)", "城市标准(后)", "城市增幅", "达标", "农村标准(前)",
                           "农村标准(后)", "农村增幅", "达标", "扶贫标准", "高于扶贫标准", "城乡差(前)", "城乡差(后)"],
                [[s["region_code"], s["county"], s["urban_before"], s["urban_after"],
                  f"{s['urban_raise'] * 100:.2f}%" if s["urban_raise"] is not None else "",
                  "是" if s["urban_meets_target"] else "否", s["rural_before"], s["rural_after"],
                  f"{s['rural_raise'] * 100:.2f}%" if s["rural_raise"] is not None else "",
                  "是" if s["rural_meets_target"] else "否", s["poverty_line"],
                  "是" if s["rural_above_poverty_line"] else "否", s["gap_before"], s["gap_after"]]
                 for s in result["standards"]], money_columns={2, 3, 6, 7, 10, 12, 13})
    ws3 = wb.add_worksheet("全省平均")
    write_table(ws3, fmt, ["城乡", "平均方式", "提标前", "提标后", "提高", "目标", "达标", "说明"],
                [[a["urban_rural"], a["label"], a["before"], a["after"],
                  f"{a['raise'] * 100:.2f}%" if a["raise"] is not None else "", f"{a['target'] * 100:.2f}%",
                  "是" if a["meets"] else "否", a["note"]] for a in result["provincial"]], money_columns={2, 3})
    notes = [[s["region_code"], s["county"], "城市" if k == "urban_rounding" else "农村", s[k]]
             for s in result["standards"] for k in ("urban_rounding", "rural_rounding") if s[k]]
    if notes:
        ws4 = wb.add_worksheet("取整说明")
        write_table(ws4, fmt, ["行政区划代码", "县区", "城乡", "说明"], notes)
    wb.close()
    write_bytes_atomic(path, buf.getvalue())
