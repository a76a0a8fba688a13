"""The Polars peer of bench/pandas_pipeline.py (issue 22): the same month, from the inbox's files to
the ledger's totals, written as a bureau engineer who wants speed would write it in 2026.

    polars_pipeline.py <inbox> <reference dir> <YYYY-MM> <doudi ledger.parquet>

Same command line, same inputs, same rules and the same result line as the pandas pipeline (so
bench/run.py runs both the same way), in Polars idioms: every value normalised and every rule
checked as an expression over whole columns, the four programs staged and validated in parallel
(`collect_all`), integrity and the payment engine as lazy plans of joins, windows and group-bys.
No Python function is called per row. Files are read as delivered: CSV with `read_csv` (from the
bytes already read to recognise a second delivery; GB18030 decoded first, since Polars reads only
UTF-8), XLSX with `read_excel` on the calamine engine (fastexcel), Parquet with `read_parquet`.

Money is integer fen (the roster's yuan text cast to an exact Decimal, times 100). The totals per
(program, line type, status) must equal doudi's ledger to the fen, or the harness reports no ratio.
What is left out is what the pandas pipeline leaves out (its docstring says what and why).
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import sys
import time
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from pipelines.ingest import HEADER_SEARCH_ROWS, MIN_HEADER_MATCHES  # noqa: E402  the contract's header search
from pipelines.vocabulary import (  # noqa: E402  the contract's vocabularies: data, not pipeline code
    CLASS_CATEGORIES,
    DISABILITY_CATEGORIES,
    DISABILITY_GRADES,
    SUBSIDY_TYPES,
    header_aliases,
    normalise_header,
)

PROGRAMS = ("dibao", "tekun", "orphan", "disability")
EXPECTATIONS = HERE.parent / "expectations"
UNIT = ["unit_key", "line_program"]
OPEN = "9999-12"  # an open end month, so that min/max and comparisons need no null cases
# full-width ASCII and the ideographic space, folded as pipelines.vocabulary.fold_fullwidth does
FULL = [chr(c) for c in range(0xFF01, 0xFF5F)] + ["\u3000"]
HALF = [chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)] + [" "]


# --- 1. ingest ------------------------------------------------------------------------------
def _utf8(data: bytes) -> bytes:
    """The file's bytes as UTF-8 without BOM: Polars reads only UTF-8."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:]
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError:
        return data.decode("gb18030").encode("utf-8")


def _header_row(rows, known: set[str]) -> int:
    for i, row in enumerate(itertools.islice(rows, HEADER_SEARCH_ROWS)):
        if sum(1 for c in row if isinstance(c, str) and normalise_header(c) in known) >= MIN_HEADER_MATCHES:
            return i
    raise ValueError("no header row")


def read_roster(path: Path, data: bytes, program: str, known: set[str]) -> pl.DataFrame:
    """One file's data rows, every column text, named by the contract's aliases."""
    if path.suffix == ".csv":
        text = _utf8(data)
        # the header search reads ten lines with the csv module; Polars then parses the file once
        h = _header_row(csv.reader(io.StringIO(text[:65536].decode("utf-8", "ignore"))), known)
        df = pl.read_csv(text, skip_rows=h, infer_schema=False)
    elif path.suffix == ".xlsx":
        grid = pl.read_excel(data, engine="calamine", has_header=False, infer_schema_length=0)
        grid = grid.filter(pl.any_horizontal(pl.all().is_not_null()))  # blank rows, as pandas drops them
        h = _header_row(grid.head(HEADER_SEARCH_ROWS).rows(), known)
        df = grid.slice(h + 1)
        df.columns = [str(c) for c in grid.row(h)]
    else:
        df = pl.read_parquet(data)
        df = df.cast(dict.fromkeys(df.columns, pl.String))
    aliases = header_aliases(program)
    df = df.rename({c: aliases.get(normalise_header(c), f"_extra_{c}") for c in df.columns})
    return df.with_columns(pl.all().replace("", None)).with_row_index("source_row", offset=1)


def ingest(inbox: Path, month: str, program: str) -> pl.DataFrame:
    """The program's rows that go on to validation: each file's rows, a second delivery of the same
    bytes dropped, and only the last file (by name) of each county kept."""
    folder = inbox / month / "rosters" / program
    known = {a for p in PROGRAMS for a in header_aliases(p)}
    frames, seen, county_files = {}, set(), {}
    for path in sorted(folder.iterdir()) if folder.exists() else []:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        df = read_roster(path, data, program, known)
        if df.height == 0:
            continue
        name = f"rosters/{program}/{path.name}"
        # the county a file is for: its most common region code (ties: the smallest, as pandas' mode)
        county = (df.select(fold(pl.col("region_code")).str.strip_chars().alias("c")).drop_nulls()
                  .group_by("c").len().sort(["len", "c"], descending=[True, False]).head(1))
        county_files.setdefault(county.item(0, "c") if county.height else path.name[:6], []).append(name)
        frames[name] = df.with_columns(source_file=pl.lit(name))
    survivors = sorted(files[-1] for files in county_files.values())  # a correction is named after the original
    if not survivors:
        return pl.DataFrame()
    return pl.concat([frames[f] for f in survivors], how="diagonal").with_columns(program=pl.lit(program))


