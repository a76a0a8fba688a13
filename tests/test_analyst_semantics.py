"""What the analyst database means (issue 21): the README's five questions, run exactly as written
on a generated four-month history and checked against the ledger to the fen; the price subsidy as
a program of its own; back pay with its cause; exits that the facts and the dimensions count alike;
a label for every code; and names that no warehouse table carries."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from decimal import Decimal as D
from itertools import pairwise

import duckdb
import pytest

from pipelines.vocabulary import BACK_PAY_CAUSE_ZH, FINDING_TYPES, PROGRAM_NAMES_ZH, SEVERITY_ZH
from tests.conftest import PROJECT
from tests.helpers import query


def five_questions() -> list[str]:
    """The fenced sql blocks under the README's '### Five questions', exactly as written."""
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Five questions"):]
    section = section[:section.index("\n#", 5)]
    return re.findall(r"```sql\n(.*?)```", section, re.S)


def analyst(four_months):
    return four_months["warehouse"].with_name("warehouse_analyst.duckdb")


def ledger_parts(wh) -> list[tuple]:
    """(payroll_month, benefit program, line_type, back-pay cause, amount) of every payable ledger
    line, worked out here from the ledger alone: a price-subsidy line (and a supplementary top-up of
    one) is the price subsidy's; a reissue is split by what its original lines were."""
    lines = {r[0]: r for r in query(wh, """
        SELECT line_id, payroll_month, program, line_type, arrears_cause, status, amount, reissue_of,
               json_exists(inputs, '$.index_month') FROM payment_ledger""")}

    def benefit(line) -> str:
        return "price_subsidy" if line[3] == "price_subsidy" or (
            line[3] == "arrears" and line[4] == "supplementary_correction" and line[8]) else line[2]

    def origins(line_id):
        line = lines[line_id]
        if line[3] != "reissue":
            yield line
        else:
            for parent in line[7]:
                yield from origins(parent)

    parts = []
    for line in lines.values():
        if line[5] != "payable":
            continue
        cause = {"arrears": line[4], "reissue": "reissue"}.get(line[3])
        if line[3] == "price_subsidy" and line[4] == "held_released":
            cause = "held_released"
        if line[3] != "reissue":
            parts.append((line[1], benefit(line), line[3], cause, line[6]))
            continue
        shares = defaultdict(D)
        for origin in origins(line[0]):
            shares[benefit(origin)] += origin[6]
        assert sum(shares.values()) == line[6]
        parts += [(line[1], program, "reissue", cause, amount) for program, amount in shares.items()]
    return parts


@pytest.mark.unit
def test_the_readme_has_the_five_questions():
    assert len(five_questions()) == 5


def test_spend_by_program_includes_the_price_subsidy(four_months):
    spend = defaultdict(D)
    for month, program, _, _, amount in ledger_parts(four_months["warehouse"]):
        spend[(month, PROGRAM_NAMES_ZH[program])] += amount
    got = {(m, p): s for m, p, s in query(analyst(four_months), five_questions()[0])}
    assert got == dict(spend)
    assert any(p == "价格临时补贴" for _, p in got), "the sample has a price subsidy every month"
    # and the months add up to the ledger
    for month, total in query(four_months["warehouse"], "SELECT payroll_month, sum(amount) FROM payment_ledger "
                                                        "WHERE status = 'payable' GROUP BY 1"):
        assert sum(s for (m, _), s in got.items() if m == month) == total


def test_spend_against_the_previous_month(four_months):
    spend = defaultdict(D)
    for month, program, _, _, amount in ledger_parts(four_months["warehouse"]):
        spend[(month, program)] += amount
    rows = query(analyst(four_months), five_questions()[4])
    assert len(rows) == len(spend)
    zh_to_code = {zh: code for code, zh in PROGRAM_NAMES_ZH.items()}
    for month, month_zh, program_zh, now, before, change in rows:
        y, m = map(int, month.split("-"))
        previous = f"{y - 1}-12" if m == 1 else f"{y}-{m - 1:02d}"
        program = zh_to_code[program_zh]
        assert month_zh == f"{y}年{m}月"
        assert now == spend[(month, program)]
        assert before == spend.get((previous, program))
        assert change == (None if before is None else now - before)
    assert any(r[4] is not None for r in rows)


