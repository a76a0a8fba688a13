"""Months as counties type them (contract section 1), read by sql/macros.sql's norm_month and its
mirror in bench/pandas_pipeline.py: a date's day must exist (2020-02-30 is no month: the row is
quarantined MONTH_INVALID rather than paid from a month nobody wrote). A death registry's date is
read for its month whatever the day (death_month_of): a typing error must not pay the dead."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.pandas_pipeline import norm_month as pandas_norm_month
from pipelines.sqlrun import connect

pytestmark = pytest.mark.unit

# (as typed, norm_month, death_month_of)
SPELLINGS = [
    ("2020-03", "2020-03", "2020-03"), ("2020-3", "2020-03", "2020-03"), ("2020/3/1", "2020-03", "2020-03"),
    ("202003", "2020-03", "2020-03"), ("20200301", "2020-03", "2020-03"), ("2020.3", "2020-03", "2020-03"),
    ("2020年3月", "2020-03", "2020-03"), ("2020年3月9日", "2020-03", "2020-03"), (" ２０２０－０３ ", "2020-03", "2020-03"),
    ("2020-03-31T00:00:00", "2020-03", "2020-03"), ("2020-02-29", "2020-02", "2020-02"),
    # a day that does not exist
    ("2020-02-30", None, "2020-02"), ("20200230", None, "2020-02"), ("2020年2月30日", None, "2020-02"),
    ("2019-02-29", None, "2019-02"), ("2020-04-31", None, "2020-04"), ("2020-03-00", None, "2020-03"),
    # no month at all
    ("2020-13", None, None), ("2020年13月", None, None), ("2020", None, None), ("", None, None), (None, None, None),
]


def test_a_month_is_read_only_from_a_date_that_exists():
    con = connect()
    made = [con.execute("SELECT norm_month(?), death_month_of(?)", [typed, typed]).fetchone()
            for typed, _, _ in SPELLINGS]
    assert made == [(month, death) for _, month, death in SPELLINGS]


def test_the_pandas_peer_reads_months_alike():
    typed = pd.Series([t for t, _, _ in SPELLINGS], dtype=object)
    assert list(pandas_norm_month(typed)) == [m for _, m, _ in SPELLINGS]
    assert list(pandas_norm_month(typed, check_day=False)) == [d for _, _, d in SPELLINGS]


def test_the_polars_peer_reads_months_alike():
    import polars as pl

    from bench.polars_pipeline import month_of, norm_code

    frame = pl.DataFrame({"typed": [t for t, _, _ in SPELLINGS]}, schema={"typed": pl.String})
    made = frame.select(month=month_of(norm_code(pl.col("typed"))),
                        death=month_of(norm_code(pl.col("typed")), check_day=False))
    assert made["month"].to_list() == [m for _, m, _ in SPELLINGS]
    assert made["death"].to_list() == [d for _, _, d in SPELLINGS]
