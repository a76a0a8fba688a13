"""`make mutation`: plant one plausible wrong rule at a time in the engine's SQL and check that the
fast tests notice (issue 16, "Tests that can find a wrong rule").

Each mutation is (name, file under sql/, exact old text, new text, the rule it breaks). For each one
the working tree is copied to a temporary folder (without .venv, var, .git and caches), the old text
is replaced (it must occur exactly once: a stale mutation is a defect of this list, and the run stops
at once), and the fast tests run there:

    killed    the tests failed: the wrong rule was found
    survived  the tests passed: no test can tell the wrong rule from the right one
    broken    the mutated SQL does not parse (or bind): not a plausible rule, a defect of this list

    python tools/mutation.py                 every mutation against the fast tests
    python tools/mutation.py --list          the list, with the rule each one breaks
    python tools/mutation.py --only NAME     one mutation (repeatable)
    python tools/mutation.py --tests tests/test_x.py [--tests ...]   another test set

Exit status: 0 when every mutation run was killed, 1 when any survived or is broken or could not be
run. tests/test_mutation_list.py checks in `make test` that every old text still occurs exactly once.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# in the order that kills most mutations soonest (pytest -x stops at the first failure)
FAST_TESTS = [
    # the given/expect model tests first: each SQL model on its own, about 10 s for all of them
    "tests/test_model_units_months.py",
    "tests/test_model_units_amounts.py",
    "tests/test_model_units_lines.py",
    "tests/test_model_units_integrity.py",
    "tests/test_engine_golden.py",
    "tests/test_mutation_killers.py",
    "tests/test_assurance.py",
    "tests/test_engine_more.py",
    "tests/test_integrity_more.py",
    "tests/test_reference_gaps.py",
]
OPTIONAL_FAST_TESTS = ["tests/test_model_vs_engine.py"]  # another engineer's; used where it exists

# not copied: the virtualenv, generated data, git, caches, Airflow's local home
IGNORE = shutil.ignore_patterns(".venv", "var", ".git", "__pycache__", ".pytest_cache", ".ruff_cache",
                                ".hypothesis", ".airflow", "*.pyc", "*.duckdb", "*.duckdb.wal", "bench/work")

# DuckDB errors that say the SQL is not a rule at all
BROKEN_MARKERS = ("Parser Error", "Binder Error", "Catalog Error")


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # under sql/
    old: str
    new: str
    rule: str


M = Mutation
MUTATIONS: list[Mutation] = [
    # --- dibao ------------------------------------------------------------------------------------
    M("dibao_gap_zero_eligible", "intermediate/int_program_due.sql",
      "gap > 0 as eligible,\n        CAST(case when gap > 0 then",
      "gap >= 0 as eligible,\n        CAST(case when gap >= 0 then",
      "dibao: a household whose gap is zero or negative is not eligible (gap > 0)"),
    M("dibao_floor_ignored", "intermediate/int_program_due.sql",
      "then greatest(gap, floor_total) + addons end",
      "then gap + addons end",
      "dibao: never less than floor × household_size"),
    M("dibao_addons_stack", "intermediate/int_dibao_household.sql",
      "max(a.amount)",
      "sum(a.amount)",
      "dibao: the single largest class add-on per member, add-ons do not stack"),
    M("dibao_income_per_member", "intermediate/int_dibao_household.sql",
      "CAST(st.amount * hh.covered_members - hh.household_income AS",
      "CAST((st.amount - hh.household_income) * hh.covered_members AS",
      "dibao: standard × household_size − household_income (the household's whole income)"),
    M("dibao_excluded_member_counted", "intermediate/int_roster_decisions.sql",
      "coalesce(x.action = 'pay_a_only' and r.program = 'dibao', false) as excluded_member",
      "false as excluded_member",
      "exclusions pay_a_only (tekun, dibao): the tekun person is not a covered member of the household"),
    # --- tekun, orphans, disability -----------------------------------------------------------------
    M("tekun_care_dropped", "intermediate/int_tekun_person.sql",
      "CAST(b.amount + c.amount AS DECIMAL(18, 2))",
      "CAST(b.amount AS DECIMAL(18, 2))",
      "tekun: basic + care by care level"),
    M("orphan_placement_ignored", "intermediate/int_orphan_person.sql",
      "b.category = r.placement",
      "b.category = '社会散居'",
      "orphans: orphan/basic by placement"),
    M("orphan_age_out_month_unpaid", "intermediate/int_service_months.sql",
      "and service_month <= age_out_month",
      "and service_month < age_out_month",
      "orphans: paid through the month of the 18th birthday"),
    M("orphan_aged_out_row_boundary", "staging/stg_orphan.sql",
      "< base.payroll_month,",
      "<= base.payroll_month,",
      "orphans: a row is quarantined only when the 18th birthday fell in an earlier month"),
    M("disability_living_by_grade", "intermediate/int_disability_person.sql",
      "when 'disability_living' then '*' else r.disability_grade end",
      "when 'disability_living' then r.disability_grade else r.disability_grade end",
      "disability: living subsidy at any grade, nursing subsidy by grade, each its own line"),
    # --- standards version resolution -------------------------------------------------------------
    M("standard_shortest_prefix", "intermediate/int_standard_resolved.sql",
      "order by length(s.region_code) desc,",
      "order by length(s.region_code) asc,",
      "standards: the longest matching region prefix wins"),
    M("standard_first_payroll_ignored", "intermediate/int_standard_resolved.sql",
      "\n and s.first_payroll <= getvariable('payroll_month')",
      "",
      "standards: a version applies from its first_payroll on (earlier payrolls keep the old amount)"),
    M("standard_effective_to_ignored", "intermediate/int_standard_resolved.sql",
      "\n and s.effective_to >= n.service_month",
      "",
      "standards: a version applies to service months up to effective_to"),
    M("standard_effective_from_ignored", "intermediate/int_standard_resolved.sql",
      "\n and s.effective_from <= n.service_month",
      "",
      "standards: a version applies to service months from effective_from (late enrolment, arrears)"),
    M("standard_earliest_version", "intermediate/int_standard_resolved.sql",
      "             s.effective_from desc\n) = 1",
      "             s.effective_from asc\n) = 1",
      "standards: among the versions that apply, the latest effective_from"),
    # --- price linkage ----------------------------------------------------------------------------
    M("price_cpi_threshold_strict", "intermediate/int_price_subsidy.sql",
      "cpi_yoy >= cpi_threshold",
      "cpi_yoy > cpi_threshold",
      "price linkage: triggers when cpi_yoy ≥ cpi_threshold"),
    M("price_food_threshold_strict", "intermediate/int_price_subsidy.sql",
      "food_yoy >= food_threshold",
      "food_yoy > food_threshold",
      "price linkage: triggers when food_yoy ≥ food_threshold"),
    M("price_blank_threshold_triggers", "intermediate/int_price_subsidy.sql",
      "food_threshold is not null and food_yoy >= food_threshold",
      "(food_threshold is null or food_yoy >= food_threshold)",
      "price linkage: a blank threshold never triggers"),
    M("price_index_lag_ignored", "intermediate/int_price_subsidy.sql",
      "add_months(getvariable('payroll_month'), -r.index_lag)",
      "add_months(getvariable('payroll_month'), 0)",
      "price linkage: payroll month M uses the index of month M − index_lag"),
    M("price_national_over_provincial", "intermediate/int_price_subsidy.sql",
      "order by c.area = getvariable('province_code') desc",
      "order by c.area = getvariable('province_code') asc",
      "price linkage: the provincial CPI series where it exists, the national 00 otherwise"),
    M("price_food_basis_reads_cpi", "intermediate/int_price_subsidy.sql",
      "when 'food' then food_yoy",
      "when 'food' then cpi_yoy",
      "price linkage: basis food pays at food_yoy"),
    M("price_triggered_takes_larger_index", "intermediate/int_price_subsidy.sql",
      "greatest(case when cpi_triggers then cpi_yoy end,\n"
      "                                           case when food_triggers then food_yoy end)",
      "greatest(cpi_yoy, food_yoy)",
      "price linkage: basis triggered pays the larger of the indices that trigger (not of both)"),
    M("price_multiplier_ignored", "intermediate/int_price_subsidy.sql",
      "s.amount * r.rate * r.multiplier * 0.01",
      "s.amount * r.rate * 0.01",
      "price linkage: × multiplier (March to June 2020 doubled)"),
    M("price_fen_truncated", "intermediate/int_price_subsidy.sql",
      "else round(exact_amount, 2) end,\n                  minimum) AS DECIMAL(18, 2))                       as due",
      "else trunc(exact_amount * 100) / 100 end,\n                  minimum) AS DECIMAL(18, 2))"
      "                       as due",
      "price linkage: rounded to the fen half up"),
    M("price_yuan_truncated", "intermediate/int_price_subsidy.sql",
      "CAST(greatest(case rounding when 'yuan' then round(exact_amount, 0) else round(exact_amount, 2) end,\n"
      "                  minimum) AS DECIMAL(18, 2))                       as due",
      "CAST(greatest(case rounding when 'yuan' then trunc(exact_amount) else round(exact_amount, 2) end,\n"
      "                  minimum) AS DECIMAL(18, 2))                       as due",
      "price linkage: rounding yuan is to the yuan half up"),
    M("price_minimum_ignored", "intermediate/int_price_subsidy.sql",
      "\n                  minimum) AS DECIMAL(18, 2))                       as due",
      "\n                  0) AS DECIMAL(18, 2))                       as due",
      "price linkage: at least minimum"),
    M("price_once_per_program", "intermediate/int_price_subsidy.sql",
      "partition by id_number order by program_rank",
      "partition by id_number, line_program order by program_rank",
      "price linkage: once per person per month however many programs cover them"),
    M("price_every_program_covered", "intermediate/int_price_subsidy.sql",
      "where list_contains(r.programs, u.program)",
      "where true",
      "price linkage: only the programs the rule lists are covered"),
    M("price_ineligible_household_covered", "intermediate/int_price_subsidy.sql",
      "basis = 'current' and gap > 0",
      "basis = 'current' and gap >= 0",
      "price linkage: only members of an eligible dibao household (gap > 0) are covered"),
    M("price_dead_member_kept", "intermediate/int_price_subsidy.sql",
      "\n      and not u.no_price_subsidy",
      "",
      "deaths: a dibao household's deceased member gets no price subsidy"),
    M("price_age_out_boundary", "intermediate/int_price_subsidy.sql",
      "coalesce(u.age_out_month, '9999-12') >= getvariable('payroll_month')",
      "coalesce(u.age_out_month, '9999-12') > getvariable('payroll_month')",
      "price linkage: an orphan is covered through the month of the 18th birthday"),
    # --- arrears ----------------------------------------------------------------------------------
    M("arrears_not_net_of_paid", "intermediate/int_payment_lines.sql",
      "else d.due - coalesce(p.paid_amount, 0)",
      "else d.due",
      "arrears: raise back pay = due − already paid"),
    M("arrears_raise_not_retroactive", "intermediate/int_service_months.sql",
      "\n   or (p.was_paid and e.service_month in (select service_month from retroactive)\n"
      "       and e.service_month <= e.head_alive_month)",
      "",
      "arrears: a raise first paid later pays the difference for the months already paid"),
    M("raise_tops_up_a_receivable_month", "intermediate/int_service_months.sql",
      "\n       and e.service_month <= e.head_alive_month)", ")",
      "arrears: no raise tops up a dibao month paid after the head's death (a receivable)"),
    M("withdrawn_death_month_from_current_roster", "intermediate/int_service_months.sql",
      "        when w.unit_key is not null then 'history'\n", "",
      "a month withheld for a death since withdrawn is paid from its own month's roster"),
    M("dead_person_no_unit", "intermediate/int_units.sql",
      "  and (r.not_paid_reason is null or r.not_paid_reason = 'deceased_listed')", "  and r.not_paid_reason is null",
      "deaths: months before the month of death are owed to a person the registry reports dead"),
    M("arrears_late_enrolment_dropped", "intermediate/int_service_months.sql",
      "\n   or (p.unit_key is null and d.unit_key is null)",
      "",
      "arrears: late enrolment is paid the months of entitlement not yet decided"),
    M("arrears_held_not_released", "intermediate/int_service_months.sql",
      "\n   or (not coalesce(p.was_paid, false) and coalesce(p.was_held, false))",
      "",
      "arrears: a held month is owed and paid once released"),
    M("arrears_second_payable_line", "intermediate/int_payment_lines.sql",
      "case when ea.id_number is not null then 'arrears_top_up_review' end",
      "null",
      "arrears: one payable arrears line per person, program and service month (a top-up is held)"),
    # --- fund split -------------------------------------------------------------------------------
    M("fund_shortest_prefix", "intermediate/int_fund_split.sql",
      "length(f.region_code) desc",
      "length(f.region_code) asc",
      "fund shares: the longest region prefix wins"),
    M("fund_spare_fen_to_first_part", "intermediate/int_fund_split.sql",
      "order by remainder desc, k)",
      "order by k)",
      "fund shares: the fen left over go to the parts with the largest remainders"),
    M("fund_carrying_program_wins", "intermediate/int_fund_split.sql",
      "order by (f.program = 'price_subsidy') desc",
      "order by (f.program = 'price_subsidy') asc",
      "fund shares: a matching price_subsidy row wins over the carrying program's"),
    M("fund_price_subsidy_needs_own_row", "intermediate/int_fund_split.sql",
      "(f.program = l.fund_program or (l.line_type = 'price_subsidy' and f.program = 'price_subsidy'))",
      "(case when l.line_type = 'price_subsidy' then f.program = 'price_subsidy' else f.program = l.fund_program end)",
      "fund shares: without a price_subsidy row, the carrying program's shares fund the price subsidy"),
    # --- exclusions -------------------------------------------------------------------------------
    M("exclusion_pay_a_only_not_enforced", "intermediate/int_roster_decisions.sql",
      "        when x.action = 'pay_a_only' and r.program <> 'dibao' then 'exclusive_programs'\n",
      "",
      "exclusions pay_a_only: b is not paid (a pair without dibao: tekun and the nursing subsidy)"),
    M("exclusion_flag_excludes_member", "intermediate/int_roster_decisions.sql",
      "coalesce(x.action = 'pay_a_only' and r.program = 'dibao', false)",
      "coalesce(x.action is not null and r.program = 'dibao', false)",
      "exclusions flag: both paid (an orphan who is a dibao member stays a covered member)"),
    # --- deaths -----------------------------------------------------------------------------------
    M("death_month_unpaid", "intermediate/int_deaths.sql",
      "or g.death_month < getvariable('payroll_month')",
      "or g.death_month <= getvariable('payroll_month')",
      "deaths: the month of death is paid, later months are not"),
    M("death_forgotten_next_month", "intermediate/int_deaths.sql",
      "or g.death_month < getvariable('payroll_month')",
      "or (g.death_month < getvariable('payroll_month') and g.reported_month = getvariable('payroll_month'))",
      "deaths: a death reported once stops payment in every later month"),
    M("death_listed_still_paid", "intermediate/int_roster_decisions.sql",
      "        when dead.source_row is not null and r.program <> 'dibao' then 'deceased_listed'\n",
      "",
      "deaths: a person is not paid for service months after the month of death"),
    M("death_head_household_not_held", "intermediate/int_roster_decisions.sql",
      "        when r.program = 'dibao' and hd.household_id is not null then 'household_head_deceased'\n",
      "",
      "deaths: a dibao household whose head has died is held for review"),
    M("death_member_holds_household", "intermediate/int_roster_decisions.sql",
      "where program = 'dibao' and relation = '户主' and death_date_valid",
      "where program = 'dibao' and death_date_valid",
      "deaths: a household whose other member has died is paid (and flagged), not held"),
    M("receivable_includes_death_month", "intermediate/int_receivables.sql",
      "l.service_month > d.death_month",
      "l.service_month >= d.death_month",
      "deaths: what was paid after the month of death is a receivable (the death month was owed)"),
    # --- integrity decisions and their effect on payment ------------------------------------------
    M("closed_account_paid", "intermediate/int_payment_lines.sql",
      "case when ca.payee_account is not null then 'account_closed' end,",
      "null,",
      "closed accounts: no payment to an account a bank said is closed until the roster brings another"),
    M("holder_mismatch_not_held", "intermediate/int_roster_decisions.sql",
      "            then 'account_holder_mismatch'",
      "            then null",
      "integrity: an account in someone else's name is held for review"),
    M("orphan_holder_is_child", "intermediate/int_roster_decisions.sql",
      "when r.program = 'orphan' then r.guardian_name",
      "when r.program = 'orphan' then r.name",
      "integrity: an orphan's account is the guardian's"),
    M("clearance_ignored", "intermediate/int_roster_decisions.sql",
      "case when clearance_id is null then hold_reason end      as hold_reason",
      "hold_reason                                               as hold_reason",
      "integrity: a recorded clearance releases the hold"),
    M("cross_county_duplicate_paid", "intermediate/int_roster_final.sql",
      "case when x.duplicate_across_counties then 'duplicate' else r.disposition end as disposition",
      "r.disposition as disposition",
      "integrity: a person listed by two counties is paid once (one survivor)"),
    M("living_subsidy_outside_dibao_paid", "intermediate/int_roster_decisions.sql",
      "        when l.source_row is not null then 'living_subsidy_not_in_dibao'\n",
      "",
      "integrity: the disability living subsidy is not paid to a person outside dibao"),
]


def by_name() -> dict[str, Mutation]:
    return {m.name: m for m in MUTATIONS}


def apply(mutation: Mutation, root: Path) -> Path:
    """Replace the old text in root/sql/<file>; it must occur exactly once."""
    path = root / "sql" / mutation.file
    text = path.read_text(encoding="utf-8")
    n = text.count(mutation.old)
    if n != 1:
        raise SystemExit(f"stale mutation {mutation.name}: its old text occurs {n} times in sql/{mutation.file} "
                         "(it must occur exactly once; update tools/mutation.py)")
    path.write_text(text.replace(mutation.old, mutation.new), encoding="utf-8")
    return path


def parses(sql: str) -> str | None:
    """None if DuckDB's parser accepts the SQL, else its message."""
    import duckdb

    try:
        duckdb.extract_statements(sql)
    except duckdb.Error as e:  # ParserException
        return str(e).splitlines()[0]
    return None