def test_back_pay_by_cause(four_months):
    expected = defaultdict(lambda: [0, D(0)])
    for month, _, _, cause, amount in ledger_parts(four_months["warehouse"]):
        if cause:
            expected[(month, cause)][0] += 1
            expected[(month, cause)][1] += amount
    got = {(m, c): [n, a] for m, c, label, n, a in query(analyst(four_months), five_questions()[2])}
    assert got == dict(expected)
    assert {c for _, c in got} >= {"raise_back_pay", "late_enrolment", "held_released"}
    labels = {c: label for _, c, label, _, _ in query(analyst(four_months), five_questions()[2])}
    assert all(labels[c] == BACK_PAY_CAUSE_ZH[c] for c in labels)
    # the cause is there only where the line is back pay
    assert query(analyst(four_months), "SELECT count(*) FROM a_fact_payment "
                                       "WHERE is_back_pay <> (back_pay_cause IS NOT NULL)") == [(0,)]


def test_findings_by_type_in_chinese(four_months):
    expected = Counter((m, FINDING_TYPES[t], SEVERITY_ZH[s]) for m, t, s in query(
        four_months["warehouse"], "SELECT payroll_month, finding_type, severity FROM finding"))
    got = {(m, t, s): n for m, t, s, n in query(analyst(four_months), five_questions()[3])}
    assert got == dict(expected) and got


def test_exits_agree_between_the_facts_and_the_dimensions(four_months):
    """An exit is a household present (a_fact_enrolment.is_present) in one payroll month and not in
    the next: the README's question, the exit fact, the enrolment rows and a_dim_household agree."""
    db = analyst(four_months)
    present = defaultdict(set)
    for month, household in query(db, "SELECT DISTINCT payroll_month, household_key FROM a_fact_enrolment "
                                      "WHERE program = 'dibao' AND is_present AND household_key IS NOT NULL"):
        present[month].add(household)
    months = sorted(present)
    from_rows = Counter()
    for before, after in pairwise(months):
        from_rows[after] = len(present[before] - present[after])
    by_reason = Counter()
    for month, _, _, households in query(db, five_questions()[1]):
        by_reason[month] += households
    assert +by_reason == +from_rows and sum(from_rows.values()) > 0
    assert query(db, "SELECT sum(exits) FROM a_dim_household") == [(sum(from_rows.values()),)]
    # who has left now: present once, not in the last month, and the dimension says so
    ever = set().union(*present.values())
    gone = ever - present[months[-1]]
    assert {r[0] for r in query(db, "SELECT household_key FROM a_dim_household WHERE has_left")} == gone
    assert {r[0] for r in query(db, "SELECT household_key FROM a_dim_household WHERE is_current")} == \
        present[months[-1]]
    assert query(db, "SELECT count(*) FROM a_dim_household WHERE has_left AND (exit_month IS NULL "
                     "OR exit_reason IS NULL)") == [(0,)]
    # persons: the same rule, per program
    people = defaultdict(set)
    for month, program, person in query(db, "SELECT DISTINCT payroll_month, program, person_key FROM a_fact_enrolment "
                                            "WHERE is_present AND person_key IS NOT NULL"):
        people[month].add((program, person))
    expected = sum(len(people[b] - people[a]) for b, a in pairwise(months))
    assert query(db, "SELECT count(*) FROM a_fact_person_exit") == [(expected,)]
    assert query(db, "SELECT sum(exits) FROM a_dim_person WHERE is_latest_version") == [(expected,)]


