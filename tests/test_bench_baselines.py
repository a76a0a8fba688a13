"""The benchmark's pandas baselines (bench/pandas_pipeline.py, bench/pandas_baseline.py) must keep
computing the month doudi computes: the harness refuses a timing whose totals differ, so a rule
changed in doudi and not in the baseline would otherwise cost the benchmark its ratio."""

from __future__ import annotations

import csv
import sys

from tests.conftest import PROJECT

sys.path.insert(0, str(PROJECT / "bench"))
import pandas_baseline  # noqa: E402
import pandas_pipeline  # noqa: E402

REFERENCE = PROJECT / "data" / "reference"


def test_pandas_pipeline_gives_doudis_totals_from_the_inbox(four_months):
    ledger = four_months["out"] / "2020-01" / "_work" / "compute" / "ledger.parquet"
    result = pandas_pipeline.run(four_months["inbox"], REFERENCE, "2020-01", ledger)
    assert result["totals_match"], result["differences"]
    assert result["lines"] > 500


def test_pandas_engine_gives_doudis_totals_from_the_integrity_roster(four_months):
    work = four_months["out"] / "2020-01" / "_work"
    result = pandas_baseline.run(work / "integrity" / "roster.parquet", REFERENCE, "2020-01",
                                 work / "compute" / "ledger.parquet")
    assert result["totals_match"], result["differences"]


def test_the_totals_check_sees_a_changed_rule(four_months, tmp_path):
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
    result = pandas_pipeline.run(four_months["inbox"], changed, "2020-01", ledger)
    assert not result["totals_match"] and result["differences"]
