"""Issue 20, the reporting half: who to watch, who to visit, and the province's figures.

Computed from the published month (the warehouse, read-only) by the report stage, so `doudi run`
and the DAG's report task produce them alike:

- the watch list (监测预警名单), per county: dibao households whose per-capita income is close to
  the standard; households and persons that left dibao or tekun in the last N months; dibao
  households whose income dropped, or whose size changed, sharply since last month; people on the
  low-income register (`registry/low_income.csv`, contract section 3) on no program (应保未保
  candidates); orphans reaching the age-out age soon; dibao and tekun people passing an age
  threshold. Each entry names its rule (vocabulary.WATCH_RULES) and its evidence.
- the visit list (走访探视名单), per county and township: dispersed tekun, one-person elderly dibao
  households, dispersed orphans, nursing-subsidy recipients, dibao members marked 重病 or 重残, each
  with the last month paid and the payee (account masked), so a visit can confirm the money came.
- the monthly statistical return (月度统计报表) by city and county, and the raise's progress.

Every threshold is a policy_parameters.csv row (watch_*, visit_*, raise_*; REQUIRED_PARAMETERS in
pipelines/reference.py): a missing one stops with a sentence naming it, never a default.

The named lists go to caseworkers: `<out>/<M>/casework/<county>_监测预警名单.xlsx` and
`..._走访探视名单.xlsx`, names in full, ID numbers and accounts masked as in every report, one file
per county so a county sees only its own people. The statistical return has no personal data:
`<out>/<M>/reports/statistical_return.xlsx`. The analyst database carries both lists pseudonymised
(a_fact_watch, a_fact_visit; pipelines/analyst.py).
"""

from __future__ import annotations

import dataclasses
import io
from decimal import ROUND_HALF_UP, Decimal

from pipelines import artefacts
from pipelines.catalog import sql_string
from pipelines.months import shift_month
from pipelines.settings import RunContext, RunError
from pipelines.vocabulary import PROGRAM_NAMES_ZH, PROGRAM_SHORT_ZH, TOWNSHIP_HEADERS, VISIT_RULES, WATCH_RULES

WATCH_PARAMETERS = (
    "watch_near_standard_ratio", "watch_exit_lookback_months", "watch_income_drop_ratio",
    "watch_household_size_change", "watch_orphan_age_out_lookahead_months", "watch_age_lookahead_months",
    "watch_dibao_adult_age", "watch_dibao_elderly_age", "visit_elderly_min_age", "orphan_age_out",
    "tekun_minor_max_age", "tekun_elderly_min_age", "raise_target_urban", "raise_target_rural",
    "raise_baseline_lag_months",
)
MONTHLY = ("dibao", "tekun", "orphan", "disability")
TOWNSHIP_SQL = ("nullif(trim(coalesce(" + ", ".join(f"json_extract_string(extra, '$.\"{h}\"')"
                                                     for h in TOWNSHIP_HEADERS) + ")), '')")
LIST_COLUMNS = ("payroll_month VARCHAR, region_code VARCHAR, township VARCHAR, rule VARCHAR, program VARCHAR, "
                "id_number VARCHAR, household_id VARCHAR, name VARCHAR, sex VARCHAR, birth_date DATE, "
                "evidence VARCHAR")
VISIT_EXTRA = ("last_paid_month VARCHAR, last_paid_amount DECIMAL(18, 2), payee_name VARCHAR, "
               "payee_account VARCHAR, payee_bank_name VARCHAR")
LOW_INCOME_COLUMNS = ("reported_month VARCHAR, source_row BIGINT, id_number VARCHAR, name VARCHAR, "
                      "region_code VARCHAR, category VARCHAR, registered_month VARCHAR")


# --- inputs ------------------------------------------------------------------------------------

def parameters(con, month: str) -> dict[str, Decimal]:
    """The thresholds in force for the payroll month (stg_policy_parameters built for it): each
    exactly once and a number, or a RunError naming what is missing."""
    from pipelines.policy import REQUIRED_PARAMETERS, parameter_problems

    needed = {name: REQUIRED_PARAMETERS.get(name, "the watch list") for name in WATCH_PARAMETERS}
    problems = parameter_problems(con, month, needed)
    if problems:
        raise RunError("the watch list, visit list and raise progress cannot be made:\n  - " + "\n  - ".join(problems))
    values = dict(con.execute("SELECT parameter, value FROM stg_policy_parameters WHERE parameter IN ?",
                              [list(WATCH_PARAMETERS)]).fetchall())
    return {name: Decimal(str(values[name])).normalize() for name in WATCH_PARAMETERS}


def prepare(con, ctx: RunContext, month: str | None = None) -> dict[str, Decimal]:
    """On a connection with the warehouse attached as `wh`: the reference staged for `month` (default
    the run's), the low-income register as known to it, and its parameters."""
    from pipelines.sqlrun import register_reference, run_model, set_variables

    month = month or ctx.month
    set_variables(con, payroll_month=month, province_code=ctx.settings.province_code)
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'raw_standards'").fetchall()[0][0]:
        register_reference(con, ctx.reference)
    for model in ("stg_regions", "stg_standards", "stg_policy_parameters"):
        run_model(con, f"staging/{model}.sql")
    params = parameters(con, month)
    load_low_income(ctx, con, month)
    # a county whose reference data check_reference held this month (its county_reference_held
    # finding, published) has no standard to report: its people were paid forward (issue 20); the
    # lists and averages leave its broken standard out
    con.execute("CREATE OR REPLACE TEMP TABLE reference_held AS SELECT DISTINCT region_code FROM wh.finding "
                "WHERE payroll_month = ? AND finding_type = 'county_reference_held'", [month])
    return params