# (table, column, label domain) of every coded column of the analyst facts and dimensions
CODED = [
    ("a_fact_payment", "benefit_program", "program"), ("a_fact_payment", "ledger_program", "program"),
    ("a_fact_payment", "line_type", "line_type"), ("a_fact_payment", "back_pay_cause", "back_pay_cause"),
    ("a_fact_payment", "status", "status"), ("a_fact_payment", "hold_reason", "hold_reason"),
    ("a_fact_payment", "payment_state", "payment_state"),
    ("a_fact_enrolment", "program", "program"), ("a_fact_enrolment", "disposition", "disposition"),
    ("a_fact_enrolment", "unnest(reason_codes)", "reason_code"),
    ("a_fact_enrolment", "not_paid_reason", "not_paid_reason"), ("a_fact_enrolment", "hold_reason", "hold_reason"),
    ("a_fact_finding", "finding_type", "finding_type"), ("a_fact_finding", "severity", "severity"),
    ("a_fact_finding", "action", "action"), ("a_fact_finding", "program", "program"),
    ("a_fact_household_exit", "exit_reason", "exit_reason"), ("a_fact_household_exit", "exit_detail", "reason_code"),
    ("a_fact_person_exit", "exit_reason", "exit_reason"), ("a_fact_person_exit", "exit_detail", "reason_code"),
    ("a_fact_person_exit", "program", "program"),
    ("a_dim_household", "exit_reason", "exit_reason"), ("a_dim_person", "exit_reason", "exit_reason"),
    ("a_dim_program", "program", "program"),
    ("a_fact_watch", "rule", "watch_rule"), ("a_fact_visit", "rule", "visit_rule"),
    ("a_fact_watch", "program", "program"), ("a_fact_visit", "program", "program"),
]
WRITTEN_IN_CHINESE = ("subsidy_type", "event_type")  # values are the roster's Chinese words


def test_every_code_in_the_analyst_tables_has_a_label(four_months):
    con = duckdb.connect(str(analyst(four_months)), read_only=True)
    try:
        missing = {}
        for table, column, domain in CODED:
            unlabelled = con.execute(f"""
                SELECT DISTINCT v FROM (SELECT {column} AS v FROM {table}) WHERE v IS NOT NULL
                AND v NOT IN (SELECT code FROM a_label WHERE domain = ?)""", [domain]).fetchall()
            if unlabelled:
                missing[(table, column)] = unlabelled
        assert missing == {}
        # every coded-looking column of a fact (*_reason, *_type, *_cause, status, program …) is in CODED
        coded = {(t, c.removeprefix("unnest(").removesuffix(")")) for t, c, _ in CODED}
        for table, column in con.execute("""
                SELECT table_name, column_name FROM duckdb_columns() WHERE table_name LIKE 'a_fact_%'
                AND regexp_matches(column_name, '(_reason|_type|_cause|_state|^status|^disposition|^action'
                                                '|^severity|program|_codes)$')""").fetchall():
            assert (table, column) in coded or column in WRITTEN_IN_CHINESE, (table, column)
        labels = con.execute("SELECT count(*), count(DISTINCT (domain, code)) FROM a_label").fetchall()
        assert labels[0][0] == labels[0][1] > 300
    finally:
        con.close()


def test_no_analyst_table_is_named_like_a_warehouse_table(four_months):
    warehouse = {r[0] for r in query(four_months["warehouse"], "SELECT table_name FROM duckdb_tables()")}
    mine = {r[0] for r in query(analyst(four_months), "SELECT table_name FROM duckdb_tables()")}
    assert mine and all(t.startswith("a_") for t in mine)
    assert not any(t.startswith("a_") for t in warehouse)


def test_the_calendar(four_months):
    rows = query(analyst(four_months), "SELECT month, month_start, previous_month, next_month, month_zh, quarter "
                                       "FROM a_dim_month ORDER BY month_start")
    assert [r[0] for r in rows] == ["2020-01", "2020-02", "2020-03", "2020-04"]
    assert rows[0][1].isoformat() == "2020-01-01" and rows[0][2:5] == ("2019-12", "2020-02", "2020年1月")
    assert rows[3][5] == 2


