"""The pandas baseline of issue 9, whole: the month from the inbox's files to the ledger's totals,
written the straightforward way in pandas, for the benchmark to time against doudi.

    pandas_pipeline.py <inbox> <reference dir> <YYYY-MM> <doudi ledger.parquet>

What it does, in doudi's order, each step in plain pandas:
1. ingest: every roster file read whole (CSV in UTF-8 or GB18030 with pandas.read_csv, XLSX with
   pandas.read_excel on calamine, Parquet), the header row found under any title rows and mapped by
   the contract's aliases; a file delivered twice is counted once; a corrected file replaces the
   earlier one for its county;
2. validation: values normalised (full-width folding, months, money, codes) and every rule of the
   Great Expectations suites in expectations/*.json evaluated as a pandas mask (the suites are the
   rules; this reads them as data, as doudi does); the same person twice in one file, a dibao
   household with a bad member;
3. integrity: the same person accepted in two counties (one survivor), programs that exclude each
   other (reference exclusions.csv), the death registry, the payee's name;
4. the payment engine: bench/pandas_baseline.py's `compute_frame`.
Money is integer fen. The totals per (program, line type, status) must equal doudi's ledger to the
fen, or the harness reports no ratio.

Left out, because they never change a first month's ledger on a generated inbox and a baseline does
not need them: file-level rejections (unreadable, too large, columns missing), malformed CSV rows,
row-count swings, reference-table checks, findings that only flag (registries, near-duplicates,
shared accounts), lineage and explanations, payout files, the warehouse and the reports.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from pandas_baseline import ROSTER_COLUMNS, compute_frame, print_result, timed_against  # noqa: E402

from pipelines.ingest import HEADER_SEARCH_ROWS, MIN_HEADER_MATCHES  # noqa: E402  the contract's header search
from pipelines.vocabulary import (  # noqa: E402  the contract's vocabularies: data, not pipeline code
    CLASS_CATEGORIES,
    DISABILITY_CATEGORIES,
    DISABILITY_GRADES,
    SUBSIDY_TYPES,
    fold_fullwidth,
    header_aliases,
    normalise_header,
)

PROGRAMS = ("dibao", "tekun", "orphan", "disability")
EXPECTATIONS = HERE.parent / "expectations"


# --- 1. ingest ------------------------------------------------------------------------------
def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("gb18030")


def _header_row(rows: list[list], known: set[str]) -> int:
    for i, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        if sum(1 for c in row if isinstance(c, str) and normalise_header(c) in known) >= MIN_HEADER_MATCHES:
            return i
    raise ValueError("no header row")


def _cell(v):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    s = str(v)
    return s or None


def read_roster(path: Path, program: str) -> pd.DataFrame:
    aliases = header_aliases(program)
    known = {a for p in PROGRAMS for a in header_aliases(p)}
    if path.suffix == ".csv":
        text = _decode(path.read_bytes())
        head = pd.read_csv(io.StringIO(text), header=None, dtype=str, nrows=HEADER_SEARCH_ROWS,
                           keep_default_na=False)
        h = _header_row(head.values.tolist(), known)
        df = pd.read_csv(io.StringIO(text), skiprows=h, dtype=str, keep_default_na=False)
    elif path.suffix == ".xlsx":
        grid = pd.read_excel(path, header=None, dtype=object, engine="calamine")
        grid = grid[grid.notna().any(axis=1) & (grid.astype(str) != "").any(axis=1)].reset_index(drop=True)
        h = _header_row(grid.values.tolist(), known)
        df = grid.iloc[h + 1:].map(_cell)
        df.columns = [str(c) for c in grid.iloc[h]]
    else:
        df = pd.read_parquet(path).astype("string").astype(object)
    df = df.rename(columns={c: aliases.get(normalise_header(str(c)), f"_extra_{c}") for c in df.columns})
    df = df.replace({"": None}).reset_index(drop=True)
    df["source_row"] = np.arange(1, len(df) + 1)
    return df


def ingest(inbox: Path, month: str, program: str) -> pd.DataFrame:
    """The program's rows that go on to validation: each file's rows, a second delivery of the same
    bytes dropped, and only the last file (by name) of each county kept."""
    folder = inbox / month / "rosters" / program
    frames, seen, county_files = {}, set(), {}
    for path in sorted(folder.iterdir()) if folder.exists() else []:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        df = read_roster(path, program)
        if df.empty:
            continue
        df["source_file"] = f"rosters/{program}/{path.name}"
        county = df["region_code"].map(lambda v: None if v is None else fold_fullwidth(v).strip()).mode()
        county_files.setdefault(county.iloc[0] if len(county) else path.name[:6], []).append(df["source_file"].iat[0])
        frames[df["source_file"].iat[0]] = df
    survivors = [files[-1] for files in county_files.values()]  # a correction is named after the original
    keep = [frames[f] for f in sorted(survivors)]
    out = pd.concat(keep, ignore_index=True) if keep else pd.DataFrame()
    out["program"] = program
    return out


# --- 2. validation ---------------------------------------------------------------------------
def fold(s: pd.Series) -> pd.Series:
    return s.astype(object).map(lambda v: fold_fullwidth(v) if isinstance(v, str) else v)


def norm_text(s: pd.Series) -> pd.Series:
    t = fold(s).str.replace(r"\s+", " ", regex=True).str.strip()
    return t.where(t != "", None)


def norm_code(s: pd.Series) -> pd.Series:
    t = fold(s).str.replace(r"\s+", "", regex=True).str.upper()
    return t.where(t != "", None)


def norm_month(s: pd.Series, check_day: bool = True) -> pd.Series:
    """As sql/macros.sql: a day, if given, must exist (2020-02-30 is no month), unless check_day is
    false (a death date's month)."""
    t = norm_code(s)
    m6 = t.str.extract(r"^(\d{4})(\d{2})(\d{2})?$")
    dash = t.str.extract(r"^(\d{4})[-/.](\d{1,2})(?:[-/.](\d{1,2}))?(?:T[0-9:.]*)?$")
    han = t.str.extract(r"^(\d{4})年(\d{1,2})月(?:(\d{1,2})日)?$")
    year = m6[0].fillna(dash[0]).fillna(han[0])
    mon = pd.to_numeric(m6[1].fillna(dash[1]).fillna(han[1]), errors="coerce")
    day = m6[2].fillna(dash[2]).fillna(han[2])
    ok = year.notna() & mon.between(1, 12)
    if check_day:
        dated = pd.to_datetime(pd.DataFrame({"year": pd.to_numeric(year, errors="coerce"), "month": mon,
                                             "day": pd.to_numeric(day, errors="coerce")}), errors="coerce")
        ok &= day.isna() | dated.notna()
    text = year.astype(object).fillna("") + "-" + mon.fillna(0).astype(int).astype(str).str.zfill(2).astype(object)
    return text.where(ok, None)


def norm_money(s: pd.Series) -> pd.Series:
    t = norm_code(s).str.replace(r"[,，元¥￥]", "", regex=True)
    return t.where(t.str.fullmatch(r"-?\d+(\.\d{1,2})?").fillna(False).astype(bool), None)


def id_expected_check(ids: pd.Series) -> pd.Series:
    ok = ids.str.fullmatch(r"\d{17}[0-9X]").fillna(False).astype(bool)
    digits = ids.where(ok, "0" * 18).str[:17].str.split("", expand=True).iloc[:, 1:18].astype(int).to_numpy()
    weights = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
    check = pd.Series(np.array(list("10X98765432"))[(digits @ weights) % 11], index=ids.index)
    return check.where(ok, None)


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    """A delivered column, or blanks where the file had no such column."""
    return df[name] if name in df.columns else pd.Series(None, index=df.index, dtype=object)


def _has_hidden_characters(value) -> bool:
    """sql/macros.sql has_hidden_characters: a control, format or line/paragraph separator character
    inside the value once the spaces around it are trimmed."""
    if not isinstance(value, str):
        return False
    return any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value.strip(" \t\n\f\r\u3000"))