def load_low_income(ctx: RunContext, con, month: str) -> list[str]:
    """low_income_known: every entry of `registry/low_income.csv` reported from the warehouse's first
    month to `month` (contract section 1: extracts are deltas; what was reported stays known). Read
    as integrity reads the other extracts (no link followed, UTF-8 or GBK, columns checked); a month
    without the file adds nothing. Returns the months whose extract was read."""
    import pyarrow as pa

    from pipelines.integrity import _read_registry_csv

    first = con.execute("SELECT min(payroll_month) FROM wh.payment_ledger").fetchall()[0][0] or month
    con.execute(f"CREATE OR REPLACE TEMP TABLE low_income_known ({LOW_INCOME_COLUMNS})")
    read, m = [], min(first, month)
    while m <= month:
        rows = _read_registry_csv(dataclasses.replace(ctx, month=m), "low_income", {"id_number"})
        if rows:
            read.append(m)
            entries = pa.table({  # noqa: F841 (read by SQL)
                "source_row": pa.array(range(1, len(rows) + 1), pa.int64()),
                **{k: pa.array([r.get(k) for r in rows], pa.string())
                   for k in ("id_number", "name", "region_code", "category", "registered_month")}})
            con.execute("""INSERT INTO low_income_known
                SELECT ?, source_row, coalesce(norm_code(id_number), id_number), norm_text(name),
                       norm_code(region_code), norm_text(category), coalesce(norm_month(registered_month), ?)
                FROM entries""", [m, m])
        elif rows is not None:
            read.append(m)
        m = shift_month(m, 1)
    return read


def county_standards(con, table: str, payroll_month: str) -> None:
    """table: the dibao standard each county applies in `payroll_month` (as service month), urban and
    rural, resolved as the engine does (int_standard_resolved: longest prefix, then a specific
    urban/rural over `*`, then the latest effective_from), beside the rural poverty line. A county
    held for its reference data this month (prepare: reference_held) has no standard (NULL)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        WITH keys AS (SELECT r.region_code, r.county_name, r.city_code, r.city_name, u.urban_rural
                      FROM stg_regions r CROSS JOIN (VALUES ('城市'), ('农村')) u(urban_rural)),
             resolved AS (
                SELECT k.*, s.amount, s.program, s.component
                FROM keys k JOIN stg_standards s
                  ON ((s.program = 'dibao' AND s.component = 'standard')
                      OR (s.program = 'reference' AND s.component = 'poverty_line'))
                 AND starts_with(k.region_code, s.region_code) AND s.urban_rural IN ('*', k.urban_rural)
                 AND s.category = '*' AND s.first_payroll <= $m AND s.effective_from <= $m AND s.effective_to >= $m
                QUALIFY row_number() OVER (PARTITION BY k.region_code, k.urban_rural, s.program
                    ORDER BY length(s.region_code) DESC, (s.urban_rural <> '*') DESC, s.effective_from DESC) = 1)
        SELECT region_code, min(county_name) AS county_name, min(city_code) AS city_code,
               min(city_name) AS city_name, urban_rural,
               CASE WHEN region_code NOT IN (SELECT region_code FROM reference_held)
                    THEN max(amount) FILTER (WHERE program = 'dibao') END AS standard,
               max(amount) FILTER (WHERE program = 'reference') AS poverty_line
        FROM resolved GROUP BY region_code, urban_rural""", {"m": payroll_month})


# --- the lists ---------------------------------------------------------------------------------

def _age_turn(age) -> str:
    """The month (YYYY-MM) in which a person turns `age`."""
    return f"strftime(birth_date + to_years({int(age)}), '%Y-%m')"


AGE_SQL = ("(year(month_date($m)) - year(birth_date) - CASE WHEN month(month_date($m)) < month(birth_date) "
           "THEN 1 ELSE 0 END)")


