"""Every reference table is complete or refused (issue 16, cases 2, 7, 8 and 9).

A gap in a reference table never switches a rule off or drops a line: check_reference names the
file, the key and what needs it before any payment is computed, and a fund table that follows the
contract (four programs, no price_subsidy row) pays the price subsidy from the shares of the
program that carries it. The rules that change amounts are policy_parameters.csv rows, resolved
once per run and recorded in run_log; the old environment settings stop the run.

Hand arithmetic (210102, Shenyang; shipped tables):
  January 2020, rural household of one, no income: dibao 450.00; price subsidy (December CPI 4.5%)
  450 × 4.5% = 20.25 = 2025 fen. Without a price_subsidy row it is funded by dibao's Shenyang
  shares 0.40 / 0.10 / 0.30 / 0.20: floors 810, 202 (.5), 607 (.5), 405 → one fen left, to the
  largest remainder, the first of the tie (provincial): 8.10 / 2.03 / 6.07 / 4.05 = 20.25.
  May 2020, urban household of one: April CPI 3.3% < 3.5 but food 14.8% ≥ 6.0 triggers the doubled
  2020 window (basis cpi): 688 × 3.3% × 2 = 45.408 → 45.41.
"""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from pipelines.reference import check_reference, held_counties
from pipelines.settings import RunError
from tests.helpers import context, copy_reference, query, roster_path, run, write_csv
from tests.test_engine_golden import DIBAO, C, common, person

PARAMETERS = ["tekun_basic_min_ratio", "tekun_elderly_min_age", "tekun_minor_max_age", "orphan_age_out",
              "reissue_escalate_after_months", "near_duplicate_min_match_weight", "pay_amount_source",
              "approved_tolerance"]


def _drop_lines(ref, name, starts):
    path = ref / name
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [ln for ln in lines if not ln.startswith(starts)]
    assert len(kept) < len(lines), (name, starts)
    path.write_text("".join(kept), encoding="utf-8")


def _refused(tmp_path, ref, month="2020-01") -> str:
    with pytest.raises(RunError) as exc:
        check_reference(context(tmp_path, month, reference=ref))
    return str(exc.value)


def _one_household(inbox, month, p, ur, hid):
    write_csv(roster_path(inbox, month, "dibao", f"{C}_dibao_{month.replace('-', '')}.csv"), DIBAO,
              [common(p, ur=ur) + [hid, "户主", 1, "0", ""]])


# --- fund shares -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def four_program_month(tmp_path_factory):
    """January 2020 with a fund table of the four programs only (no price_subsidy row)."""
    tmp = tmp_path_factory.mktemp("four_programs")
    ref = copy_reference(tmp)
    _drop_lines(ref, "fund_shares.csv", "price_subsidy,")
    r1 = person(71, "19600101", False)
    _one_household(tmp / "inbox", "2020-01", r1, "农村", "HF")
    run(tmp, "2020-01", reference=ref)
    return tmp / "warehouse.duckdb", r1


def test_a_four_program_fund_table_pays_the_price_subsidy_from_the_carrying_program(four_program_month):
    wh, r1 = four_program_month
    rows = query(wh, "SELECT program, amount, fund_central, fund_provincial, fund_city, fund_county, fund_version "
                     "FROM payment_ledger WHERE id_number = ? AND line_type = 'price_subsidy'", [r1["id"]])
    assert rows == [("dibao", D("20.25"), D("8.10"), D("2.03"), D("6.07"), D("4.05"), "fund_shares/dibao/2101@2019-01")]
    assert sum(rows[0][2:6]) == rows[0][1]
    assert query(wh, "SELECT amount FROM payment_ledger WHERE id_number = ? AND line_type = 'regular'",
                 [r1["id"]]) == [(D("450.00"),)]


def test_a_price_subsidy_row_wins_over_the_carrying_program(tmp_path):
    """The shipped table has price_subsidy,21 (0 / 0.50 / 0.25 / 0.25): 2025 fen → 0 / 10.13 / 5.06 / 5.06."""
    r1 = person(72, "19600101", False)
    _one_household(tmp_path / "inbox", "2020-01", r1, "农村", "HP")
    run(tmp_path, "2020-01")
    assert query(tmp_path / "warehouse.duckdb",
                 "SELECT fund_central, fund_provincial, fund_city, fund_county, fund_version FROM payment_ledger "
                 "WHERE id_number = ? AND line_type = 'price_subsidy'", [r1["id"]]) == [
        (D("0.00"), D("10.13"), D("5.06"), D("5.06"), "fund_shares/price_subsidy/21@2019-01")]