def stage(df: pd.DataFrame, program: str, month: str, reference: Path, disability_ids: set[str]) -> pd.DataFrame:
    """Normalised values and the facts the suites check (doudi's sql/staging models)."""
    r = pd.DataFrame({"program": program, "source_file": df.source_file, "source_row": df.source_row})
    for col in ("region_code", "id_number", "bank_account"):
        r[col] = norm_code(_col(df, col))
    for col in ("name", "sex", "urban_rural", "bank_name", "account_holder"):
        r[col] = norm_text(_col(df, col))
    # the generator hides no XLSX rows or sheets; characters nobody sees, as has_hidden_characters
    r["hidden_row"] = r["in_hidden_sheet"] = None
    unseen = _col(df, "name").map(_has_hidden_characters) | _col(df, "account_holder").map(_has_hidden_characters)
    r["hidden_characters"] = pd.Series(np.where(unseen, "NAME_HIDDEN_CHARACTER", None), index=r.index)
    raw = {c: _col(df, c) for c in ("enrolled_from", "enrolled_to", "approved_amount")}
    r["enrolled_from"], r["enrolled_to"] = norm_month(raw["enrolled_from"]), norm_month(raw["enrolled_to"])
    r["approved_amount"] = norm_money(raw["approved_amount"])
    r["month_unparsed"] = ((raw["enrolled_from"].notna() & r.enrolled_from.isna())
                           | (norm_code(raw["enrolled_to"]).notna() & r.enrolled_to.isna()))
    r["approved_unparsed"] = norm_code(raw["approved_amount"]).notna() & r.approved_amount.isna()
    r["approved_amount_num"] = pd.to_numeric(r.approved_amount, errors="coerce")
    r["id_format_ok"] = r.id_number.str.fullmatch(r"\d{17}[0-9X]").fillna(False).astype(bool)
    r["id_expected_check"] = id_expected_check(r.id_number)
    r["id_check_char"] = r.id_number.str[17:18]
    birth = pd.to_datetime(r.id_number.where(r.id_format_ok).str[6:14], format="%Y%m%d", errors="coerce")
    month_end = pd.Timestamp(f"{month}-01") + pd.offsets.MonthEnd(0)
    r["birth_ok"] = birth.notna() & (birth >= pd.Timestamp("1900-01-01")) & (birth <= month_end)
    age = month_end.year - birth.dt.year - ((birth.dt.month > month_end.month)
                                            | ((birth.dt.month == month_end.month) & (birth.dt.day > month_end.day)))
    odd = r.id_number.where(r.id_format_ok, "0" * 18).str[16].astype(int) % 2 == 1
    r["sex_from_id"] = pd.Series(np.where(odd, "男", "女"), index=r.index).where(r.id_format_ok, None)
    r["payroll_month"] = month
    banks = pd.read_csv(reference / "banks.csv", dtype=str).fillna("")
    spelling = {}
    for b in banks.itertuples():
        for s in [b.bank_name, b.bank_code, *b.aliases.split(";")]:
            if s.strip():
                spelling[s.strip()] = b.bank_code.strip()
    r["bank_code"] = r.bank_name.map(spelling)
    r["has_account"] = r.bank_account.notna()
    r["account_required"] = True
    params = pd.read_csv(reference / "policy_parameters.csv", dtype=str)
    # numeric parameters only (pay_amount_source is a word: computed or approved)
    param = {p.parameter: float(p.value) for p in params.itertuples()
             if p.effective_from <= month and (pd.isna(p.effective_to) or month <= p.effective_to)
             and pd.notna(pd.to_numeric(p.value, errors="coerce"))}
    r["relation"] = r["household_id"] = r["placement"] = r["care_level"] = r["subsidy_type"] = None
    r["class_categories"] = r["ledger_program"] = r["disability_grade"] = r["age_out_month"] = None
    r["household_size"] = r["household_income"] = r["institution_code"] = r["guardian_name"] = None
    if program == "dibao":
        r["household_id"] = norm_code(df.household_id)
        r["relation"] = norm_text(df.relation)
        size = norm_code(_col(df, "household_size")).str.replace(r"人$", "", regex=True)
        r["household_size"] = pd.to_numeric(size, errors="coerce").astype("Int64")
        r["household_size_unparsed"] = _col(df, "household_size").notna() & r.household_size.isna()
        r["household_income"] = norm_money(_col(df, "household_income"))
        r["household_income_num"] = pd.to_numeric(r.household_income, errors="coerce")
        cats = fold(_col(df, "class_category")).fillna("")
        cats = cats.str.replace(r"[；,，、/ ]", ";", regex=True).str.split(";").map(
            lambda xs: sorted({x.strip() for x in xs if x.strip()}) or None)
        r["class_categories"] = cats
        r["class_category_ok"] = cats.map(lambda xs: xs is None or all(x in CLASS_CATEGORIES for x in xs))
        r["account_required"] = r.relation == "户主"
    elif program == "tekun":
        r["placement"], r["care_level"] = norm_text(_col(df, "placement")), norm_text(_col(df, "care_level"))
        r["institution_code"] = norm_code(_col(df, "institution_code"))
        cert = norm_code(_col(df, "disability_cert_no"))
        r["tekun_eligible"] = ((age >= param["tekun_elderly_min_age"]) | (age < param["tekun_minor_max_age"])
                               | cert.notna() | r.id_number.isin(disability_ids))
    elif program == "orphan":
        r["placement"] = norm_text(_col(df, "placement"))
        r["guardian_name"] = norm_text(_col(df, "guardian_name"))
        gid = norm_code(_col(df, "guardian_id_number"))
        age_out = (birth + pd.DateOffset(years=int(param["orphan_age_out"])))
        r["age_out_month"] = age_out.dt.strftime("%Y-%m").where(birth.notna(), None)
        r["aged_out"] = r.age_out_month.notna() & (r.age_out_month < month)
        r["guardian_required"] = r.placement != "机构养育"
        r["guardian_id_number"] = gid
        r["guardian_id_ok"] = gid.isna() | (id_expected_check(gid) == gid.str[17:18])
    else:
        r["subsidy_type"] = norm_text(_col(df, "subsidy_type"))
        r["ledger_program"] = r.subsidy_type.map(SUBSIDY_TYPES)
        cat_text, grade_text = norm_text(_col(df, "disability_category")), norm_text(_col(df, "disability_grade"))
        cats = {**DISABILITY_CATEGORIES, **{v: v for v in DISABILITY_CATEGORIES.values()},
                **{k + "残疾": v for k, v in DISABILITY_CATEGORIES.items()}}
        grades = {**DISABILITY_GRADES, **{v: v for v in DISABILITY_GRADES.values()},
                  **{v + "级": v for v in DISABILITY_GRADES.values()}}
        r["disability_category"], r["disability_grade"] = cat_text.map(cats), grade_text.map(grades)
        r["category_ok"] = cat_text.isna() | r.disability_category.notna()
        cert = norm_code(_col(df, "disability_cert_no"))
        r["cert_ok"] = cert.isna() | (cert == r.id_number + r.disability_category.fillna("?")
                                      + r.disability_grade.fillna("?"))
    r["grain_extra"] = r.subsidy_type.fillna("") if program == "disability" else ""
    # the same person twice in one file: the first row survives
    r["same_file_repeat"] = r.id_number.notna() & r.duplicated(["source_file", "id_number", "grain_extra"])
    if program == "dibao":
        members = r[~r.same_file_repeat & r.household_id.notna()].assign(
            head=lambda m: m.relation == "户主", head_account=lambda m: (m.relation == "户主") & m.bank_account.notna())
        hh = members.groupby("household_id").agg(heads=("head", "sum"), rows=("head", "size"),
                                                 head_account=("head_account", "any"))
        r["hh_has_head"] = r.household_id.map(hh.heads >= 1)
        r["hh_single_head"] = r.household_id.map(hh.heads <= 1)
        r["hh_member_rows"] = r.household_id.map(hh.rows).astype("Int64")
        r["hh_head_has_account"] = r.household_id.map(hh.head_account).fillna(False).astype(bool)
    return r


