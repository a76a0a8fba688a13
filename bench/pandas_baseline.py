"""The pandas baseline of issue 9: the payment engine written the straightforward way, in pandas.

Scope, said plainly: this is the *payment engine* stage (doudi's `compute`), not the whole
pipeline. It starts from the same input as doudi's engine, the integrity stage's roster
(`_work/integrity/roster.parquet`: every delivered row with its disposition, holds and exclusions),
and computes the first payroll month's regular and price-subsidy lines from the reference CSVs:
standards resolution (longest region prefix, specific over `*`, latest effective_from), the dibao
household formula with floor and class add-ons, tekun basic + care, orphans by placement, both
disability subsidies, the CPI-triggered price subsidy once per person. Money is integer fen.

`check_totals` compares its totals per (program, line type, status) with doudi's ledger to the
fen; the harness refuses a timing whose totals differ. A month with history (arrears, reissues,
released holds) is out of scope: the harness benchmarks a first month.
"""

from __future__ import annotations

import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd

UNIT = ["unit_key", "line_program"]
ROSTER_COLUMNS = ["program", "source_file", "source_row", "id_number", "region_code", "urban_rural", "enrolled_from",
                  "enrolled_to", "approved_amount", "household_id", "relation", "household_size", "household_income",
                  "class_categories", "placement", "care_level", "ledger_program", "disability_grade",
                  "age_out_month", "disposition", "not_paid_reason", "excluded_member", "no_price_subsidy",
                  "death_month", "hold_reason"]


def _fen(series: pd.Series) -> pd.Series:
    """Yuan text or Decimal values to integer fen, exactly."""
    return series.map(lambda v: None if v is None or pd.isna(v) else int(Decimal(str(v)) * 100)).astype("Int64")


def _month_ok(month: str, frm, to) -> bool:
    return (frm is None or frm <= month) and (to is None or month <= to)


def load_standards(reference: Path, month: str) -> pd.DataFrame:
    s = pd.read_csv(reference / "standards.csv", dtype=str).fillna({"urban_rural": "*", "category": "*"})
    for col in ("program", "component", "region_code", "urban_rural", "category"):
        s[col] = s[col].str.strip()
    s["urban_rural"] = s["urban_rural"].replace("", "*")
    s["category"] = s["category"].replace("", "*")
    s["effective_to"] = s["effective_to"].fillna("9999-12")
    s["first_payroll"] = s["first_payroll"].fillna(s["effective_from"]) if "first_payroll" in s else s["effective_from"]
    s["amount_fen"] = _fen(s["amount"])
    s = s[(s.first_payroll <= month) & (s.effective_from <= month) & (s.effective_to >= month)]
    return s


def resolve(needs: pd.DataFrame, standards: pd.DataFrame, program: str, component: str,
            category_col: str | None) -> pd.Series:
    """The standard (fen) for each need row: same rules as sql/intermediate/int_standard_resolved.sql."""
    keys = needs[["region_code", "urban_rural"]].copy()
    keys["category"] = needs[category_col] if category_col else "*"
    keys = keys.drop_duplicates()
    cand = standards[(standards.program == program) & (standards.component == component)]
    m = keys.merge(cand, how="cross", suffixes=("", "_s"))
    m = m[[r.startswith(p) for r, p in zip(m.region_code, m.region_code_s, strict=True)]]
    m = m[(m.urban_rural_s == "*") | (m.urban_rural_s == m.urban_rural)]
    m = m[(m.category_s == "*") | (m.category_s == m.category)]
    m = m.assign(plen=m.region_code_s.str.len(), ur_specific=m.urban_rural_s != "*", cat_specific=m.category_s != "*")
    m = m.sort_values(["plen", "ur_specific", "cat_specific", "effective_from"], ascending=False)
    best = m.drop_duplicates(["region_code", "urban_rural", "category"])
    lookup = {(r, u, c): a for r, u, c, a in zip(best.region_code, best.urban_rural, best.category, best.amount_fen,
                                                 strict=True)}
    cats = needs[category_col] if category_col else pd.Series("*", index=needs.index)
    return pd.Series([lookup.get((r, u, c)) for r, u, c in zip(needs.region_code, needs.urban_rural, cats,
                                                                 strict=True)], index=needs.index, dtype="Int64")


def compute_month(roster_path: Path, reference: Path, month: str, province: str = "21") -> pd.DataFrame:
    """The month's lines (program, line_type, status, amount in fen) from doudi's integrity roster."""
    return compute_frame(pd.read_parquet(roster_path, columns=ROSTER_COLUMNS), reference, month, province)