def test_run_log_records_the_resolved_policy(four_program_month):
    wh, _ = four_program_month
    (resolved,) = query(wh, "SELECT policy_resolved FROM run_log WHERE payroll_month = '2020-01'")[0]
    assert json.loads(resolved) == {"pay_amount_source": "computed", "approved_tolerance": "0.00",
                                    "carry_forward_max_months": "2",
                                    "carry_forward_programs": "dibao;tekun;orphan;disability"}


def _held(tmp_path, ref, month="2020-01") -> dict[str, list[str]]:
    """check_reference passes, holding the counties the gap is confined to (issue 20): by county, why."""
    ctx = context(tmp_path, month, reference=ref)
    check_reference(ctx)
    return held_counties(ctx)


def test_a_fund_row_missing_for_every_county_is_refused_naming_the_key(tmp_path):
    ref = copy_reference(tmp_path)
    _drop_lines(ref, "fund_shares.csv", "disability,21,")
    message = _refused(tmp_path, ref)
    assert "fund_shares.csv has no disability row in force for payroll 2020-01 covering county 210102" in message


def test_a_fund_row_missing_for_some_counties_holds_them_naming_the_key(tmp_path):
    """Shenyang keeps its own dibao,2101 row; the rest of the province has none left: every county
    outside Shenyang is held (paid forward), Shenyang is paid."""
    ref = copy_reference(tmp_path)
    _drop_lines(ref, "fund_shares.csv", "dibao,21,")
    held = _held(tmp_path, ref)
    assert "210202" in held and not any(c.startswith("2101") for c in held)
    assert "fund_shares.csv has no dibao row in force for payroll 2020-01 covering county" in held["210202"][0]


def test_a_line_no_fund_row_covers_fails_the_engine_not_dropped(tmp_path):
    """The last line of defence: past check_reference, a line with no fund split stops compute."""
    from pipelines.compute import compute_payments
    from pipelines.ingest import ingest_program
    from pipelines.integrity import check_integrity
    from pipelines.validate import validate_program

    ref = copy_reference(tmp_path)
    r1 = person(73, "19600101", False)
    _one_household(tmp_path / "inbox", "2020-01", r1, "农村", "HD")
    ctx = context(tmp_path, "2020-01", reference=ref)
    check_reference(ctx)
    _drop_lines(ref, "fund_shares.csv", ("dibao,2101,", "dibao,21,"))
    for program in ("dibao", "tekun", "orphan", "disability"):
        ingest_program(ctx, program)
        validate_program(ctx, program)
    check_integrity(ctx)
    with pytest.raises(RunError, match="1 lines without a fund split"):
        compute_payments(ctx)


# --- CPI, price linkage, standards -----------------------------------------------------------------

def test_a_missing_cpi_row_for_the_index_month_is_refused(tmp_path):
    ref = copy_reference(tmp_path)
    _drop_lines(ref, "cpi.csv", "2020-04,")
    message = _refused(tmp_path, ref, "2020-05")
    assert "cpi.csv has no row for month 2020-04 (area 21 or 00)" in message
    assert "price_linkage@2020-03" in message


def test_two_price_linkage_versions_with_the_same_effective_from_are_refused(tmp_path):
    ref = copy_reference(tmp_path)
    with open(ref / "price_linkage.csv", "a", encoding="utf-8") as fh:
        fh.write("2020-03,2020-06,3.5,6.0,1,cpi,1,0,fen,dibao;tekun\n")
    message = _refused(tmp_path, ref, "2020-04")
    assert "price_linkage.csv has 2 versions with effective_from 2020-03" in message


def test_a_county_without_a_dibao_standard_is_held_and_the_province_without_one_refused(tmp_path):
    ref = copy_reference(tmp_path)
    _drop_lines(ref, "standards.csv", ("dibao,standard,21,农村,", "dibao,standard,2105,农村,"))
    held = _held(tmp_path, ref)
    assert set(held) == {c for c in held if c.startswith("2105")} and "210502" in held
    assert ("standards.csv has no dibao/standard (农村) in force for payroll 2020-01 covering county 210502"
            in held["210502"][0])
    _drop_lines(ref, "standards.csv", "dibao,standard,21")  # every county's rows: nobody left to pay
    assert "standards.csv has no dibao/standard (城市)" in _refused(tmp_path, ref)