@pytest.mark.unit
def test_a_reissue_of_a_program_payment_and_its_price_subsidy_is_split_to_the_fen():
    """A household head's dibao (500.00) and price subsidy (13.33) of January fail at the bank; the
    reissue (513.33) fails too and is reissued again: the last reissue is two rows, 500.00 dibao and
    13.33 price subsidy, whose fund parts add up to the line's, part by part, to the fen."""
    from pipelines.analyst import PREPARED

    con = duckdb.connect()
    con.execute("ATTACH ':memory:' AS wh")
    con.execute("""CREATE TABLE wh.payment_ledger (line_id VARCHAR, payroll_month VARCHAR, service_month VARCHAR,
        program VARCHAR, line_type VARCHAR, arrears_cause VARCHAR, status VARCHAR, hold_reason VARCHAR,
        payment_state VARCHAR, id_number VARCHAR, household_id VARCHAR, region_code VARCHAR, urban_rural VARCHAR,
        amount DECIMAL(18, 2), fund_central DECIMAL(18, 2), fund_provincial DECIMAL(18, 2),
        fund_city DECIMAL(18, 2), fund_county DECIMAL(18, 2), fund_version VARCHAR, payee_account VARCHAR,
        payee_bank_code VARCHAR, batch_id VARCHAR, rule_versions VARCHAR[], approval_no VARCHAR,
        event_type VARCHAR, event_date DATE, inputs VARCHAR, reissue_of VARCHAR[])""")
    rows = [("r", "2020-01", "regular", "regular", "500.00", "350.00", "75.00", "37.50", "37.50", None),
            ("p", "2020-01", "price_subsidy", "price_subsidy", "13.33", "9.33", "2.00", "1.00", "1.00", None),
            ("x1", "2020-02", "reissue", None, "513.33", "359.33", "77.00", "38.50", "38.50", ["p", "r"]),
            ("x2", "2020-03", "reissue", None, "513.33", "359.33", "77.00", "38.50", "38.50", ["x1"])]
    for line_id, payroll, line_type, cause, amount, central, provincial, city, county, parents in rows:
        con.execute("INSERT INTO wh.payment_ledger (line_id, payroll_month, service_month, program, line_type, "
                    "arrears_cause, status, amount, fund_central, fund_provincial, fund_city, fund_county, inputs, "
                    "reissue_of) VALUES (?, ?, '2020-01', 'dibao', ?, ?, 'payable', ?, ?, ?, ?, ?, ?, ?)",
                    [line_id, payroll, line_type, cause, amount, central, provincial, city, county,
                     '{"index_month": "2019-12"}' if line_type == "price_subsidy" else "{}", parents])
    parts = con.execute(f"""SELECT payroll_month, benefit_program, is_split, is_back_pay, back_pay_cause, amount,
                                   fund_central, fund_provincial, fund_city, fund_county
                            FROM ({PREPARED['payment_parts']}) ORDER BY ALL""").fetchall()
    x2 = [p for p in parts if p[0] == "2020-03"]
    assert [(p[1], p[2], p[5]) for p in x2] == [("dibao", True, D("500.00")), ("price_subsidy", True, D("13.33"))]
    assert all(p[3] and p[4] == "reissue" for p in x2)
    for column in range(5, 10):
        assert sum(p[column] for p in x2) == [D("513.33"), D("359.33"), D("77.00"), D("38.50"), D("38.50")][column - 5]
    assert all(p[6] + p[7] + p[8] + p[9] == p[5] for p in parts)
    assert [(p[1], p[5]) for p in parts if p[0] == "2020-01"] == [("dibao", D("500.00")),
                                                                  ("price_subsidy", D("13.33"))]
