"""The monthly run, end to end, through the same stage functions as the CLI."""

from __future__ import annotations

import hashlib

from pipelines.monthly import run_month
from tests.conftest import MONTHS
from tests.facts import assert_arrears_and_price, assert_month_facts, assert_never_paid_twice
from tests.helpers import context, query


def test_every_month_balances(four_months):
    for m in MONTHS:
        assert_month_facts(four_months["out"], four_months["warehouse"], m)


def test_april_pays_raise_arrears_and_march_doubles_the_price_subsidy(four_months):
    assert_arrears_and_price(four_months["warehouse"])


def test_nobody_is_payable_twice_across_months(four_months):
    assert_never_paid_twice(four_months["warehouse"])


def test_every_line_explains_itself(four_months):
    missing = query(four_months["warehouse"], """
        SELECT count(*) FROM payment_ledger WHERE rule_versions IS NULL OR len(rule_versions) = 0
            OR inputs IS NULL OR formula IS NULL""")[0][0]
    assert missing == 0
    unbalanced = query(four_months["warehouse"], """
        SELECT count(*) FROM payment_ledger
        WHERE fund_central + fund_provincial + fund_city + fund_county <> amount""")[0][0]
    assert unbalanced == 0


def test_money_columns_are_decimal(four_months):
    types = dict(query(four_months["warehouse"], """
        SELECT column_name, data_type FROM duckdb_columns()
        WHERE table_name = 'payment_ledger' AND column_name IN ('amount', 'fund_central', 'previously_paid')"""))
    assert set(types.values()) == {"DECIMAL(18,2)"}


def test_rerun_of_a_month_gives_byte_identical_files(four_months):
    """Rerunning April with the same inputs rewrites the same bytes and the same ledger."""
    tmp, out = four_months["tmp"], four_months["out"]
    payouts = out / "2020-04" / "payouts"

    def digest():
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(payouts.iterdir())}

    before = digest()
    ledger_before = query(four_months["warehouse"], "SELECT * FROM payment_ledger WHERE payroll_month = '2020-04' "
                                                    "ORDER BY line_id")
    run_month(context(tmp, "2020-04", inbox=four_months["inbox"]))
    assert digest() == before
    ledger_after = query(four_months["warehouse"], "SELECT * FROM payment_ledger WHERE payroll_month = '2020-04' "
                                                   "ORDER BY line_id")
    assert ledger_after == ledger_before