# --- 2. validation ---------------------------------------------------------------------------
def fold(e: pl.Expr) -> pl.Expr:
    return e.str.replace_many(FULL, HALF)


def _blank_to_null(e: pl.Expr) -> pl.Expr:
    return pl.when(e != "").then(e)


def norm_text(e: pl.Expr) -> pl.Expr:
    return _blank_to_null(fold(e).str.replace_all(r"\s+", " ").str.strip_chars())


def norm_code(e: pl.Expr) -> pl.Expr:
    return _blank_to_null(fold(e).str.replace_all(r"\s+", "").str.to_uppercase())


def month_of(code: pl.Expr, check_day: bool = True) -> pl.Expr:
    """YYYY-MM from a normalised code (norm_code's output), or null. As sql/macros.sql: a day, if
    given, must exist (2020-02-30 is no month), unless check_day is false (a death date's month)."""
    forms = (r"^([0-9]{4})([0-9]{2})([0-9]{2})?$", r"^([0-9]{4})[-/.]([0-9]{1,2})(?:[-/.]([0-9]{1,2}))?(?:T[0-9:.]*)?$",
             r"^([0-9]{4})年([0-9]{1,2})月(?:([0-9]{1,2})日)?$")
    year = pl.coalesce([code.str.extract(f, 1) for f in forms])
    mon = pl.coalesce([code.str.extract(f, 2) for f in forms]).cast(pl.Int32, strict=False)
    day = pl.coalesce([code.str.extract(f, 3) for f in forms]).cast(pl.Int32, strict=False)
    ok = year.is_not_null() & mon.is_between(1, 12)
    if check_day:
        dated = pl.concat_str([year, pl.lit("-"), mon.cast(pl.String), pl.lit("-"), day.cast(pl.String)])
        ok = ok & (day.is_null() | dated.str.to_date("%Y-%m-%d", strict=False).is_not_null())
    return pl.when(ok).then(pl.concat_str([year, pl.lit("-"), mon.cast(pl.String).str.zfill(2)]))


def money_of(code: pl.Expr) -> pl.Expr:
    """Yuan text from a normalised code, or null."""
    t = code.str.replace_all(r"[,，元¥￥]", "")
    return pl.when(t.str.contains(r"^-?[0-9]+(\.[0-9]{1,2})?$")).then(t)


def fen(e: pl.Expr) -> pl.Expr:
    """Yuan text (money_of's form) to integer fen, exactly: through Decimal, never a float."""
    return (e.cast(pl.Decimal(20, 2)) * 100).cast(pl.Int64)