def default_tests() -> list[str]:
    return FAST_TESTS + [t for t in OPTIONAL_FAST_TESTS if (ROOT / t).exists()]


def run_one(mutation: Mutation | None, tests: list[str], timeout: float) -> tuple[str, float, str]:
    """Run the tests on a copy of the tree with the mutation applied (None: unmutated)."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"doudi-mut-{mutation.name if mutation else 'baseline'}-") as tmp:
        copy = Path(tmp) / "doudi"
        shutil.copytree(ROOT, copy, ignore=IGNORE)
        if mutation is not None:
            path = apply(mutation, copy)
            problem = parses(path.read_text(encoding="utf-8"))
            if problem:
                return "broken", time.monotonic() - start, problem
        env = dict(os.environ, PYTHONPATH=str(copy))
        env.pop("PYTEST_ADDOPTS", None)
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
        try:
            proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout", time.monotonic() - start, f"no result after {timeout:.0f} s"
        out = proc.stdout + proc.stderr
        seconds = time.monotonic() - start
        if proc.returncode == 0:
            return "survived", seconds, ""
        if proc.returncode != 1:  # 2 interrupted, 3 internal error, 4 usage, 5 no tests
            return "error", seconds, _last_line(out)
        if any(marker in out for marker in BROKEN_MARKERS):
            return "broken", seconds, next(line.strip() for line in out.splitlines()
                                           if any(m in line for m in BROKEN_MARKERS))[:160]
        return "killed", seconds, _first_failure(out)


def _last_line(out: str) -> str:
    lines = [line for line in out.splitlines() if line.strip()]
    return lines[-1][:160] if lines else ""


def _first_failure(out: str) -> str:
    for line in out.splitlines():
        if line.startswith("FAILED") or line.startswith("ERROR"):
            return line[:160]
    return _last_line(out)


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT))
    from pipelines.settings import keep_new_files_owner_only

    keep_new_files_owner_only()  # the mutated trees' test runs write warehouses of (synthetic) people
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", metavar="NAME", help="run this mutation only (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the mutations and the rule each one breaks")
    ap.add_argument("--tests", action="append", metavar="PATH", help="test files or node ids instead of the fast set")
    ap.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=None,
                    help="first run the tests on the unmutated tree (default: yes for the whole list, no with --only)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per mutation (default 1800)")
    args = ap.parse_args(argv)

    names = by_name()
    if len(names) != len(MUTATIONS):
        raise SystemExit("two mutations share a name")
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:38} sql/{m.file:42} {m.rule}")
        print(f"{len(MUTATIONS)} mutations")
        return 0
    unknown = [n for n in args.only or [] if n not in names]
    if unknown:
        raise SystemExit(f"no such mutation: {', '.join(unknown)} (see --list)")
    chosen = [names[n] for n in args.only] if args.only else MUTATIONS
    for m in chosen:  # every mutation applies before any test runs: a stale one fails at once
        text = (ROOT / "sql" / m.file).read_text(encoding="utf-8")
        if text.count(m.old) != 1:
            raise SystemExit(f"stale mutation {m.name}: its old text occurs {text.count(m.old)} times in "
                             f"sql/{m.file} (it must occur exactly once; update tools/mutation.py)")
    tests = args.tests or default_tests()
    print(f"{len(chosen)} mutation(s) against: {' '.join(tests)}", flush=True)

    if args.baseline if args.baseline is not None else not args.only:
        # a test that fails without any mutation would make every mutation look killed
        status, seconds, detail = run_one(None, tests, args.timeout)
        print(f"  baseline {seconds:7.1f} s  {'passed' if status == 'survived' else status + ': ' + detail}",
              flush=True)
        if status != "survived":
            print("the tests fail on the unmutated tree: fix them first", file=sys.stderr)
            return 1

    results = []
    for m in chosen:
        status, seconds, detail = run_one(m, tests, args.timeout)
        results.append((m, status, seconds, detail))
        print(f"  {status:8} {seconds:7.1f} s  {m.name}  {detail}", flush=True)

    print()
    print(f"{'mutation':38} {'result':8} {'seconds':>8}  rule")
    for m, status, seconds, _ in results:
        print(f"{m.name:38} {status:8} {seconds:8.1f}  {m.rule}")
    counts = {s: sum(1 for r in results if r[1] == s) for s in ("killed", "survived", "broken", "error", "timeout")}
    print("\n" + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    bad = [r for r in results if r[1] != "killed"]
    for m, status, _, detail in bad:
        print(f"{status.upper()}: {m.name} (sql/{m.file}): {m.rule}" + (f" [{detail}]" if detail else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