def build_lists(con, month: str, p: dict[str, Decimal]) -> None:
    """Temp tables watch_list and visit_list for `month` (after prepare)."""
    county_standards(con, "watch_standard", month)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE watch_cur AS
        SELECT *, {TOWNSHIP_SQL} AS township FROM wh.roster_row
        WHERE payroll_month = $m AND disposition = 'accepted' AND program IN {MONTHLY}""", {"m": month})
    con.execute("""CREATE OR REPLACE TEMP TABLE watch_deaths AS
        SELECT DISTINCT id_number FROM wh.registry_entry WHERE registry = 'deaths' AND payroll_month <= $m""",
                {"m": month})
    prev = shift_month(month, -1)
    lookback = shift_month(month, -int(p["watch_exit_lookback_months"]))
    orphan_until = shift_month(month, int(p["watch_orphan_age_out_lookahead_months"]))
    age_until = shift_month(month, int(p["watch_age_lookahead_months"]))
    ages = [("dibao", p["watch_dibao_adult_age"], "“未成年”分类施保结束"),
            ("dibao", p["watch_dibao_elderly_age"], "可按“老年”分类施保"),
            ("tekun", p["tekun_minor_max_age"], "未成年人特困供养条件届满（有残疾等其他条件的除外）"),
            ("tekun", p["tekun_elderly_min_age"], "达到老年人特困供养年龄")]
    age_values = ", ".join(f"('{prog}', {int(a)}, '{meaning}')" for prog, a, meaning in ages)
    cols = "region_code, township, rule, program, id_number, household_id, name, sex, birth_date"
    con.execute(f"CREATE OR REPLACE TEMP TABLE watch_list ({LIST_COLUMNS})")
    age_cols = cols.replace("rule, program", "'age_threshold', c.program").replace("region_code,", "c.region_code,", 1)
    con.execute(f"""
        INSERT INTO watch_list
        WITH heads AS (SELECT * FROM watch_cur WHERE program = 'dibao' AND relation = '户主'),
        prev_heads AS (SELECT household_id, household_income, household_size FROM wh.roster_row
                       WHERE payroll_month = $prev AND program = 'dibao' AND relation = '户主'
                         AND disposition = 'accepted'
                       QUALIFY row_number() OVER (PARTITION BY household_id ORDER BY source_file, source_row) = 1),
        exits AS (
            SELECT program, unit_key, max(payroll_month) AS last_month,
                   arg_max(id_number, payroll_month) AS id_number, arg_max(region_code, payroll_month) AS region_code
            FROM wh.payment_ledger
            WHERE line_type = 'regular' AND program IN ('dibao', 'tekun')
              AND payroll_month >= $lookback AND payroll_month <= $m
            GROUP BY ALL HAVING max(payroll_month) < $m),
        exit_rows AS (
            SELECT e.*, r.name, r.sex, r.birth_date, r.household_id, {TOWNSHIP_SQL} AS township
            FROM exits e LEFT JOIN wh.roster_row r ON r.payroll_month = e.last_month AND r.program = e.program
                 AND r.id_number = e.id_number AND r.disposition = 'accepted'
            QUALIFY row_number() OVER (PARTITION BY e.program, e.unit_key ORDER BY r.source_file, r.source_row) = 1),
        register AS (SELECT * FROM low_income_known
                     QUALIFY row_number() OVER (PARTITION BY id_number ORDER BY reported_month DESC, source_row) = 1)
        SELECT $m, h.region_code, h.township, 'near_standard', 'dibao', h.id_number, h.household_id, h.name, h.sex,
               h.birth_date,
               printf('家庭人均收入 %.2f 元，低保标准 %.2f 元，为标准的 %.1f%%（监测线 %s%%）',
                      h.household_income / h.household_size, s.standard,
                      100 * h.household_income / h.household_size / s.standard, {_pct(p['watch_near_standard_ratio'])})
        FROM heads h JOIN watch_standard s USING (region_code, urban_rural)
        WHERE h.household_size > 0 AND s.standard > 0
          AND h.household_income >= s.standard * {p['watch_near_standard_ratio']} * h.household_size
          AND h.household_income < s.standard * h.household_size
        UNION ALL
        SELECT $m, e.region_code, e.township, 'recent_exit', e.program, e.id_number, e.household_id, e.name, e.sex,
               e.birth_date,
               '最后一次发放 ' || e.last_month || '（' || CASE e.program WHEN 'dibao' THEN '低保' ELSE '特困供养' END
               || '），本月无发放：' || coalesce(
                   (SELECT '本月名册在列但未发放（' || coalesce(max(c.not_paid_reason), '原因见核查清单') || '）'
                    FROM watch_cur c WHERE c.program = e.program AND c.id_number = e.id_number HAVING count(*) > 0),
                   '本月名册未报送')
        FROM exit_rows e WHERE NOT EXISTS (SELECT 1 FROM watch_deaths d WHERE d.id_number = e.id_number)
        UNION ALL
        SELECT $m, h.region_code, h.township, 'income_drop', 'dibao', h.id_number, h.household_id, h.name, h.sex,
               h.birth_date,
               printf('家庭月总收入 %.2f 元，上月 %.2f 元，下降 %.1f%%（监测线 %s%%）', h.household_income,
                      q.household_income, 100 * (q.household_income - h.household_income) / q.household_income,
                      {_pct(p['watch_income_drop_ratio'])})
        FROM heads h JOIN prev_heads q USING (household_id)
        WHERE q.household_income > 0
          AND q.household_income - h.household_income >= q.household_income * {p['watch_income_drop_ratio']}
        UNION ALL
        SELECT $m, h.region_code, h.township, 'household_size_change', 'dibao', h.id_number, h.household_id, h.name,
               h.sex, h.birth_date,
               printf('保障人口数 %d 人，上月 %d 人（监测线：增减 %d 人）', h.household_size, q.household_size,
                      {int(p['watch_household_size_change'])})
        FROM heads h JOIN prev_heads q USING (household_id)
        WHERE abs(h.household_size - q.household_size) >= {int(p['watch_household_size_change'])}
        UNION ALL
        SELECT $m, l.region_code, NULL, 'low_income_unassisted', NULL, l.id_number, NULL, l.name,
               id_sex(l.id_number), id_birth_date(l.id_number),
               '低收入人口登记' || coalesce('（' || l.category || '）', '')
               || coalesce('，' || l.registered_month || ' 登记', '')
               || '；本月不在任何救助名册，请核实是否符合条件、及时纳入'
        FROM register l
        WHERE l.id_number IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM watch_cur c WHERE c.id_number = l.id_number)
          AND NOT EXISTS (SELECT 1 FROM watch_deaths d WHERE d.id_number = l.id_number)
        UNION ALL
        SELECT $m, {cols.replace('rule, program', "'orphan_ageing_out', program")},
               {_age_turn(p['orphan_age_out'])} || ' 年满 {int(p['orphan_age_out'])} 周岁，该月后停发孤儿基本生活费；'
               || '请提前衔接其他救助'
        FROM watch_cur WHERE program = 'orphan' AND birth_date IS NOT NULL
          AND {_age_turn(p['orphan_age_out'])} BETWEEN $m AND $orphan_until
        UNION ALL
        SELECT DISTINCT $m, {age_cols},
               strftime(c.birth_date + to_years(a.age), '%Y-%m') || ' 年满 ' || a.age || ' 周岁：' || a.meaning
        FROM watch_cur c JOIN (VALUES {age_values}) a(program, age, meaning) ON a.program = c.program
        WHERE c.birth_date IS NOT NULL
          AND strftime(c.birth_date + to_years(a.age), '%Y-%m') BETWEEN $m AND $age_until
        """, {"m": month, "prev": prev, "lookback": lookback, "orphan_until": orphan_until, "age_until": age_until})
    con.execute(f"CREATE OR REPLACE TEMP TABLE visit_list ({LIST_COLUMNS}, {VISIT_EXTRA})")
    con.execute(f"""
        INSERT INTO visit_list
        WITH v AS (
            SELECT *, 'tekun_dispersed' AS rule, 'tekun' AS paid_program, id_number AS paid_unit,
                   '分散供养，' || coalesce(care_level, '') || '，' || {AGE_SQL} || ' 岁' AS evidence
            FROM watch_cur WHERE program = 'tekun' AND placement = '分散供养'
            UNION ALL BY NAME
            SELECT *, 'dibao_elderly_alone' AS rule, 'dibao' AS paid_program, household_id AS paid_unit,
                   '一人户，' || {AGE_SQL} || ' 岁' AS evidence
            FROM watch_cur WHERE program = 'dibao' AND household_size = 1 AND birth_date IS NOT NULL
              AND {_age_turn(p['visit_elderly_min_age'])} <= $m
            UNION ALL BY NAME
            SELECT *, 'dispersed_orphan' AS rule, 'orphan' AS paid_program, id_number AS paid_unit,
                   placement || '，' || {AGE_SQL} || ' 岁' AS evidence
            FROM watch_cur WHERE program = 'orphan' AND placement IN ('社会散居', '事实无人抚养')
            UNION ALL BY NAME
            SELECT *, 'nursing_subsidy' AS rule, 'disability_nursing' AS paid_program, id_number AS paid_unit,
                   '重度残疾人护理补贴，残疾等级 ' || coalesce(disability_grade, '?') || ' 级' AS evidence
            FROM watch_cur WHERE program = 'disability' AND subsidy_type = '护理补贴'
            UNION ALL BY NAME
            SELECT *, 'dibao_ill_or_disabled' AS rule, 'dibao' AS paid_program, household_id AS paid_unit,
                   '分类施保：' || array_to_string(class_categories, '、') AS evidence
            FROM watch_cur WHERE program = 'dibao' AND list_has_any(class_categories, ['重病', '重残'])),
        paid AS (
            SELECT program, unit_key, payroll_month, sum(amount) AS amount, min(payee_name) AS payee_name,
                   min(payee_account) AS payee_account, min(payee_bank_name) AS payee_bank_name
            FROM wh.payment_ledger
            WHERE status = 'payable' AND payment_state IS DISTINCT FROM 'failed' AND payroll_month <= $m
              AND line_type <> 'one_off'
            GROUP BY program, unit_key, payroll_month
            QUALIFY row_number() OVER (PARTITION BY program, unit_key ORDER BY payroll_month DESC) = 1)
        SELECT DISTINCT $m, v.region_code, v.township, v.rule, v.program, v.id_number, v.household_id, v.name, v.sex,
               v.birth_date, v.evidence, p.payroll_month, p.amount, p.payee_name, p.payee_account, p.payee_bank_name
        FROM v LEFT JOIN paid p ON p.program = v.paid_program AND p.unit_key = v.paid_unit
        """, {"m": month})


def _pct(ratio: Decimal) -> str:
    return f"'{(ratio * 100).normalize():f}'"


# the lists' order; the last keys only break ties, so that a rerun writes the same bytes
ORDER = ("ORDER BY region_code, township NULLS LAST, {rules}, id_number, program NULLS FIRST, household_id, name, "
         "evidence")


def _rule_order(rules: dict) -> str:
    return "CASE rule " + " ".join(f"WHEN '{r}' THEN {i}" for i, r in enumerate(rules)) + " END"


# --- the province's figures ----------------------------------------------------------------------

STAT_PROGRAMS = ("dibao", "tekun", "orphan", "disability_living", "disability_nursing", "temporary", "price_subsidy")
STAT_PROGRAM_ZH = {**PROGRAM_NAMES_ZH, "price_subsidy": "价格临时补贴"}


def statistical_return(con, month: str) -> list[dict]:
    """One row per (level, region, program, urban/rural): province (level 0), city (1), county (2).

    - households: dibao households with a payable regular line this month;
    - persons: covered persons paid this month (dibao: the members of those households, the
      household_size the line was computed with; temporary assistance: cases; the price subsidy:
      persons who received one);
    - spending: every payable line of the month (regular, arrears, reissue, one-off), the price
      subsidy apart as its own program; these add up to the ledger's payable total to the fen;
    - regular: spending on this month's regular lines, and standard_x_persons the dibao standard
      each household was computed with × its members (for the average standard)."""
    rows = con.execute("""
        WITH l AS (
            SELECT l.*, r.city_code, r.city_name, r.county_name,
                   CASE WHEN line_type = 'price_subsidy' THEN 'price_subsidy' ELSE program END AS stat_program,
                   CASE WHEN program = 'dibao' AND line_type = 'regular'
                        THEN CAST(json_extract_string(inputs, '$.household_size') AS INTEGER) END AS members,
                   CASE WHEN program = 'dibao' AND line_type = 'regular'
                        THEN CAST(json_extract_string(inputs, '$.standard') AS DECIMAL(18, 2)) END AS standard
            FROM wh.payment_ledger l LEFT JOIN stg_regions r USING (region_code)
            WHERE l.payroll_month = $m AND l.status = 'payable')
        SELECT grouping(city_code) + grouping(region_code) AS up, city_code, min(city_name),
               region_code, min(county_name), stat_program, coalesce(urban_rural, ''),
               count(DISTINCT household_id) FILTER (WHERE stat_program = 'dibao' AND line_type = 'regular'),
               CASE WHEN stat_program = 'dibao' THEN coalesce(sum(members), 0)
                    WHEN stat_program = 'temporary' THEN count(*)
                    ELSE count(DISTINCT id_number) FILTER (WHERE line_type IN ('regular', 'price_subsidy')) END,
               sum(amount), coalesce(sum(amount) FILTER (WHERE line_type = 'regular'), 0),
               coalesce(sum(standard * members), 0)
        FROM l
        GROUP BY GROUPING SETS ((city_code, region_code, stat_program, urban_rural),
                                (city_code, stat_program, urban_rural), (stat_program, urban_rural))
        """, {"m": month}).fetchall()
    out = []
    for up, city, city_name, region, county, program, ur, households, persons, spending, regular, sxp in rows:
        level = 2 - up
        out.append({"level": level, "city_code": city or "", "city_name": city_name or "",
                    "region_code": region or "", "county_name": county or "", "program": program,
                    "urban_rural": ur, "households": households, "persons": persons, "spending": spending,
                    "regular": regular, "standard_x_persons": sxp,
                    "average_standard": _div(sxp, persons) if program == "dibao" else None,
                    "average_payment": _div(regular, persons)})
    out.sort(key=lambda r: (r["level"] > 0, r["city_code"], r["level"], r["region_code"],
                            STAT_PROGRAMS.index(r["program"]) if r["program"] in STAT_PROGRAMS else 99,
                            r["urban_rural"]))
    return out


def _div(a, b) -> Decimal | None:
    if not b:
        return None
    return (Decimal(a) / Decimal(b)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def ledger_total(con, month: str) -> Decimal:
    return con.execute("SELECT coalesce(sum(amount), 0) FROM wh.payment_ledger WHERE payroll_month = ? "
                       "AND status = 'payable'", [month]).fetchall()[0][0]


def weighted_and_simple(rows: list[tuple]) -> dict:
    """rows: (region_code, urban_rural, standard, weight). The provincial average standard per
    urban/rural, weighted by recipients and simple (each county counts once)."""
    out = {}
    for ur in ("城市", "农村"):
        items = [(s, w) for _r, u, s, w in rows if u == ur and s is not None]
        weight = sum((w for _s, w in items), 0)
        out[ur] = {
            "weighted": _div(sum((s * w for s, w in items), Decimal(0)), weight),
            "simple": _div(sum((s for s, _w in items), Decimal(0)), len(items)),
            "recipients": weight, "counties": len(items)}
    return out


def raise_progress(con, month: str, p: dict[str, Decimal]) -> dict:
    """The provincial average dibao standard now against the standard of the baseline month (the same
    recipients' weights: what changed is the standard, not who is paid), the targets, the rural
    standard against the poverty line, and the months of continuous price linkage."""
    base_month = shift_month(month, -int(p["raise_baseline_lag_months"]))
    county_standards(con, "raise_now", month)
    county_standards(con, "raise_base", base_month)
    weights = dict(((r, u), w) for r, u, w in con.execute("""
        SELECT region_code, urban_rural, sum(CAST(json_extract_string(inputs, '$.household_size') AS INTEGER))
        FROM wh.payment_ledger WHERE payroll_month = ? AND status = 'payable' AND program = 'dibao'
          AND line_type = 'regular' GROUP BY ALL""", [month]).fetchall())
    counties = con.execute("""
        SELECT n.region_code, n.county_name, n.urban_rural, n.standard, b.standard, n.poverty_line
        FROM raise_now n JOIN raise_base b USING (region_code, urban_rural) ORDER BY 1, 3 DESC""").fetchall()
    now = weighted_and_simple([(r, u, s, weights.get((r, u), 0)) for r, _c, u, s, _b, _l in counties])
    base = weighted_and_simple([(r, u, b, weights.get((r, u), 0)) for r, _c, u, _s, b, _l in counties])
    target = {"城市": p["raise_target_urban"], "农村": p["raise_target_rural"]}
    averages = []
    for ur in ("城市", "农村"):
        for kind, label in (("weighted", "按保障人数加权"), ("simple", "简单平均（各县区同权）")):
            n, b = now[ur][kind], base[ur][kind]
            rise = (n / b - 1) if n is not None and b else None
            averages.append({"urban_rural": ur, "kind": kind, "label": label, "base": b, "now": n, "raise": rise,
                             "target": target[ur], "meets": rise is not None and rise >= target[ur]})
    rural = [c for c in counties if c[2] == "农村"]
    below = [(r, name, s, line) for r, name, _u, s, _b, line in rural if line is not None and (s is None or s <= line)]
    lines = [(r, "农村", line, weights.get((r, "农村"), 0)) for r, _n, _u, _s, _b, line in rural]
    poverty = weighted_and_simple(lines)["农村"]
    linked = [m for (m,) in con.execute("""
        SELECT DISTINCT payroll_month FROM wh.payment_ledger WHERE line_type = 'price_subsidy' AND status = 'payable'
          AND payroll_month <= ? ORDER BY 1 DESC""", [month]).fetchall()]
    run, m = 0, month
    while m in linked:
        run, m = run + 1, shift_month(m, -1)
    first = con.execute("SELECT min(payroll_month) FROM wh.payment_ledger").fetchall()[0][0]
    return {"month": month, "base_month": base_month, "averages": averages, "counties": counties,
            "weights": weights, "below_poverty_line": below, "poverty_line": poverty,
            "rural_weighted": now["农村"]["weighted"], "price_linkage_months": run,
            "price_linkage_since_first": run > 0 and shift_month(month, -run + 1) == first, "first_month": first}


# --- rendering -----------------------------------------------------------------------------------

def county_names(con) -> dict[str, str]:
    return dict(con.execute("SELECT region_code, county_name FROM stg_regions ORDER BY 1").fetchall())


def _age_expr() -> str:
    return ("CASE WHEN birth_date IS NULL THEN NULL ELSE year(month_date(payroll_month)) - year(birth_date) - "
            "CASE WHEN month(month_date(payroll_month)) < month(birth_date) THEN 1 ELSE 0 END END")


WATCH_HEADERS = ["序号", "预警规则", "规则代码", "姓名", "身份证号（脱敏）", "性别", "年龄", "项目", "家庭编号", "依据",
                 "核查情况", "核查人"]
VISIT_HEADERS = ["序号", "走访类别", "姓名", "身份证号（脱敏）", "性别", "年龄", "项目", "依据", "最后发放月份",
                 "最后发放金额", "收款人", "收款账号（脱敏）", "开户银行", "走访日期", "是否到账", "走访人"]


WATCH_COLUMN_WIDTHS = (6, 22, 22, 10, 21, 5, 5, 9, 15, 50, 16, 9)
VISIT_COLUMN_WIDTHS = (6, 22, 10, 21, 5, 5, 9, 30, 10, 11, 10, 21, 14, 11, 9, 9)
VISIT_MONEY_COLUMN = VISIT_HEADERS.index("最后发放金额")


def finish_list_sheet(ws, fmt, headers: list[str], widths: tuple[int, ...], end: int,
                      money_column: int | None = None) -> None:
    """Under a list's table (which ends before row `end`): its columns' widths, the print set-up
    and the signature block."""
    from pipelines.spreadsheet import print_setup, signature_block

    for col, width in enumerate(widths):
        ws.set_column(col, col, width, fmt["money"] if col == money_column else None)
    print_setup(ws, header_rows=(2, 2), last_col=len(headers) - 1)
    signature_block(ws, fmt, end + 1)


def _program_zh(p) -> str:
    return PROGRAM_SHORT_ZH.get(p, p or "")


def write_casework(ctx: RunContext, con) -> dict:
    """The named watch and visit lists, one workbook of each per county of regions.csv. The rows
    stay in DuckDB (pipelines/sheet_rows.py): at province scale they are about a million."""
    from pipelines.io import atomic_path, ensure_dir

    watch = _casework_rows(con, "watch_list", WATCH_RULES, ["rule", "name", "mask_id(id_number)", "sex",
                                                            _age_expr(), _program_sql(), "household_id", "evidence"],
                           by_township=False)
    visit = _casework_rows(con, "visit_list", VISIT_RULES,
                           ["name", "mask_id(id_number)", "sex", _age_expr(), _program_sql(), "evidence",
                            "coalesce(nullif(last_paid_month, ''), '未发放')", "last_paid_amount", "payee_name",
                            "mask_account(payee_account)", "payee_bank_name"], by_township=True)
    counties = county_names(con)
    folder = ensure_dir(ctx.month_out / "casework")
    for old in folder.glob("*.xlsx"):  # a rerun leaves no county's list of before
        old.unlink()
    files = []
    for region in sorted(set(counties) | set(watch) | set(visit)):
        name = counties.get(region, "未知县区")
        label = f"{region or '000000'}_{name}"
        for kind, render, counts in (("监测预警名单", render_watch, watch.get(region, {})),
                                     ("走访探视名单", render_visit, visit.get(region, {}))):
            path = folder / f"{label}_{kind}.xlsx"
            with atomic_path(path) as tmp:
                tmp.write_bytes(render(con, ctx.month, region, name, counts))
            files.append(path.name)
    con.execute("DROP TABLE casework_watch_list")
    con.execute("DROP TABLE casework_visit_list")
    return {"casework": str(folder), "files": len(files),
            "watch_entries": sum(n for towns in watch.values() for rules in towns.values() for n in rules.values()),
            "visit_entries": sum(n for towns in visit.values() for rules in towns.values() for n in rules.values())}


def _program_sql() -> str:
    """_program_zh in SQL."""
    return _labels_sql("program", PROGRAM_SHORT_ZH, "coalesce(program, '')")


def _labels_sql(column: str, labels: dict[str, str], otherwise: str) -> str:
    whens = " ".join(f"WHEN '{sql_string(k)}' THEN '{sql_string(v)}'" for k, v in labels.items())
    return f"CASE {column} {whens} ELSE {otherwise} END"


def _casework_rows(con, table: str, rules: dict, cells: list[str], by_township: bool) -> dict:
    """Temp table casework_<table>: a list's rows as their workbook shows them (`region`, `town`,
    `rn` the row's number on its sheet, then the cells c1.. after the number), in the list's order;
    returns the rows' counts by region, township ('' where the list's sheets are not by township)
    and rule. A county's rows of no township, NULL or '', are one sheet, as in the workbook."""
    town = "coalesce(township, '')" if by_township else "''"
    keys = ORDER.removeprefix("ORDER BY ").format(rules=_rule_order(rules))
    label = _labels_sql("rule", rules, "rule")
    columns = ", ".join(f"{expr} AS c{i}" for i, expr in enumerate([label, *cells], start=1))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE casework_{table} AS
        SELECT coalesce(region_code, '') AS region, {town} AS town, rule,
               row_number() OVER (PARTITION BY coalesce(region_code, ''), {town} ORDER BY {keys}) AS rn, {columns}
        FROM {table} ORDER BY region, town, rn""")
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for region, town_name, rule, n in con.execute(
            f"SELECT region, town, rule, count(*) FROM casework_{table} GROUP BY ALL ORDER BY ALL").fetchall():
        counts.setdefault(region, {}).setdefault(town_name, {})[rule] = n
    return counts


def _summary(counts: dict[str, int], rules: dict) -> str:
    parts = [f"{rules[k]} {counts[k]}" for k in rules if k in counts]
    return f"合计 {sum(counts.values())} 条" + ("：" + "，".join(parts) if parts else "（本月无）")


def _sheet_query(table: str, width: int) -> str:
    """A sheet's rows of casework_<table>: the row's number, then its cells."""
    return (f"SELECT rn, rn, {', '.join(f'c{i}' for i in range(1, width))} FROM casework_{table} "
            "WHERE region = ? AND town = ?")


def render_watch(con, month: str, region: str, county: str, towns: dict[str, dict[str, int]]) -> bytes:
    from pipelines.sheet_rows import write_table_from_query
    from pipelines.spreadsheet import new_workbook

    buf = io.BytesIO()
    wb, fmt = new_workbook(buf, month)
    ws = wb.add_worksheet("监测预警名单")
    ws.write(0, 0, f"{month} 监测预警名单　{region} {county}", fmt["title"])
    ws.write(1, 0, _summary(towns.get("", {}), WATCH_RULES), fmt["bold"])
    # 序号, 规则, 规则代码, 姓名, 身份证号, 性别, 年龄, 项目, 家庭编号, 依据 (核查情况, 核查人: left blank)
    end = write_table_from_query(ws, fmt, WATCH_HEADERS, con, _sheet_query("watch_list", 10), [region, ""],
                                 "ntttttnttt", start_row=2)
    finish_list_sheet(ws, fmt, WATCH_HEADERS, WATCH_COLUMN_WIDTHS, end)
    wb.close()
    return buf.getvalue()


def render_visit(con, month: str, region: str, county: str, towns: dict[str, dict[str, int]]) -> bytes:
    """One sheet per township (乡镇/街道) where the rosters give one, else the county's one sheet."""
    from pipelines.sheet_rows import write_table_from_query
    from pipelines.spreadsheet import new_workbook

    buf = io.BytesIO()
    wb, fmt = new_workbook(buf, month)
    towns = towns or {"": {}}
    used: set[str] = set()
    for town in sorted(towns, key=lambda t: (t == "", t)):
        sheet = _sheet_name(town or "未填乡镇（街道）" if len(towns) > 1 else town or "走访探视名单", used)
        ws = wb.add_worksheet(sheet)
        place = f"{region} {county}" + (f" {town}" if town else "")
        ws.write(0, 0, f"{month} 走访探视名单　{place}", fmt["title"])
        ws.write(1, 0, _summary(towns[town], VISIT_RULES) + "；一人多类者各列一行，走访一次即可", fmt["bold"])
        # 序号, 类别, 姓名, 身份证号, 性别, 年龄, 项目, 依据, 最后发放月份, 金额, 收款人, 账号, 开户银行
        # (走访日期, 是否到账, 走访人: left blank)
        end = write_table_from_query(ws, fmt, VISIT_HEADERS, con, _sheet_query("visit_list", 13), [region, town],
                                     "nttttntttnttt", money_columns={VISIT_MONEY_COLUMN}, start_row=2)
        finish_list_sheet(ws, fmt, VISIT_HEADERS, VISIT_COLUMN_WIDTHS, end, money_column=VISIT_MONEY_COLUMN)
    wb.close()
    return buf.getvalue()