def compute_frame(r: pd.DataFrame, reference: Path, month: str, province: str = "21") -> pd.DataFrame:
    """The month's lines from a roster frame with ROSTER_COLUMNS (bench/pandas_pipeline.py builds
    one from the inbox)."""
    # the four monthly programs: temporary assistance (one_off lines, the amount approved) is not modelled,
    # and doudi_totals leaves it out of the comparison
    u = r[(r.disposition == "accepted") & r.not_paid_reason.isna() & (r.program != "temporary")].copy()
    u["line_program"] = u.ledger_program.where(u.program == "disability", u.program)
    u["unit_key"] = u.household_id.where(u.program == "dibao", u.id_number)
    standards = load_standards(reference, month)

    # entitlement this month (a household by its head's row)
    open_end = u.assign(enrolled_to=u.enrolled_to.fillna("9999-12"), age_out_month=u.age_out_month.fillna("9999-12"),
                        death_month=u.death_month.fillna("9999-12"))
    units = open_end.groupby(UNIT, dropna=False).agg(
        enrolled_from=("enrolled_from", "min"), enrolled_to=("enrolled_to", "max"), age_out=("age_out_month", "min"))
    # a dibao household outlives its head (it is held), so only other programs end at a death
    alive = open_end[u.program != "dibao"].groupby(UNIT, dropna=False).death_month.min()
    units = units.join(alive.rename("last_alive"))
    units["last_alive"] = units.last_alive.fillna("9999-12")
    entitled = units[(units.enrolled_from <= month) & (units.enrolled_to >= month) & (units.age_out >= month)
                     & (units.last_alive >= month)].index
    everyone = u
    u = u.set_index(UNIT).loc[lambda d: d.index.isin(entitled)].reset_index()

    lines = []
    # dibao: per household, from the head's row
    dib = u[u.line_program == "dibao"]
    heads = dib[dib.relation == "户主"].copy()
    heads["standard"] = resolve(heads, standards, "dibao", "standard", None)
    heads["floor"] = resolve(heads, standards, "dibao", "floor", None).fillna(0)
    excluded = dib[dib.excluded_member].groupby("unit_key").size()
    heads["covered"] = heads.household_size - heads.unit_key.map(excluded).fillna(0).astype(int)
    heads["income"] = _fen(heads.household_income).fillna(0)
    members = dib[~dib.excluded_member & dib.class_categories.notna()][["unit_key", "id_number", "class_categories"]]
    members = members.explode("class_categories").dropna(subset=["class_categories"])
    members = members.merge(heads[["unit_key", "region_code", "urban_rural"]], on="unit_key")
    members["addon"] = resolve(members, standards, "dibao", "class_addon", "class_categories")
    addons = members.dropna(subset=["addon"]).groupby(["unit_key", "id_number"]).addon.max().groupby("unit_key").sum()
    heads["addons"] = heads.unit_key.map(addons).fillna(0).astype("Int64")
    heads["gap"] = heads.standard * heads.covered - heads.income
    heads = heads[heads.standard.notna() & (heads.gap > 0)]
    floor_total = heads.floor * heads.covered
    heads["amount"] = heads.gap.where(heads.gap > floor_total, floor_total) + heads.addons
    lines.append(heads[["line_program", "unit_key", "hold_reason", "approved_amount", "amount"]])

    tek = u[u.line_program == "tekun"].copy()
    tek["amount"] = resolve(tek, standards, "tekun", "basic", None) + resolve(tek, standards, "tekun", "care",
                                                                               "care_level")
    orp = u[u.line_program == "orphan"].copy()
    orp["amount"] = resolve(orp, standards, "orphan", "basic", "placement")
    liv = u[u.line_program == "disability_living"].copy()
    liv["amount"] = resolve(liv, standards, "disability", "living", None)
    nur = u[u.line_program == "disability_nursing"].copy()
    nur["amount"] = resolve(nur, standards, "disability", "nursing", "disability_grade")
    for part in (tek, orp, liv, nur):
        lines.append(part.dropna(subset=["amount"])[["line_program", "unit_key", "hold_reason", "approved_amount",
                                                      "amount"]])
    regular = pd.concat(lines, ignore_index=True)
    regular["line_type"] = "regular"

    # members of a household that gets no dibao line (gap <= 0) are not dibao members
    eligible = set(heads.unit_key)
    price = price_subsidy(everyone[(everyone.program != "dibao") | everyone.unit_key.isin(eligible)],
                          reference, standards, month, province)
    out = pd.concat([regular, price], ignore_index=True)
    holds = everyone.groupby(UNIT, dropna=False).hold_reason.max()
    out["status"] = ["held" if isinstance(h, str) else "payable"
                     for h in holds.reindex(pd.MultiIndex.from_frame(out[UNIT])).to_numpy()]
    out = out[out.amount > 0]
    return out.rename(columns={"line_program": "program"})[["program", "line_type", "status", "amount"]]


