"""A broken policy table stops the run before any payment; books that do not balance fail loudly
and leave the warehouse as it was."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from pipelines.compute import compute_payments
from pipelines.ingest import ingest_program
from pipelines.integrity import check_integrity
from pipelines.payout import write_payouts
from pipelines.reference import check_reference
from pipelines.settings import ROSTER_PROGRAMS, RunError
from pipelines.validate import validate_program
from pipelines.warehouse import publish_month
from tests.helpers import context, copy_reference, query


def _edit(ref, name, old, new):
    path = ref / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize("name,old,new,message", [
    ("standards.csv", "dibao,floor,21,*,*,50,2019-01,,", "dibao,floor,21,*,*,50,2019-01,,\ndibao,floor,21,*,*,60,2019-01,,",
     "two versions of one key with the same effective_from"),
    ("fund_shares.csv", "dibao,21,0.50,0.20,0.15,0.15", "dibao,21,0.50,0.20,0.15,0.10", "fund shares do not sum to 1"),
    ("price_linkage.csv", "1,cpi,1,0,fen", "1,median,1,0,fen", "basis must be"),
])
def test_broken_reference_stops_the_run(tmp_path, name, old, new, message):
    """A row of the whole province (region 21) broken: no county is left to pay, the run stops."""
    ref = copy_reference(tmp_path)
    _edit(ref, name, old, new)
    with pytest.raises(RunError, match=message):
        check_reference(context(tmp_path, "2020-01", reference=ref))


@pytest.mark.parametrize("old,new,city,message", [
    ("tekun,basic,2101,城市,*,852,2018-07,,", "tekun,basic,2101,城市,*,800,2018-07,,", "2101", "tekun basic below 1.3"),
    ("dibao,standard,2109,农村,*,416,2019-01,,", "dibao,standard,2109,农村,*,300,2019-01,,", "2109",
     "rural dibao standard at or below the poverty line"),
])
def test_a_city_or_county_broken_in_the_reference_is_held_the_rest_paid(tmp_path, old, new, city, message):
    """不断 (issue 20): a rule broken only by one city's rows holds that city's counties (paid forward
    by the engine, tests/test_carry_forward.py) and lets the rest of the province be paid."""
    from pipelines.reference import held_counties

    ref = copy_reference(tmp_path)
    _edit(ref, "standards.csv", old, new)
    ctx = context(tmp_path, "2020-01", reference=ref)
    assert check_reference(ctx)["held_counties"]
    held = held_counties(ctx)
    assert held and all(c.startswith(city) for c in held) and all(message in " ".join(w) for w in held.values())


def test_unbalanced_books_fail_and_leave_the_warehouse_unchanged(tmp_path, four_months):
    """A row lost between integrity and publish: the publish transaction refuses to commit."""
    from pipelines.warehouse_months import copy_warehouse

    wh = tmp_path / "warehouse.duckdb"
    copy_warehouse(four_months["warehouse"], wh)
    ctx = context(tmp_path, "2020-02", inbox=four_months["inbox"])
    check_reference(ctx)
    for program in ROSTER_PROGRAMS:  # the sample delivers temporary assistance too
        ingest_program(ctx, program)
    for program in ROSTER_PROGRAMS:  # the sample delivers temporary assistance too
        validate_program(ctx, program)
    check_integrity(ctx)
    compute_payments(ctx)
    write_payouts(ctx)
    before = query(wh, "SELECT count(*), sum(amount) FROM payment_ledger")
    roster = ctx.work_dir / "integrity" / "roster.parquet"
    table = pq.read_table(roster)
    pq.write_table(table.slice(1), roster)  # one row vanishes
    with pytest.raises(RunError, match="books do not balance"):
        publish_month(ctx)
    assert query(wh, "SELECT count(*), sum(amount) FROM payment_ledger") == before


def test_the_roster_is_written_in_order_whatever_its_parts(tmp_path, four_months, monkeypatch):
    """Integrity writes the month's roster a few county files at a time, each part sorted on its own.
    Parts of any size give the same rows in the same order (program, source file, source row), the
    order later stages and auditors read them in."""
    import pipelines.integrity as integrity

    ctx = context(tmp_path, "2020-01", inbox=four_months["inbox"])
    for program in ROSTER_PROGRAMS:  # the sample delivers temporary assistance too
        ingest_program(ctx, program)
    for program in ROSTER_PROGRAMS:  # the sample delivers temporary assistance too
        validate_program(ctx, program)
    monkeypatch.setattr(integrity, "ROSTER_PART_ROWS", 40)
    check_integrity(ctx)
    ours = pq.read_table(ctx.work_dir / "integrity" / "roster.parquet")
    theirs = pq.read_table(four_months["out"] / "2020-01" / "_work" / "integrity" / "roster.parquet")
    assert ours.num_rows > 40 * 10
    programs = ours["program"].to_pylist()
    keys = list(zip(programs, ours["source_file"].to_pylist(), ours["source_row"].to_pylist(), strict=True))
    assert keys == sorted(keys)
    assert set(programs) == set(ROSTER_PROGRAMS)  # the four monthly rosters and temporary assistance
    assert ours.equals(theirs)