def _sheet_name(name: str, used: set[str]) -> str:
    for ch in "[]:*?/\\":
        name = name.replace(ch, "")
    name = name[:31] or "无"
    base, k = name[:28], 1
    while name in used:
        k += 1
        name = f"{base}_{k}"
    used.add(name)
    return name


STAT_RETURN_COLUMNS = {
    "地区": "省、市（小计）或县区",
    "户数": "低保：本月有当月发放的家庭数",
    "人数": "本月发放对象人数：低保为这些家庭的保障人口之和；临时救助为案件数（人次）；价格临时补贴为领取人数",
    "支出": "本月应付（payable）的全部台账金额：当月、补发、重发、一次性；价格临时补贴单列。各项目之和等于台账合计",
    "平均保障标准": "低保：各家庭计算所用的低保标准按保障人口加权的平均，元/人·月",
    "月人均补助水平": "当月（不含补发、重发）支出 ÷ 人数，元/人·月",
}


def write_statistical_return(ctx: RunContext, con, p: dict[str, Decimal]) -> dict:
    from pipelines.io import atomic_path

    rows = statistical_return(con, ctx.month)
    total = ledger_total(con, ctx.month)
    progress = raise_progress(con, ctx.month, p)
    path = artefacts.statistical_return_xlsx(ctx)
    with atomic_path(path) as tmp:
        tmp.write_bytes(render_statistical_return(ctx.month, rows, total, progress))
    return {"statistical_return_xlsx": str(path), "ledger_total": total, "progress": progress}