def _failing(frame: pd.DataFrame, e: dict, parameters: dict) -> pd.Series:
    """The rows an expectation (as stored in expectations/*.json) fails, as a pandas mask."""
    kw, kind = e["kwargs"], e["type"]
    cond = pd.Series(True, index=frame.index)
    if kw.get("row_condition"):
        c = kw["row_condition"]
        cond = frame[c["column"]["name"]] == c["parameter"]
    if "column" in kw:
        col = frame[kw["column"]]
        present = col.notna()
    if kind == "expect_column_values_to_be_null":
        bad = present
    elif kind == "expect_column_values_to_not_be_null":
        bad = ~present
    elif kind == "expect_column_values_to_match_regex":
        bad = present & ~col.astype(str).str.contains(kw["regex"], regex=True)
    elif kind == "expect_column_values_to_not_match_regex":
        bad = present & col.astype(str).str.contains(kw["regex"], regex=True)
    elif kind == "expect_column_values_to_be_in_set":
        values = kw["value_set"]
        values = parameters[values["$PARAMETER"]] if isinstance(values, dict) else values
        bad = present & ~col.isin(values)
    elif kind == "expect_column_values_to_be_between":
        bad = present & (col < kw["min_value"])
    else:
        a, b = frame[kw["column_A"]], frame[kw["column_B"]]
        both = a.notna() & b.notna()
        if kind == "expect_column_pair_values_to_be_equal":
            bad = both & (a.astype(str) != b.astype(str))
        elif kind == "expect_column_pair_values_a_to_be_greater_than_b":
            bad = both & (a < b if kw.get("or_equal") else a <= b)
        else:
            raise ValueError(f"no pandas rule for {kind}")
    return (bad & cond).fillna(False).astype(bool)