def test_the_2020_window_triggers_on_food_and_the_shipped_cpi_is_corrected(tmp_path):
    """May 2020: CPI 3.3% is below 3.5, food 14.8% is above 6.0 → doubled price subsidy 45.41."""
    import csv

    from tests.helpers import DEFAULT_REFERENCE

    p = person(74, "19700101")
    _one_household(tmp_path / "inbox", "2020-05", p, "城市", "HM")
    run(tmp_path, "2020-05")
    assert query(tmp_path / "warehouse.duckdb", "SELECT amount FROM payment_ledger WHERE id_number = ? "
                 "AND line_type = 'price_subsidy'", [p["id"]]) == [(D("45.41"),)]
    with open(DEFAULT_REFERENCE / "cpi.csv", encoding="utf-8", newline="") as fh:
        cpi = {(r["month"], r["area"]): (r["cpi_yoy"], r["food_yoy"]) for r in csv.DictReader(fh)}
    assert cpi[("2020-10", "00")] == ("0.5", "2.2")


# --- policy parameters -----------------------------------------------------------------------------

@pytest.mark.parametrize("parameter", PARAMETERS)
def test_each_missing_policy_parameter_is_refused(tmp_path, parameter):
    ref = copy_reference(tmp_path)
    _drop_lines(ref, "policy_parameters.csv", parameter + ",")
    message = _refused(tmp_path, ref)
    assert f"policy_parameters.csv has no {parameter} row in force for payroll 2020-01" in message


def test_a_bad_pay_amount_source_is_refused(tmp_path):
    ref = copy_reference(tmp_path)
    path = ref / "policy_parameters.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("pay_amount_source,computed,", "pay_amount_source,county,"),
                    encoding="utf-8")
    assert "pay_amount_source = county" in _refused(tmp_path, ref)


@pytest.mark.parametrize("env,value", [("DOUDI_PAY_AMOUNT_SOURCE", "approved"), ("DOUDI_APPROVED_TOLERANCE", "5")])
def test_the_moved_environment_settings_are_refused(tmp_path, monkeypatch, env, value):
    monkeypatch.setenv(env, value)
    with pytest.raises(RunError, match=f"{env} is no longer read: the setting moved to policy_parameters.csv"):
        check_reference(context(tmp_path, "2020-01"))


# --- encodings and line endings --------------------------------------------------------------------

def test_gbk_and_crlf_reference_files_are_read(tmp_path):
    from pipelines.sqlrun import connect, register_reference
    from tests.helpers import DEFAULT_REFERENCE

    ref = copy_reference(tmp_path)
    params = (ref / "policy_parameters.csv").read_text(encoding="utf-8")
    (ref / "policy_parameters.csv").write_bytes(params.replace("\n", "\r\n").encode("gbk"))
    lines = (ref / "standards.csv").read_text(encoding="utf-8").splitlines()
    mixed = "".join(ln + ("\r\n" if i % 2 else "\n") for i, ln in enumerate(lines))
    (ref / "standards.csv").write_bytes(mixed.encode("utf-8"))
    regions = (ref / "regions.csv").read_text(encoding="utf-8")
    (ref / "regions.csv").write_bytes(regions.replace("\n", "\r\n").encode("gb18030"))
    assert check_reference(context(tmp_path, "2020-01", reference=ref))["problems"] == 0

    def tables(folder):
        con = connect()
        register_reference(con, folder)
        out = {n: con.execute(f"SELECT * FROM raw_{n} ORDER BY ALL").fetchall()
               for n in ("policy_parameters", "standards", "regions")}
        con.close()
        return out

    assert tables(ref) == tables(DEFAULT_REFERENCE)


def test_an_unreadable_reference_file_is_named_in_one_sentence(tmp_path):
    ref = copy_reference(tmp_path)
    with open(ref / "fund_shares.csv", "a", encoding="utf-8") as fh:
        fh.write("tekun,2101,0.5,0.5\n")
    message = _refused(tmp_path, ref)
    assert message.startswith("reference file fund_shares.csv line 9 has 4 fields where its header has 7")
    assert "sniff" not in message.lower() and "\n" not in message