def _region_label(r: dict) -> str:
    if r["level"] == 0:
        return "全省合计"
    if r["level"] == 1:
        return f"{r['city_code']} {r['city_name']}（小计）"
    return f"{r['region_code']} {r['county_name']}"


def render_statistical_return(month: str, rows: list[dict], total: Decimal, progress: dict) -> bytes:
    from pipelines.spreadsheet import new_workbook, print_setup, signature_block, write_table

    buf = io.BytesIO()
    wb, fmt = new_workbook(buf, month)
    # 汇总: spending by program, the province first (totals on the first page)
    regions: dict[tuple, dict] = {}
    for r in rows:
        key = (r["level"], r["city_code"], r["region_code"])
        regions.setdefault(key, {"label": _region_label(r), "sort": len(regions)})
        regions[key][r["program"]] = regions[key].get(r["program"], Decimal(0)) + r["spending"]
    ws = wb.add_worksheet("汇总")
    ws.write(0, 0, f"{month} 社会救助月度统计报表（支出，元）　全省", fmt["title"])
    province = sum((v for k, d in regions.items() if k[0] == 0 for p, v in d.items() if p in STAT_PROGRAMS),
                   Decimal(0))
    ws.write(1, 0, f"台账应付合计 {total:,.2f} 元；全省各项目支出之和 {province:,.2f} 元", fmt["bold"])
    headers = ["地区"] + [STAT_PROGRAM_ZH[p] for p in STAT_PROGRAMS] + ["合计"]
    body = []
    for _key, d in sorted(regions.items(), key=lambda kv: kv[1]["sort"]):
        amounts = [d.get(p, Decimal(0)) for p in STAT_PROGRAMS]
        body.append([d["label"], *amounts, sum(amounts, Decimal(0))])
    end = write_table(ws, fmt, headers, body, money_columns=set(range(1, len(headers))), start_row=2)
    ws.set_column(0, 0, 24)
    print_setup(ws, header_rows=(2, 2), last_col=len(headers) - 1)
    signature_block(ws, fmt, end + 1)
    # 低保: households, persons, spending, average standard and payment, urban and rural
    ws = wb.add_worksheet("低保")
    ws.write(0, 0, f"{month} 最低生活保障月度统计　全省", fmt["title"])
    headers = ["地区"] + [f"{ur}{h}" for ur in ("城市", "农村") for h in ("户数", "人数", "支出", "平均保障标准",
                                                                       "月人均补助水平")]
    dib: dict[tuple, dict] = {}
    for r in rows:
        if r["program"] == "dibao":
            key = (r["level"], r["city_code"], r["region_code"])
            dib.setdefault(key, {"label": _region_label(r), "sort": regions[key]["sort"]})[r["urban_rural"]] = r
    body = []
    for _key, d in sorted(dib.items(), key=lambda kv: kv[1]["sort"]):
        line = [d["label"]]
        for ur in ("城市", "农村"):
            x = d.get(ur)
            line += [x["households"], x["persons"], x["spending"], x["average_standard"], x["average_payment"]] if x \
                else [0, 0, Decimal(0), None, None]
        body.append(line)
    end = write_table(ws, fmt, headers, body, money_columns={3, 4, 5, 8, 9, 10}, start_row=1)
    ws.set_column(0, 0, 24)
    print_setup(ws, header_rows=(1, 1), last_col=len(headers) - 1)
    signature_block(ws, fmt, end + 1)
    # 其他项目: one row per region, program and urban/rural
    ws = wb.add_worksheet("其他项目")
    ws.write(0, 0, f"{month} 特困供养、孤儿、残疾人两项补贴、临时救助、价格临时补贴月度统计　全省", fmt["title"])
    body = [[_region_label(r), STAT_PROGRAM_ZH.get(r["program"], r["program"]), r["urban_rural"], r["persons"],
             r["spending"], r["average_payment"]]
            for r in rows if r["program"] != "dibao"]
    end = write_table(ws, fmt, ["地区", "项目", "城乡", "人数（人次）", "支出", "月人均补助水平"], body,
                      money_columns={4, 5}, start_row=1)
    ws.set_column(0, 1, 24)
    print_setup(ws, header_rows=(1, 1), last_col=5)
    signature_block(ws, fmt, end + 1)
    render_progress(wb, fmt, progress)
    ws = wb.add_worksheet("口径说明")
    ws.write(0, 0, f"{month} 社会救助月度统计报表　口径说明", fmt["title"])
    write_table(ws, fmt, ["栏目", "口径"], list(STAT_RETURN_COLUMNS.items()), start_row=1)
    ws.set_column(1, 1, 100)
    print_setup(ws, header_rows=(1, 1), last_col=1)
    wb.close()
    return buf.getvalue()