def price_subsidy(u: pd.DataFrame, reference: Path, standards: pd.DataFrame, month: str, province: str):
    rules = pd.read_csv(reference / "price_linkage.csv", dtype=str)
    rules["effective_to"] = rules.effective_to.fillna("9999-12")
    rules = rules[(rules.effective_from <= month) & (rules.effective_to >= month)].sort_values("effective_from")
    empty = pd.DataFrame(columns=["line_program", "unit_key", "amount", "line_type"])
    if rules.empty:
        return empty
    rule = rules.iloc[-1]
    year, mon = int(month[:4]), int(month[5:])
    k = year * 12 + mon - 1 - int(rule.index_lag)
    index_month = f"{k // 12:04d}-{k % 12 + 1:02d}"
    cpi = pd.read_csv(reference / "cpi.csv", dtype=str)
    cpi = cpi[(cpi.month == index_month) & cpi.area.isin([province, "00"])]
    if cpi.empty:
        return empty
    row = cpi.sort_values("area", key=lambda a: a != province).iloc[0]

    def dec(v):
        return None if pd.isna(v) or str(v).strip() == "" else Decimal(str(v).strip())

    cpi_yoy, food_yoy = dec(row.cpi_yoy), dec(row.food_yoy)
    cpi_t, food_t = dec(rule.cpi_threshold), dec(rule.food_threshold)
    cpi_on = cpi_t is not None and cpi_yoy >= cpi_t
    food_on = food_t is not None and food_yoy >= food_t
    if not (cpi_on or food_on):
        return empty
    basis = rule.basis.strip().lower()
    rate = {"cpi": cpi_yoy, "food": food_yoy}.get(basis) if basis != "triggered" else \
        max(v for v, on in ((cpi_yoy, cpi_on), (food_yoy, food_on)) if on)
    if rate is None or rate <= 0:
        return empty
    programs = [p.strip() for p in rule.programs.lower().split(";")]
    c = u[u.program.isin(programs) & ~u.excluded_member & ~u.no_price_subsidy
          & (u.enrolled_from <= month) & (u.enrolled_to.fillna("9999-12") >= month)
          & (u.age_out_month.fillna("9999-12") >= month)].copy()
    c["rank"] = c.program.map({p: i for i, p in enumerate(programs)})
    c = c.sort_values(["rank", "source_file", "source_row"]).drop_duplicates("id_number")
    c["standard"] = resolve(c, standards, "dibao", "standard", None)
    c = c.dropna(subset=["standard"])
    multiplier, minimum = Decimal(rule.multiplier), Decimal(str(rule.minimum or 0))
    quantum = Decimal("1") if rule.rounding.strip().lower() == "yuan" else Decimal("0.01")

    def amount(standard_fen: int) -> int:
        exact = Decimal(int(standard_fen)) / 100 * rate * multiplier * Decimal("0.01")
        return int(max(exact.quantize(quantum, rounding=ROUND_HALF_UP), minimum) * 100)

    per_standard = {s: amount(s) for s in c.standard.unique()}
    c["amount"] = c.standard.map(per_standard).astype("Int64")
    return c.assign(line_type="price_subsidy")[["line_program", "unit_key", "amount", "line_type"]]


def totals(lines: pd.DataFrame) -> dict[tuple[str, str, str], tuple[int, int]]:
    g = lines.groupby(["program", "line_type", "status"]).amount.agg(["count", "sum"])
    return {k: (int(n), int(s)) for k, (n, s) in zip(g.index, g.to_numpy(), strict=True)}


def doudi_totals(ledger_path: Path) -> dict[tuple[str, str, str], tuple[int, int]]:
    """doudi's ledger by program, line type and status, without temporary assistance (not modelled here)."""
    import duckdb

    rows = duckdb.connect().execute(
        "SELECT program, line_type, status, count(*), sum(amount * 100)::BIGINT "
        f"FROM read_parquet('{ledger_path}') WHERE program <> 'temporary' GROUP BY ALL").fetchall()
    return {(p, t, s): (int(n), int(a)) for p, t, s, n, a in rows}


def timed_against(ledger: Path, compute) -> dict:
    """Time `compute()` (a frame of lines) and compare its totals with doudi's ledger."""
    started = time.perf_counter()
    lines = compute()
    seconds = time.perf_counter() - started
    ours, theirs = totals(lines), doudi_totals(ledger)
    return {"seconds": round(seconds, 2), "lines": len(lines), "totals_match": ours == theirs,
            "differences": {"/".join(k): {"pandas": ours.get(k), "doudi": theirs.get(k)}
                            for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k)}}


def print_result(result: dict) -> None:
    """The line bench/run.py reads, with this process's peak memory. VmHWM, not ru_maxrss: Linux
    carries ru_maxrss over exec, so a child started by a large process would report its parent's peak."""
    import json

    status = Path("/proc/self/status").read_text(encoding="ascii", errors="replace")
    peak_kb = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmHWM:")))
    print("PANDAS-RESULT " + json.dumps(dict(result, peak_rss_mb=round(peak_kb / 1024))))


def run(roster: Path, reference: Path, month: str, ledger: Path) -> dict:
    return timed_against(ledger, lambda: compute_month(roster, reference, month))


if __name__ == "__main__":
    # bench/run.py runs the baseline in its own process, so its peak memory is its own:
    # pandas_baseline.py <integrity roster.parquet> <reference dir> <YYYY-MM> <doudi ledger.parquet>
    import sys

    print_result(run(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])))
