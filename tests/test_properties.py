"""Property tests (hypothesis): ID check digits and the fund split, against independent arithmetic."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn.ric import calc_check_digit

from pipelines.idnumbers import check_digits
from pipelines.sqlrun import load_macros, model_sql

pytestmark = pytest.mark.unit

bodies = st.text(alphabet="0123456789", min_size=17, max_size=17)


@given(st.lists(bodies, min_size=1, max_size=50))
@settings(max_examples=60, deadline=None)
def test_check_digit_sql_and_numpy_agree_with_stdnum(items):
    con = duckdb.connect()
    load_macros(con)
    sql = [r[0] for r in con.execute("SELECT id_expected_check(b || '0') FROM unnest(?) t(b)", [items]).fetchall()]
    expected = [calc_check_digit(b + "0") for b in items]
    assert sql == expected
    assert list(check_digits(np.array(items))) == expected


share_vectors = st.lists(st.integers(min_value=0, max_value=1_000_000), min_size=4, max_size=4).filter(
    lambda v: sum(v) > 0)


@given(st.lists(st.tuples(st.integers(min_value=1, max_value=10**9), share_vectors), min_size=1, max_size=30))
@settings(max_examples=60, deadline=None)
def test_fund_parts_add_up_to_the_line_and_stay_within_a_fen(cases):
    con = duckdb.connect()
    load_macros(con)
    con.execute("SET VARIABLE payroll_month = '2020-01'")
    con.execute("CREATE TABLE int_payment_lines (line_key VARCHAR, amount DECIMAL(18, 2), line_type VARCHAR, "
                "line_program VARCHAR, region_code VARCHAR, service_month VARCHAR, basis VARCHAR, inputs VARCHAR)")
    con.execute("CREATE TABLE hist_ledger (line_id VARCHAR, fund_central DECIMAL(18, 2), fund_provincial "
                "DECIMAL(18, 2), fund_city DECIMAL(18, 2), fund_county DECIMAL(18, 2), fund_version VARCHAR)")
    con.execute("CREATE TABLE stg_fund_shares (program VARCHAR, region_code VARCHAR, central DECIMAL(9, 6), "
                "provincial DECIMAL(9, 6), city DECIMAL(9, 6), county DECIMAL(9, 6), effective_from VARCHAR, "
                "version_id VARCHAR)")
    expected = {}
    for i, (fen, raw) in enumerate(cases):
        # shares with six decimals that sum to exactly 1: scale, then give the rounding rest to the last
        total = sum(raw)
        shares = [(Decimal(r) / total).quantize(Decimal("0.000001"), ROUND_FLOOR) for r in raw]
        shares[3] += Decimal(1) - sum(shares)
        region = f"2101{i:02d}"
        con.execute("INSERT INTO stg_fund_shares VALUES ('dibao', ?, ?, ?, ?, ?, '2019-01', ?)",
                    [region, *shares, f"v{i}"])
        amount = Decimal(fen) / 100
        con.execute("INSERT INTO int_payment_lines VALUES (?, ?, 'regular', 'dibao', ?, '2020-01', NULL, NULL)",
                    [f"l{i}", amount, region])
        expected[f"l{i}"] = (amount, shares)
    con.execute("CREATE TABLE split AS " + model_sql("intermediate/int_fund_split.sql"))
    rows = con.execute("SELECT line_key, fund_central, fund_provincial, fund_city, fund_county FROM split").fetchall()
    assert len(rows) == len(cases)
    for key, *parts in rows:
        amount, shares = expected[key]
        assert sum(parts) == amount
        for part, share in zip(parts, shares, strict=True):
            assert part >= 0
            assert abs(part - amount * share) < Decimal("0.01")