def progress_lines(progress: dict) -> list[str]:
    """The raise's progress in sentences (the sheet's head and the terminal)."""
    out = []
    for a in progress["averages"]:
        if a["raise"] is None:
            out.append(f"全省{a['urban_rural']}低保平均标准（{a['label']}）：基期 {progress['base_month']} "
                       "无标准，无法比较")
            continue
        out.append(f"全省{a['urban_rural']}低保平均标准（{a['label']}）：{a['now']} 元，基期 {progress['base_month']} "
                   f"{a['base']} 元，提高 {a['raise'] * 100:.2f}%，目标 {a['target'] * 100:.2f}%："
                   f"{'达到' if a['meets'] else '未达到'}")
    below = progress["below_poverty_line"]
    line = progress["poverty_line"]["weighted"]
    out.append(f"农村低保标准与扶贫标准：全省加权平均 {progress['rural_weighted']} 元，扶贫标准（加权）{line} 元；"
               + (f"{len(below)} 个县区不高于扶贫标准：" + "，".join(f"{r} {n}" for r, n, _s, _l in below)
                  if below else "所有县区均高于扶贫标准"))
    n = progress["price_linkage_months"]
    since = (f"（自仓库最早月份 {progress['first_month']} 起，实际可能更长）"
             if progress["price_linkage_since_first"] else "")
    out.append(f"价格临时补贴联动：截至本月连续 {n} 个月发放{since}" if n else "价格临时补贴联动：本月未发放")
    return out


