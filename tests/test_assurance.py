"""The assurance holes of issue 16, each on a small hand-made inbox that follows the contract.

Figures (shipped reference, 和平区 210102, see tests/test_engine_golden.py): urban dibao standard
655.00 until the 2020-04 payroll (688.00 effective 2020-01, first paid 2020-04); tekun basic 852.00,
care 半护理 300.00; the price subsidy of payroll M uses the CPI of M−1.
"""

from __future__ import annotations

from decimal import Decimal as D

from tests.helpers import query, roster_path, run, write_csv
from tests.test_engine_golden import C, DIBAO, TEKUN, common, person

DEATHS = ["id_number", "name", "death_date", "source"]


def _tekun(p):
    return common(p) + ["分散供养", "半护理", ""]


def _ledger(wh, month, pid):
    return query(wh, "SELECT service_month, program, line_type, status, amount FROM payment_ledger "
                     "WHERE payroll_month = ? AND id_number = ? ORDER BY ALL", [month, pid])


def test_a_death_reported_once_stops_payment_in_every_later_month(tmp_path):
    """Case 1: January's extract reports a December death; the county keeps the person on its roster
    in February to April and the registry does not repeat itself. Nothing is paid after January's
    payroll... and January itself pays nothing for January (death month 2019-12 < 2020-01)."""
    dead, alive = person(51, "19400101"), person(52, "19410101")
    inbox = tmp_path / "inbox"
    for m in ("2020-01", "2020-02", "2020-03", "2020-04"):
        write_csv(roster_path(inbox, m, "tekun", f"{C}_tekun_{m.replace('-', '')}.csv"), TEKUN,
                  [_tekun(dead), _tekun(alive)])
    write_csv(inbox / "2020-01" / "registry" / "deaths.csv", DEATHS,
              [[dead["id"], dead["name"], "2019-12-20", "公安"]])
    for m in ("2020-01", "2020-02", "2020-03", "2020-04"):
        run(tmp_path, m)
        wh = tmp_path / "warehouse.duckdb"
        assert _ledger(wh, m, dead["id"]) == [], m
        assert [r[2] for r in _ledger(wh, m, alive["id"])].count("regular") == 1, m
        finding = query(wh, "SELECT action FROM finding WHERE payroll_month = ? AND id_number = ? "
                            "AND finding_type = 'deceased_listed'", [m, dead["id"]])
        assert finding == [("not_paid",)], m
    # what the registry reported is kept, with its month
    assert query(wh, "SELECT payroll_month, registry, id_number FROM registry_entry") == [
        ("2020-01", "deaths", dead["id"])]


def test_a_death_dated_after_its_report_is_a_finding_not_applied(tmp_path):
    p = person(53, "19400101")
    inbox = tmp_path / "inbox"
    write_csv(roster_path(inbox, "2020-02", "tekun", f"{C}_tekun_202002.csv"), TEKUN, [_tekun(p)])
    write_csv(inbox / "2020-02" / "registry" / "deaths.csv", DEATHS, [[p["id"], p["name"], "2020-05-01", "公安"]])
    run(tmp_path, "2020-02")
    wh = tmp_path / "warehouse.duckdb"
    assert [(r[2], r[4]) for r in _ledger(wh, "2020-02", p["id"]) if r[2] == "regular"] == [
        ("regular", D("1152.00"))]
    assert query(wh, "SELECT severity FROM finding WHERE finding_type = 'death_date_invalid' AND id_number = ?",
                 [p["id"]]) == [("error",)]