def validate(r: pd.DataFrame, program: str, county_codes: list[str]) -> pd.DataFrame:
    suite = []
    for name in ("roster_common", f"roster_{program}"):
        suite += json.loads((EXPECTATIONS / f"{name}.json").read_text(encoding="utf-8"))["expectations"]
    r["row_malformed"] = None
    judged = ~r.same_file_repeat
    bad = pd.Series(False, index=r.index)
    for e in suite:
        bad |= _failing(r[judged], e, {"county_codes": county_codes}).reindex(r.index, fill_value=False)
    if program == "dibao":
        bad_household = r[judged & bad & r.household_id.notna()].household_id.unique()
        bad |= judged & r.household_id.isin(bad_household)
    r["disposition"] = np.where(~judged, "duplicate", np.where(bad, "quarantined", "accepted"))
    return r


# --- 3. integrity ----------------------------------------------------------------------------
def integrity(rows: pd.DataFrame, inbox: Path, reference: Path, month: str) -> pd.DataFrame:
    r = rows
    r["line_program"] = r.ledger_program.where(r.program == "disability", r.program)
    acc = r[r.disposition == "accepted"].sort_values(["enrolled_from", "region_code", "source_file", "source_row"])
    repeat = acc.duplicated(["line_program", "id_number"])
    r.loc[repeat[repeat].index, "disposition"] = "duplicate"
    held = r[r.disposition == "accepted"]
    r["not_paid_reason"] = r["hold_reason"] = r["death_month"] = None
    r["excluded_member"] = r["no_price_subsidy"] = False
    # programs that exclude each other: program b is not paid (a dibao member is not counted)
    for x in pd.read_csv(reference / "exclusions.csv", dtype=str).itertuples():
        prog_a, _, sub_a = x.program_a.strip().partition(":")
        prog_b, _, sub_b = x.program_b.strip().partition(":")
        a = held[(held.program == prog_a) & ((sub_a == "") | (held.subsidy_type == sub_a))]
        b = held[(held.program == prog_b) & ((sub_b == "") | (held.subsidy_type == sub_b))
                 & held.id_number.isin(a.id_number)]
        if x.action.strip().lower() == "pay_a_only":
            r.loc[b.index[b.program != "dibao"], "not_paid_reason"] = "exclusive_programs"
            r.loc[b.index[b.program == "dibao"], "excluded_member"] = True
    dibao_ids = set(held.id_number[held.program == "dibao"])
    living = held[(held.program == "disability") & (held.subsidy_type == "生活补贴") & ~held.id_number.isin(dibao_ids)]
    r.loc[living.index[r.loc[living.index, "not_paid_reason"].isna()], "not_paid_reason"] = \
        "living_subsidy_not_in_dibao"
    deaths_file = inbox / month / "registry" / "deaths.csv"
    if deaths_file.exists():
        deaths = pd.read_csv(deaths_file, dtype=str)
        deaths = pd.DataFrame({"id_number": norm_code(deaths.id_number),
                               "death_month": norm_month(deaths.death_date, check_day=False)})
        deaths = deaths.dropna().sort_values("death_month").drop_duplicates("id_number")
        deaths = deaths[deaths.death_month < month].set_index("id_number").death_month
        dead = held[held.id_number.isin(deaths.index)]
        r.loc[dead.index, "death_month"] = dead.id_number.map(deaths)
        r.loc[dead.index, "no_price_subsidy"] = True
        r.loc[dead.index[(dead.program != "dibao") & r.loc[dead.index, "not_paid_reason"].isna()],
              "not_paid_reason"] = "deceased_listed"
        dead_heads = dead[(dead.program == "dibao") & (dead.relation == "户主")].household_id
        r.loc[held.index[(held.program == "dibao") & held.household_id.isin(dead_heads)], "hold_reason"] = \
            "household_head_deceased"
    # the account must be in the name of the one the contract says: beneficiary, guardian
    expected = np.where(r.program == "orphan", np.where(r.placement == "机构养育", None, r.guardian_name),
                        np.where(r.institution_code.notna(), None, r.name))
    mismatch = ((r.disposition == "accepted") & r.bank_account.notna() & pd.notna(expected)
                & (r.account_holder.fillna("\0") != pd.Series(expected, index=r.index).fillna("\0")))
    r.loc[mismatch & r.hold_reason.isna(), "hold_reason"] = "account_holder_mismatch"
    r.loc[r.disposition != "accepted", ["not_paid_reason", "hold_reason"]] = None
    return r


def run_month(inbox: Path, reference: Path, month: str, province: str = "21") -> pd.DataFrame:
    regions = pd.read_csv(reference / "regions.csv", dtype=str)
    county_codes = sorted(regions.region_code[regions.province_code == province])
    raw = {p: ingest(inbox, month, p) for p in PROGRAMS}
    disability_ids = set(norm_code(raw["disability"]["id_number"])) if len(raw["disability"]) else set()
    staged = [validate(stage(raw[p], p, month, reference, disability_ids), p, county_codes)
              for p in PROGRAMS if len(raw[p])]
    rows = integrity(pd.concat(staged, ignore_index=True), inbox, reference, month)
    # pandas' own string type: grouping object columns runs in Python, 20 times slower
    rows["household_size"] = pd.to_numeric(rows.household_size).astype("Int64")
    text = [c for c in ROSTER_COLUMNS if rows[c].dtype == object and c != "class_categories"]
    rows[text] = rows[text].astype("str")
    return compute_frame(rows[ROSTER_COLUMNS], reference, month, province)


def run(inbox: Path, reference: Path, month: str, ledger: Path) -> dict:
    return timed_against(ledger, lambda: run_month(inbox, reference, month))


if __name__ == "__main__":
    print_result(run(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])))