def render_progress(wb, fmt, progress: dict) -> None:
    from pipelines.spreadsheet import print_setup, signature_block, write_table

    ws = wb.add_worksheet("提标进度")
    ws.write(0, 0, f"{progress['month']} 低保提标进度　全省", fmt["title"])
    lines = progress_lines(progress)
    for i, text in enumerate(lines, start=1):
        ws.write(i, 0, text, fmt["bold"] if i <= 4 else None)
    start = len(lines) + 2
    body = [[a["urban_rural"], a["label"], a["base"], a["now"],
             f"{a['raise'] * 100:.2f}%" if a["raise"] is not None else "", f"{a['target'] * 100:.2f}%",
             "是" if a["meets"] else "否"] for a in progress["averages"]]
    headers = ["城乡", "平均方式", f"基期 {progress['base_month']}", "本月", "提高", "目标", "达标"]
    end = write_table(ws, fmt, headers, body, money_columns={2, 3}, start_row=start)
    body = [[r, name, ur, s, b, f"{(s / b - 1) * 100:.2f}%" if s is not None and b else "",
             progress["weights"].get((r, ur), 0), line if ur == "农村" else None,
             ("是" if s is not None and line is not None and s > line else "否") if ur == "农村" else ""]
            for r, name, ur, s, b, line in progress["counties"]]
    end = write_table(ws, fmt, ["行政区划代码", "县区", "城乡", "本月标准", "基期标准", "提高", "本月保障人数（权重）",
                                "扶贫标准", "高于扶贫标准"], body, money_columns={3, 4, 7}, start_row=end + 1)
    ws.set_column(0, 0, 14)
    print_setup(ws, header_rows=(start, start), last_col=8)
    signature_block(ws, fmt, end + 1)