def id_expected_check(ids: pl.Expr) -> pl.Expr:
    """The GB 11643 check character of an ID number's first 17 digits (null unless well formed)."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = pl.sum_horizontal([ids.str.slice(i, 1).cast(pl.Int32, strict=False) * w for i, w in enumerate(weights)])
    check = (total % 11).replace_strict(dict(enumerate("10X98765432")), return_dtype=pl.String)
    return pl.when(ids.str.contains(r"^[0-9]{17}[0-9X]$")).then(check)


def _params(reference: Path, month: str) -> dict[str, float]:
    """The policy parameters in force, numeric ones only (pay_amount_source is a word)."""
    out = {}
    for p in csv.DictReader(open(reference / "policy_parameters.csv", encoding="utf-8")):
        if p["effective_from"] <= month and (not p["effective_to"] or month <= p["effective_to"]):
            try:
                out[p["parameter"]] = float(p["value"])
            except ValueError:
                pass
    return out


def _bank_spellings(reference: Path) -> dict[str, str]:
    spelling = {}
    for b in csv.DictReader(open(reference / "banks.csv", encoding="utf-8")):
        for s in [b["bank_name"], b["bank_code"], *(b["aliases"] or "").split(";")]:
            if s.strip():
                spelling[s.strip()] = b["bank_code"].strip()
    return spelling


# the delivered columns staging reads: normalised as codes (no spaces, upper case) or as text
CODES = ("region_code", "id_number", "bank_account", "enrolled_from", "enrolled_to", "approved_amount", "household_id",
         "household_size", "household_income", "institution_code", "disability_cert_no", "guardian_id_number")
TEXTS = ("name", "sex", "urban_rural", "bank_name", "account_holder", "relation", "placement", "care_level",
         "guardian_name", "subsidy_type", "disability_category", "disability_grade")


def stage(df: pl.DataFrame, program: str, month: str, reference: Path, disability_ids: pl.Series) -> pl.LazyFrame:
    """Normalised values and the facts the suites check (doudi's sql/staging models)."""
    missing = [c for c in (*CODES, *TEXTS, "class_category") if c not in df.columns]
    unseen = r"[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]"  # sql/macros.sql has_hidden_characters, inside the trimmed value

    def hidden(c: str) -> pl.Expr:
        return pl.col(c).str.strip_chars(" \t\n\f\r\u3000").str.contains(unseen).fill_null(False)

    # each value normalised once; what the checks need of the delivered form is kept beside it
    r = df.lazy().with_columns(pl.lit(None, pl.String).alias(c) for c in missing).with_columns(
        *(norm_code(pl.col(c)) for c in CODES), *(norm_text(pl.col(c)) for c in TEXTS),
        program=pl.lit(program),
        # the generator hides no XLSX rows or sheets
        row_malformed=pl.lit(None, pl.String), hidden_row=pl.lit(None, pl.String),
        in_hidden_sheet=pl.lit(None, pl.String),
        hidden_characters=pl.when(hidden("name") | hidden("account_holder")).then(pl.lit("NAME_HIDDEN_CHARACTER")),
        from_delivered=pl.col("enrolled_from").is_not_null(), size_delivered=pl.col("household_size").is_not_null(),
        class_categories=fold(pl.col("class_category")),
        payroll_month=pl.lit(month), age_out_month=pl.lit(None, pl.String), ledger_program=pl.lit(None, pl.String),
    ).with_columns(
        enrolled_from=month_of(pl.col("enrolled_from")), enrolled_to=month_of(pl.col("enrolled_to")),
        approved_amount=money_of(pl.col("approved_amount")),
        month_unparsed=(pl.col("from_delivered") & month_of(pl.col("enrolled_from")).is_null())
        | (pl.col("enrolled_to").is_not_null() & month_of(pl.col("enrolled_to")).is_null()),
        approved_unparsed=pl.col("approved_amount").is_not_null() & money_of(pl.col("approved_amount")).is_null(),
    )
    y, m = int(month[:4]), int(month[5:])
    month_end = date(y + m // 12, m % 12 + 1, 1) - timedelta(days=1)
    param = _params(reference, month)
    ids = pl.col("id_number")
    birth = pl.when(pl.col("id_format_ok")).then(ids.str.slice(6, 8).str.to_date("%Y%m%d", strict=False))
    r = r.with_columns(
        approved_amount_num=pl.col("approved_amount").cast(pl.Float64),  # a sign check, not money arithmetic
        id_format_ok=ids.str.contains(r"^[0-9]{17}[0-9X]$").fill_null(False),
        id_expected_check=id_expected_check(ids),
        id_check_char=ids.str.slice(17, 1),
        bank_code=pl.col("bank_name").replace_strict(_bank_spellings(reference), default=None),
        has_account=pl.col("bank_account").is_not_null(),
        account_required=pl.lit(True),
    ).with_columns(birth=birth).with_columns(
        birth_ok=pl.col("birth").is_between(date(1900, 1, 1), month_end).fill_null(False),
        sex_from_id=pl.when(pl.col("id_format_ok")).then(  # 17th digit odd: male
            pl.when(ids.str.slice(16, 1).cast(pl.Int32, strict=False) % 2 == 1).then(pl.lit("男"))
            .otherwise(pl.lit("女"))),
    )
    b = pl.col("birth")
    age = month_end.year - b.dt.year() - ((b.dt.month() > month_end.month)
                                          | ((b.dt.month() == month_end.month) & (b.dt.day() > month_end.day)))
    if program == "dibao":
        size = pl.col("household_size").str.replace(r"人$", "").cast(pl.Float64, strict=False)
        cats = (pl.col("class_categories").fill_null("").str.replace_all(r"[；,，、/ ]", ";").str.split(";")
                .list.eval(pl.element().str.strip_chars().filter(pl.element() != "")).list.unique().list.sort())
        r = r.with_columns(
            household_size=pl.when(size == size.floor()).then(size.cast(pl.Int64)),
            household_income=money_of(pl.col("household_income")),
            class_categories=pl.when(cats.list.len() > 0).then(cats),
        ).with_columns(
            household_size_unparsed=pl.col("size_delivered") & pl.col("household_size").is_null(),
            household_income_num=pl.col("household_income").cast(pl.Float64),
            class_category_ok=pl.col("class_categories").list.eval(pl.element().is_in(list(CLASS_CATEGORIES)))
            .list.all().fill_null(True),
            account_required=(pl.col("relation") == "户主").fill_null(False),
        )
    else:
        r = r.with_columns(household_size=pl.lit(None, pl.Int64), household_income=pl.lit(None, pl.String),
                           class_categories=pl.lit(None, pl.List(pl.String)))
    if program == "tekun":
        r = r.with_columns(
            tekun_eligible=(age >= param["tekun_elderly_min_age"]).fill_null(False)
            | (age < param["tekun_minor_max_age"]).fill_null(False)
            | pl.col("disability_cert_no").is_not_null() | ids.is_in(pl.lit(disability_ids).implode()).fill_null(False))
    elif program == "orphan":
        gid = pl.col("guardian_id_number")
        # the month of the 18th birthday (a 29 February birthday still falls in February)
        age_out = pl.concat_str([(b.dt.year() + int(param["orphan_age_out"])).cast(pl.String), pl.lit("-"),
                                 b.dt.month().cast(pl.String).str.zfill(2)])
        r = r.with_columns(
            age_out_month=age_out,
            guardian_id_ok=gid.is_null() | (id_expected_check(gid) == gid.str.slice(17, 1)).fill_null(False),
        ).with_columns(
            aged_out=(pl.col("age_out_month") < month).fill_null(False),
            guardian_required=(pl.col("placement") != "机构养育").fill_null(True),
        )
    elif program == "disability":
        cats = {**DISABILITY_CATEGORIES, **{v: v for v in DISABILITY_CATEGORIES.values()},
                **{k + "残疾": v for k, v in DISABILITY_CATEGORIES.items()}}
        grades = {**DISABILITY_GRADES, **{v: v for v in DISABILITY_GRADES.values()},
                  **{v + "级": v for v in DISABILITY_GRADES.values()}}
        cert, category, grade = pl.col("disability_cert_no"), pl.col("disability_category"), pl.col("disability_grade")
        r = r.with_columns(
            ledger_program=pl.col("subsidy_type").replace_strict(SUBSIDY_TYPES, default=None),
            category_ok=category.is_null() | category.replace_strict(cats, default=None).is_not_null(),
            disability_category=category.replace_strict(cats, default=None),
            disability_grade=grade.replace_strict(grades, default=None),
        ).with_columns(
            cert_ok=cert.is_null() | (cert == pl.concat_str([ids, pl.col("disability_category").fill_null("?"),
                                                             pl.col("disability_grade").fill_null("?")]))
            .fill_null(False),
        )
    grain = pl.col("subsidy_type").fill_null("") if program == "disability" else pl.lit("")
    # the same person twice in one file: the first row survives (the frame is in delivered order)
    r = r.with_columns(same_file_repeat=ids.is_not_null()
                       & ~pl.struct(pl.col("source_file"), ids, grain).is_first_distinct())
    if program == "dibao":
        member = ~pl.col("same_file_repeat") & pl.col("household_id").is_not_null()
        head = member & (pl.col("relation") == "户主").fill_null(False)
        rows = member.sum().over("household_id")
        known = pl.col("household_id").is_not_null() & (rows > 0)
        r = r.with_columns(
            hh_has_head=pl.when(known).then(head.sum().over("household_id") >= 1),
            hh_single_head=pl.when(known).then(head.sum().over("household_id") <= 1),
            hh_member_rows=pl.when(known).then(rows.cast(pl.Int64)),
            hh_head_has_account=pl.when(known).then((head & pl.col("bank_account").is_not_null())
                                                    .any().over("household_id")).fill_null(False),
        )
    return r


def _failing(e: dict, parameters: dict) -> pl.Expr:
    """The rows an expectation (as stored in expectations/*.json) fails, as a Polars expression."""
    kw, kind = e["kwargs"], e["type"]
    cond = pl.lit(True)
    if kw.get("row_condition"):
        c = kw["row_condition"]
        cond = (pl.col(c["column"]["name"]) == c["parameter"]).fill_null(False)
    if "column" in kw:
        col = pl.col(kw["column"])
        present = col.is_not_null()
    if kind == "expect_column_values_to_be_null":
        bad = present
    elif kind == "expect_column_values_to_not_be_null":
        bad = ~present
    elif kind == "expect_column_values_to_match_regex":
        bad = present & ~col.cast(pl.String).str.contains(kw["regex"])
    elif kind == "expect_column_values_to_not_match_regex":
        bad = present & col.cast(pl.String).str.contains(kw["regex"])
    elif kind == "expect_column_values_to_be_in_set":
        values = kw["value_set"]
        values = parameters[values["$PARAMETER"]] if isinstance(values, dict) else values
        bad = present & ~col.is_in(values)
    elif kind == "expect_column_values_to_be_between":
        bad = present & (col < kw["min_value"])
    else:
        a, b = pl.col(kw["column_A"]), pl.col(kw["column_B"])
        both = a.is_not_null() & b.is_not_null()
        if kind == "expect_column_pair_values_to_be_equal":
            bad = both & (a.cast(pl.String) != b.cast(pl.String))
        elif kind == "expect_column_pair_values_a_to_be_greater_than_b":
            bad = both & (a < b if kw.get("or_equal") else a <= b)
        else:
            raise ValueError(f"no Polars rule for {kind}")
    return (bad & cond).fill_null(False)


def validate(r: pl.LazyFrame, program: str, county_codes: list[str]) -> pl.LazyFrame:
    suite = []
    for name in ("roster_common", f"roster_{program}"):
        suite += json.loads((EXPECTATIONS / f"{name}.json").read_text(encoding="utf-8"))["expectations"]
    judged = ~pl.col("same_file_repeat")
    bad = judged & pl.any_horizontal([_failing(e, {"county_codes": county_codes}) for e in suite])
    r = r.with_columns(bad=bad)
    if program == "dibao":  # a bad member quarantines the whole household
        r = r.with_columns(bad=pl.col("bad") | (judged & pl.col("household_id").is_not_null()
                                                & pl.col("bad").any().over("household_id")))
    return r.with_columns(disposition=pl.when(~judged).then(pl.lit("duplicate"))
                          .when(pl.col("bad")).then(pl.lit("quarantined")).otherwise(pl.lit("accepted")))


# what integrity and the engine read of a validated row
ROSTER = ["program", "source_file", "source_row", "id_number", "name", "region_code", "urban_rural", "bank_account",
          "account_holder", "enrolled_from", "enrolled_to", "approved_amount", "household_id", "relation",
          "household_size", "household_income", "class_categories", "placement", "care_level", "institution_code",
          "guardian_name", "subsidy_type", "ledger_program", "disability_grade", "age_out_month", "disposition"]


# --- 3. integrity ----------------------------------------------------------------------------
def _deaths(inbox: Path, month: str) -> pl.LazyFrame | None:
    """The death registry: each ID's earliest death month, for deaths before the payroll month."""
    path = inbox / month / "registry" / "deaths.csv"
    if not path.exists():
        return None
    return (pl.read_csv(_utf8(path.read_bytes()), infer_schema=False).lazy()
            .select(norm_code(pl.col("id_number")).alias("id_number"),
                    month_of(norm_code(pl.col("death_date")), check_day=False).alias("registry_death_month"))
            .drop_nulls().group_by("id_number").agg(pl.col("registry_death_month").min())
            .filter(pl.col("registry_death_month") < month))


def integrity(rows: pl.LazyFrame, inbox: Path, reference: Path, month: str) -> pl.LazyFrame:
    r = rows.with_row_index("rid").with_columns(
        line_program=pl.when(pl.col("program") == "disability").then("ledger_program").otherwise("program"))
    # the same person accepted twice in a program (two counties): the first by enrolment month,
    # county, file and row survives
    repeats = (r.filter(pl.col("disposition") == "accepted")
               .sort(["enrolled_from", "region_code", "source_file", "source_row"], nulls_last=True)
               .filter(~pl.struct("line_program", "id_number").is_first_distinct())
               .select("rid", repeat=pl.lit(True)))
    r = (r.join(repeats, on="rid", how="left")
         .with_columns(disposition=pl.when(pl.col("repeat")).then(pl.lit("duplicate")).otherwise("disposition")))
    held = pl.col("disposition") == "accepted"
    prog, sub = pl.col("program"), pl.col("subsidy_type")

    def holding(spec: str) -> pl.Expr:  # `program` or `program:subsidy type`, as exclusions.csv writes it
        p, _, s = spec.strip().partition(":")
        return held & (prog == p) & ((sub == s).fill_null(False) if s else pl.lit(True))

    # programs that exclude each other: program b is not paid (a dibao member is not counted)
    excluded = pl.lit(False)
    for x in csv.DictReader(open(reference / "exclusions.csv", encoding="utf-8")):
        if x["action"].strip().lower() == "pay_a_only":
            excluded = excluded | (holding(x["program_b"]) & holding(x["program_a"]).any().over("id_number"))
    not_dibao = prog != "dibao"
    reason = pl.when(excluded & not_dibao).then(pl.lit("exclusive_programs")).when(
        held & (prog == "disability") & (sub == "生活补贴").fill_null(False)
        & ~(held & (prog == "dibao")).any().over("id_number")).then(pl.lit("living_subsidy_not_in_dibao"))
    r = r.with_columns(excluded_member=excluded & ~not_dibao, not_paid_reason=reason)

    deaths = _deaths(inbox, month)
    if deaths is None:
        r = r.with_columns(death_month=pl.lit(None, pl.String), hold_reason=pl.lit(None, pl.String))
    else:
        r = r.join(deaths, on="id_number", how="left").with_columns(
            death_month=pl.when(held).then("registry_death_month"))
        dead = pl.col("death_month").is_not_null()
        dead_head = dead & (prog == "dibao") & (pl.col("relation") == "户主").fill_null(False)
        r = r.with_columns(
            not_paid_reason=pl.when(pl.col("not_paid_reason").is_null() & dead & not_dibao)
            .then(pl.lit("deceased_listed")).otherwise("not_paid_reason"),
            hold_reason=pl.when(held & (prog == "dibao") & pl.col("household_id").is_not_null()
                                & dead_head.any().over("household_id")).then(pl.lit("household_head_deceased")))
    # the account must be in the name of the one the contract says: beneficiary, guardian
    expected = (pl.when(prog == "orphan")
                .then(pl.when(pl.col("placement") == "机构养育").then(None).otherwise("guardian_name"))
                .otherwise(pl.when(pl.col("institution_code").is_null()).then("name")))
    mismatch = (held & pl.col("bank_account").is_not_null() & expected.is_not_null()
                & (pl.col("account_holder").fill_null("\0") != expected))
    r = r.with_columns(
        no_price_subsidy=pl.col("death_month").is_not_null(),
        hold_reason=pl.when(~held).then(None).when(pl.col("hold_reason").is_not_null()).then("hold_reason")
        .when(mismatch).then(pl.lit("account_holder_mismatch")),
        not_paid_reason=pl.when(held).then("not_paid_reason"))
    return r


# --- 4. the payment engine -------------------------------------------------------------------
def load_standards(reference: Path, month: str) -> pl.DataFrame:
    """The standards a first payroll month applies (the reference table, a few hundred rows)."""
    s = pl.read_csv(reference / "standards.csv", infer_schema=False)
    if "first_payroll" not in s.columns:
        s = s.with_columns(first_payroll=pl.lit(None, pl.String))
    star = pl.lit("*")
    return s.select(
        *(pl.col(c).str.strip_chars() for c in ("program", "component", "region_code")),
        *(pl.coalesce(_blank_to_null(pl.col(c).str.strip_chars()), star).alias(c) for c in ("urban_rural", "category")),
        "effective_from", pl.col("effective_to").fill_null(OPEN),
        pl.col("first_payroll").fill_null(pl.col("effective_from")), amount_fen=fen(pl.col("amount").str.strip_chars()),
    ).filter((pl.col("first_payroll") <= month) & (pl.col("effective_from") <= month)
             & (pl.col("effective_to") >= month))


def resolve(needs: pl.LazyFrame, standards: pl.DataFrame, program: str, component: str, category: str | None,
            name: str) -> pl.LazyFrame:
    """`needs` with the standard (fen) for each row as column `name`: the longest region prefix,
    then a specific urban/rural, then a specific category, then the latest version (as
    sql/intermediate/int_standard_resolved.sql)."""
    keys = ["region_code", "urban_rural", "_category"]
    cand = standards.lazy().filter(pl.col("program") == program, pl.col("component") == component).select(
        pl.col("region_code").alias("prefix"), pl.col("urban_rural").alias("ur_s"), pl.col("category").alias("cat_s"),
        "effective_from", "amount_fen")
    needs = needs.with_columns(_category=pl.col(category) if category else pl.lit("*"))
    best = (needs.select(keys).unique().join(cand, how="cross")
            .filter(pl.col("region_code").str.starts_with(pl.col("prefix")),
                    ((pl.col("ur_s") == "*") | (pl.col("ur_s") == pl.col("urban_rural"))).fill_null(False),
                    ((pl.col("cat_s") == "*") | (pl.col("cat_s") == pl.col("_category"))).fill_null(False))
            .sort([pl.col("prefix").str.len_chars(), pl.col("ur_s") != "*", pl.col("cat_s") != "*",
                   "effective_from"], descending=True)
            .unique(keys, keep="first", maintain_order=True)
            .select(*keys, pl.col("amount_fen").alias(name)))
    return needs.join(best, on=keys, how="left", nulls_equal=True).drop("_category")


def price_rule(reference: Path, month: str, province: str):
    """The price subsidy in force and the rate it pays at (None when nothing triggers)."""
    rules = [r for r in csv.DictReader(open(reference / "price_linkage.csv", encoding="utf-8"))
             if r["effective_from"] <= month <= (r["effective_to"] or OPEN)]
    if not rules:
        return None
    rule = max(rules, key=lambda r: r["effective_from"])
    k = int(month[:4]) * 12 + int(month[5:]) - 1 - int(rule["index_lag"])
    index_month = f"{k // 12:04d}-{k % 12 + 1:02d}"
    cpi = [c for c in csv.DictReader(open(reference / "cpi.csv", encoding="utf-8"))
           if c["month"] == index_month and c["area"] in (province, "00")]
    if not cpi:
        return None
    row = min(cpi, key=lambda c: c["area"] != province)  # the province's own series first

    def dec(v):
        return None if v is None or v.strip() == "" else Decimal(v.strip())

    cpi_yoy, food_yoy = dec(row["cpi_yoy"]), dec(row["food_yoy"])
    cpi_t, food_t = dec(rule["cpi_threshold"]), dec(rule["food_threshold"])
    cpi_on = cpi_t is not None and cpi_yoy >= cpi_t
    food_on = food_t is not None and food_yoy >= food_t
    if not (cpi_on or food_on):
        return None
    basis = rule["basis"].strip().lower()
    rate = {"cpi": cpi_yoy, "food": food_yoy}.get(basis) if basis != "triggered" else \
        max(v for v, on in ((cpi_yoy, cpi_on), (food_yoy, food_on)) if on)
    if rate is None or rate <= 0:
        return None
    return rule, rate


def price_subsidy(u: pl.LazyFrame, reference: Path, standards: pl.DataFrame, month: str,
                  province: str) -> pl.LazyFrame | None:
    found = price_rule(reference, month, province)
    if found is None:
        return None
    rule, rate = found
    programs = [p.strip() for p in rule["programs"].lower().split(";")]
    multiplier, minimum = Decimal(rule["multiplier"]), Decimal(rule["minimum"] or 0)
    quantum = Decimal("1") if rule["rounding"].strip().lower() == "yuan" else Decimal("0.01")

    def amount(standard_fen: int) -> int:
        exact = Decimal(standard_fen) / 100 * rate * multiplier * Decimal("0.01")
        return int(max(exact.quantize(quantum, rounding=ROUND_HALF_UP), minimum) * 100)

    # the subsidy of every dibao standard in force, in Decimal (a few dozen values, not a row each)
    per_standard = {s: amount(s) for s in standards.filter(
        (pl.col("program") == "dibao") & (pl.col("component") == "standard"))["amount_fen"].unique().to_list()}
    c = (u.filter(pl.col("program").is_in(programs), ~pl.col("excluded_member"), ~pl.col("no_price_subsidy"),
                  pl.col("enrolled_from") <= month, pl.col("enrolled_to").fill_null(OPEN) >= month,
                  pl.col("age_out_month").fill_null(OPEN) >= month)
         # once per person: the first program of the rule's list, then the first file and row
         .sort([pl.col("program").replace_strict({p: i for i, p in enumerate(programs)}), "source_file",
                "source_row"])
         .unique("id_number", keep="first", maintain_order=True))
    c = resolve(c, standards, "dibao", "standard", None, "standard").drop_nulls("standard")
    return c.select(*UNIT, amount=pl.col("standard").replace_strict(per_standard, return_dtype=pl.Int64),
                    line_type=pl.lit("price_subsidy"))


def compute(r: pl.DataFrame, reference: Path, month: str, province: str = "21") -> pl.DataFrame:
    """The month's lines (program, line_type, status, amount in fen) from the integrity roster.
    The frames several plans read are collected once (`.collect().lazy()`): Polars does not always
    see that two branches share a subplan, and then computes it again for each."""
    everyone = r.lazy().filter(pl.col("disposition") == "accepted", pl.col("not_paid_reason").is_null()).with_columns(
        unit_key=pl.when(pl.col("program") == "dibao").then("household_id").otherwise("id_number")).collect().lazy()
    standards = load_standards(reference, month)

    # entitlement this month (a household by its head's row); a dibao household outlives its head
    # (it is held), so only other programs end at a death
    entitled = everyone.group_by(UNIT).agg(
        pl.col("enrolled_from").min(), pl.col("enrolled_to").fill_null(OPEN).max(),
        pl.col("age_out_month").fill_null(OPEN).min().alias("age_out"),
        pl.col("death_month").fill_null(OPEN).filter(pl.col("program") != "dibao").min().alias("last_alive"),
    ).filter(pl.col("enrolled_from") <= month, pl.col("enrolled_to") >= month, pl.col("age_out") >= month,
             pl.col("last_alive").fill_null(OPEN) >= month)
    u = everyone.join(entitled.select(UNIT), on=UNIT, how="semi").collect().lazy()

    # dibao: per household, from the head's row
    dib = u.filter(pl.col("line_program") == "dibao")
    excluded = dib.filter("excluded_member").group_by("unit_key").agg(excluded=pl.len().cast(pl.Int64))
    heads = dib.filter(pl.col("relation") == "户主").join(excluded, on="unit_key", how="left")
    heads = resolve(resolve(heads, standards, "dibao", "standard", None, "standard"),
                    standards, "dibao", "floor", None, "floor").collect().lazy()
    members = (dib.filter(~pl.col("excluded_member"), pl.col("class_categories").is_not_null())
               .select("unit_key", "id_number", "class_categories").explode("class_categories")
               .drop_nulls("class_categories")
               .join(heads.select("unit_key", "region_code", "urban_rural"), on="unit_key"))
    # add-ons do not stack: each member's largest, summed per household
    addons = (resolve(members, standards, "dibao", "class_addon", "class_categories", "class_addon")
              .drop_nulls("class_addon").group_by("unit_key", "id_number").agg(pl.col("class_addon").max())
              .group_by("unit_key").agg(addons=pl.col("class_addon").sum()))
    covered = pl.col("household_size") - pl.col("excluded").fill_null(0)
    gap = pl.col("standard") * covered - fen(pl.col("household_income")).fill_null(0)
    floor_total = pl.col("floor").fill_null(0) * covered
    heads = (heads.join(addons, on="unit_key", how="left").with_columns(gap=gap, floor_total=floor_total)
             .filter(pl.col("standard").is_not_null(), pl.col("gap") > 0)).collect().lazy()
    regular = [heads.select("line_program", "unit_key", amount=pl.max_horizontal("gap", "floor_total")
                            + pl.col("addons").fill_null(0))]

    # the others, per person: (program, component, category column) of each amount's parts
    parts = {"tekun": [("tekun", "basic", None), ("tekun", "care", "care_level")],
             "orphan": [("orphan", "basic", "placement")],
             "disability_living": [("disability", "living", None)],
             "disability_nursing": [("disability", "nursing", "disability_grade")]}
    for program, components in parts.items():
        p = u.filter(pl.col("line_program") == program)
        for i, (prog, comp, cat) in enumerate(components):
            p = resolve(p, standards, prog, comp, cat, f"part{i}")
        amount = pl.sum_horizontal([f"part{i}" for i in range(len(components))], ignore_nulls=False)
        regular.append(p.select("line_program", "unit_key", amount=amount).drop_nulls("amount"))
    lines = pl.concat(regular).with_columns(line_type=pl.lit("regular"))

    # members of a household that gets no dibao line (gap <= 0) are not dibao members
    eligible = heads.select("unit_key").unique().with_columns(eligible=pl.lit(True))
    payees = (everyone.join(eligible, on="unit_key", how="left")
              .filter((pl.col("program") != "dibao") | pl.col("eligible").fill_null(False)))
    price = price_subsidy(payees, reference, standards, month, province)
    if price is not None:
        lines = pl.concat([lines, price], how="diagonal")
    holds = everyone.group_by(UNIT).agg(held=pl.col("hold_reason").is_not_null().any())
    return (lines.join(holds, on=UNIT, how="left")
            .filter(pl.col("amount") > 0)
            .select(pl.col("line_program").alias("program"), "line_type",
                    status=pl.when(pl.col("held").fill_null(False)).then(pl.lit("held")).otherwise(pl.lit("payable")),
                    amount="amount")).collect()


# --- the month, timed and checked ------------------------------------------------------------
def run_month(inbox: Path, reference: Path, month: str, province: str = "21") -> pl.DataFrame:
    regions = pl.read_csv(reference / "regions.csv", infer_schema=False)
    county_codes = sorted(regions.filter(pl.col("province_code") == province)["region_code"].to_list())
    raw = {p: ingest(inbox, month, p) for p in PROGRAMS}
    disability_ids = (raw["disability"].select(norm_code(pl.col("id_number"))).to_series().drop_nulls().unique()
                      if raw["disability"].height else pl.Series("id_number", [], pl.String))
    # the four programs staged and validated at once, then one roster for integrity
    staged = pl.collect_all([validate(stage(raw[p], p, month, reference, disability_ids), p, county_codes)
                             .select(ROSTER) for p in PROGRAMS if raw[p].height])
    rows = integrity(pl.concat(staged, how="vertical").lazy(), inbox, reference, month).collect()
    return compute(rows, reference, month, province)


def totals(lines: pl.DataFrame) -> dict[tuple[str, str, str], tuple[int, int]]:
    g = lines.group_by("program", "line_type", "status").agg(n=pl.len(), fen=pl.col("amount").sum())
    return {(p, t, s): (int(n), int(a)) for p, t, s, n, a in g.iter_rows()}


def run(inbox: Path, reference: Path, month: str, ledger: Path) -> dict:
    """Time the month and compare its totals with doudi's ledger (the shape pandas_pipeline.run gives)."""
    started = time.perf_counter()
    lines = run_month(inbox, reference, month)
    seconds = time.perf_counter() - started
    from pandas_baseline import doudi_totals  # after the clock: the same reading of doudi's ledger

    ours, theirs = totals(lines), doudi_totals(ledger)
    return {"seconds": round(seconds, 2), "lines": lines.height, "totals_match": ours == theirs,
            "differences": {"/".join(k): {"polars": ours.get(k), "doudi": theirs.get(k)}
                            for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k)}}


if __name__ == "__main__":
    from pandas_baseline import print_result  # the result line bench/run.py reads, with VmHWM

    print_result(run(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])))
