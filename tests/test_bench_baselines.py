"""The benchmark's baselines (bench/pandas_pipeline.py, bench/pandas_baseline.py and the Polars peer,
bench/polars_pipeline.py) must keep computing the month doudi computes: the harness refuses a timing
whose totals differ, so a rule changed in doudi and not in a baseline would otherwise cost the
benchmark its ratio."""

from __future__ import annotations

import csv
import sys

import pytest

from tests.conftest import PROJECT

sys.path.insert(0, str(PROJECT / "bench"))
import pandas_baseline  # noqa: E402
import pandas_pipeline  # noqa: E402
import polars_pipeline  # noqa: E402
import run as bench_run  # noqa: E402

REFERENCE = PROJECT / "data" / "reference"


def test_pandas_pipeline_gives_doudis_totals_from_the_inbox(four_months):
    ledger = four_months["out"] / "2020-01" / "_work" / "compute" / "ledger.parquet"
    result = pandas_pipeline.run(four_months["inbox"], REFERENCE, "2020-01", ledger)
    assert result["totals_match"], result["differences"]
    assert result["lines"] > 500


def test_polars_pipeline_gives_doudis_totals_from_the_inbox(four_months):
    ledger = four_months["out"] / "2020-01" / "_work" / "compute" / "ledger.parquet"
    result = polars_pipeline.run(four_months["inbox"], REFERENCE, "2020-01", ledger)
    assert result["totals_match"], result["differences"]
    # the same lines as the pandas pipeline, not just the same sums
    assert result["lines"] == pandas_pipeline.run(four_months["inbox"], REFERENCE, "2020-01", ledger)["lines"]


def test_pandas_engine_gives_doudis_totals_from_the_integrity_roster(four_months):
    work = four_months["out"] / "2020-01" / "_work"
    result = pandas_baseline.run(work / "integrity" / "roster.parquet", REFERENCE, "2020-01",
                                 work / "compute" / "ledger.parquet")
    assert result["totals_match"], result["differences"]


@pytest.mark.parametrize("pipeline", [pandas_pipeline, polars_pipeline], ids=["pandas", "polars"])
def test_the_totals_check_sees_a_changed_rule(four_months, tmp_path, pipeline):
    """A baseline reading other standards than doudi did must be caught, not timed."""
    changed = tmp_path / "reference"
    changed.mkdir()
    for f in REFERENCE.iterdir():
        if f.is_file():
            (changed / f.name).write_bytes(f.read_bytes())
    with open(REFERENCE / "standards.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:  # every dibao standard one yuan higher
        if row["program"] == "dibao" and row["component"] == "standard":
            row["amount"] = f"{float(row['amount']) + 1:.2f}"
    with open(changed / "standards.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    ledger = four_months["out"] / "2020-01" / "_work" / "compute" / "ledger.parquet"
    result = pipeline.run(four_months["inbox"], changed, "2020-01", ledger)
    assert not result["totals_match"] and result["differences"]
    assert any(k.startswith("dibao/regular/") for k in result["differences"])


@pytest.mark.unit
def test_the_table_says_totals_differ_for_polars_as_for_pandas():
    """A baseline whose totals differ shows no seconds and no ratio, whichever it is."""
    run = {"rows": 1000, "target_rows": 1000, "doudi_seconds": 10.0, "doudi_rows_per_second": 100,
           "doudi_peak_rss_mb": 500, "floor_seconds": 1.0, "doudi_over_floor": 10.0,
           "stages_seconds": {"ingest": 1.0, "validate": 2.0, "integrity": 1.0, "compute": 2.0, "payout": 4.0},
           "doudi_same_stages_seconds": 6.0,
           "pandas_seconds": 3.0, "pandas_totals_match": True, "pandas_peak_rss_mb": 300, "pandas_over_doudi": 0.3,
           "pandas_over_doudi_same_stages": 0.5,
           "polars_seconds": None, "polars_totals_match": False, "polars_peak_rss_mb": 200, "polars_over_doudi": None,
           "polars_over_doudi_same_stages": None, "polars_over_pandas": None,
           "pandas_engine_seconds": 1.0, "pandas_engine_peak_rss_mb": 100}
    _header, row, _note, same = bench_run.table([run])
    assert row.count("totals differ") == 1 and " 3.0 " in row
    assert "totals differ" in row and "polars totals differ (xNone" in same and "pandas 3.0 (x0.5" in same
    swapped = dict(run, pandas_seconds=None, pandas_totals_match=False, pandas_over_doudi=None,
                   pandas_over_doudi_same_stages=None, polars_seconds=1.5, polars_totals_match=True,
                   polars_over_doudi=0.15, polars_over_doudi_same_stages=0.25)
    _h, row, _n, same = bench_run.table([swapped])
    assert row.count("totals differ") == 1 and "pandas totals differ" in same and "polars 1.5 (x0.25" in same


def test_polars_and_pandas_agree_on_months_with_deaths(four_months):
    """A first month has no death registry (deaths are reported the month after), so the check
    against doudi never reaches the death rules; later months do, and the two pipelines must agree
    there too (doudi's own later ledgers carry history that neither pipeline computes)."""
    inbox = four_months["inbox"]
    months = [m for m in ("2020-02", "2020-03", "2020-04") if (inbox / m / "registry" / "deaths.csv").exists()]
    assert months
    for month in months:
        pandas_totals = pandas_baseline.totals(pandas_pipeline.run_month(inbox, REFERENCE, month))
        assert polars_pipeline.totals(polars_pipeline.run_month(inbox, REFERENCE, month)) == pandas_totals, month