def write_watch_reports(ctx: RunContext, con) -> dict:
    """The report stage's part (con: warehouse attached as `wh`, macros loaded)."""
    params = prepare(con, ctx)
    build_lists(con, ctx.month, params)
    casework = write_casework(ctx, con)
    stats = write_statistical_return(ctx, con, params)
    return {"casework": casework["casework"], "watch_entries": casework["watch_entries"],
            "visit_entries": casework["visit_entries"], "statistical_return_xlsx": stats["statistical_return_xlsx"]}


def lists_for_analysts(ctx: RunContext, months: list[str] | None = None):
    """Both lists for every month given (default: every payroll month of the warehouse), as Arrow
    tables with full ID numbers, in memory only (the analyst database pseudonymises them as it
    copies them in)."""
    from pipelines.sqlrun import attach_warehouse, connect, register_reference

    con = connect(ctx)
    try:
        attach_warehouse(con, ctx.warehouse)
        register_reference(con, ctx.reference)
        if months is None:
            months = [m for (m,) in con.execute("SELECT DISTINCT payroll_month FROM wh.payment_ledger "
                                                "ORDER BY 1").fetchall()]
        con.execute(f"CREATE TEMP TABLE all_watch ({LIST_COLUMNS})")
        con.execute(f"CREATE TEMP TABLE all_visit ({LIST_COLUMNS}, {VISIT_EXTRA})")
        for month in months:
            params = prepare(con, ctx, month)
            build_lists(con, month, params)
            con.execute("INSERT INTO all_watch SELECT * FROM watch_list")
            con.execute("INSERT INTO all_visit SELECT * FROM visit_list")
        watch = con.sql("SELECT * FROM all_watch ORDER BY payroll_month, region_code, rule, id_number").to_arrow_table()
        visit = con.sql("SELECT * FROM all_visit ORDER BY payroll_month, region_code, rule, id_number").to_arrow_table()
    finally:
        con.close()
    return watch, visit