@pytest.mark.parametrize("program,parameter", [("orphan", "orphan_age_out"), ("tekun", "tekun_elderly_min_age")])
def test_a_stage_run_past_check_reference_fails_on_a_missing_parameter_never_defaults(tmp_path, program, parameter):
    """Without the row, a 19-year-old orphan or a 30-year-old able-bodied tekun person used to be
    paid (the rule switched off). Past check_reference, the model that reads it stops the stage."""
    from pipelines.ingest import ingest_program
    from pipelines.validate import validate_program
    from tests.test_engine_golden import ORPHAN, TEKUN

    ref = copy_reference(tmp_path)
    _drop_lines(ref, "policy_parameters.csv", parameter + ",")
    p = person(75, "20010101" if program == "orphan" else "19900101")
    header, extra = (ORPHAN, ["机构养育", "", ""]) if program == "orphan" else (TEKUN, ["分散供养", "全自理", ""])
    write_csv(roster_path(tmp_path / "inbox", "2020-01", program, f"{C}_{program}_202001.csv"), header,
              [common(p) + extra])
    ctx = context(tmp_path, "2020-01", reference=ref)
    ingest_program(ctx, program)
    with pytest.raises(Exception, match=f"policy_parameters.csv has no {parameter} row in force for payroll 2020-01"):
        validate_program(ctx, program)


def test_a_county_without_a_tekun_care_level_or_an_orphan_placement_is_refused(tmp_path):
    """A standard every county needs (tekun care by care level, the orphans' allowance by placement)
    missing for the payroll month stops the run before any payment, naming the key and the counties
    (engine-versus-model disagreement D3: the engine used to turn such rows away one by one)."""
    import csv

    import pytest

    from pipelines.reference import check_reference
    from pipelines.settings import RunError
    from tests.helpers import context, copy_reference

    ref = copy_reference(tmp_path)
    with open(ref / "standards.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    kept = [r for r in rows if not (r["program"] == "tekun" and r["component"] == "care" and r["category"] == "全护理")
            and not (r["program"] == "orphan" and r["category"] == "社会散居")]
    assert len(kept) < len(rows)
    with open(ref / "standards.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(kept)
    with pytest.raises(RunError) as err:
        check_reference(context(tmp_path, "2020-03", reference=ref))
    text = str(err.value)
    assert "standards.csv has no tekun/care (全护理, 城市) in force for payroll 2020-03 covering county 210102" in text
    assert "standards.csv has no orphan/basic (社会散居, 农村)" in text


def test_a_missing_class_add_on_is_refused_not_dropped_from_the_amount(tmp_path):
    """Attack finding 10: without the 老年 add-on row a household declaring 老年 was paid 30.00 less
    (585 → 555) and nobody was told. Now the gap stops the run, naming the component and category."""
    ref = copy_reference(tmp_path)
    _drop_lines(ref, "standards.csv", ("dibao,class_addon,21,*,老年,",))
    text = _refused(tmp_path, ref)
    assert "dibao/class_addon (老年" in text and "210102" in text, text


def test_exclusion_program_names_are_read_case_insensitively(tmp_path):
    """Attack finding 4: `Tekun,DIBAO,pay_a_only` switched the exclusion off without a word. A person
    on the tekun roster who is also a one-member dibao household (no income) is paid tekun only:
    1152.00 (852 basic + 300 半护理), and a finding says why dibao is not paid."""
    from tests.test_assurance import _tekun
    from tests.test_engine_golden import TEKUN

    ref = copy_reference(tmp_path)
    path = ref / "exclusions.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("tekun,dibao,pay_a_only", "Tekun,DIBAO,pay_a_only"),
                    encoding="utf-8")
    p = person(61, "19400101")
    inbox = tmp_path / "inbox"
    write_csv(roster_path(inbox, "2020-01", "tekun", f"{C}_tekun_202001.csv"), TEKUN, [_tekun(p)])
    write_csv(roster_path(inbox, "2020-01", "dibao", f"{C}_dibao_202001.csv"), DIBAO,
              [common(p) + ["H61", "户主", 1, "0", ""]])
    run(tmp_path, "2020-01", reference=ref)
    wh = tmp_path / "warehouse.duckdb"
    regular = query(wh, "SELECT program, amount FROM payment_ledger WHERE id_number = ? AND line_type = 'regular'",
                    [p["id"]])
    assert regular == [("tekun", D("1152.00"))]
    assert query(wh, "SELECT count(*) FROM finding WHERE id_number = ? AND finding_type = 'exclusive_programs'",
                 [p["id"]])[0][0] == 1


@pytest.mark.parametrize("row", ["tekum,dibao,pay_a_only", "tekun,disability:生活费,pay_a_only"])
def test_an_exclusion_naming_no_program_is_refused_with_the_row(tmp_path, row):
    ref = copy_reference(tmp_path)
    path = ref / "exclusions.csv"
    path.write_text(path.read_text(encoding="utf-8") + row + "\n", encoding="utf-8")
    text = _refused(tmp_path, ref)
    assert "exclusions:" in text and row.split(",")[0] in text.replace("/", ","), text
