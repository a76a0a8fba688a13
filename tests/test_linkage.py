"""Record linkage (pipelines/linkage.py) on a handful of persons: which pairs it compares and which it
reports, with the shipped model and threshold."""

from __future__ import annotations

from pipelines.linkage import find_near_duplicates, load_model
from pipelines.sqlrun import connect, register_reference, run_model
from tests.helpers import DEFAULT_REFERENCE, context, make_id

COUNTY, OTHER_COUNTY = "210102", "210103"


def _link(tmp_path, persons: list[tuple[str, str, str]]):
    """The pairs reported, and the connection (its linkage_persons table: one record per ID)."""
    ctx = context(tmp_path, "2020-01")
    con = connect(ctx)
    register_reference(con, DEFAULT_REFERENCE)
    run_model(con, "staging/stg_policy_parameters.sql")
    con.execute("CREATE TABLE int_roster_final (id_number VARCHAR, name VARCHAR, region_code VARCHAR, "
                "program VARCHAR, source_file VARCHAR, source_row BIGINT, disposition VARCHAR)")
    con.executemany("INSERT INTO int_roster_final VALUES (?, ?, ?, 'tekun', 'f.csv', ?, 'accepted')",
                    [(i, n, r, row) for row, (i, n, r) in enumerate(persons, start=2)])
    find_near_duplicates(con, DEFAULT_REFERENCE)
    pairs = {frozenset(p) for p in con.execute("SELECT id_number_l, id_number_r FROM int_near_duplicate_pairs").fetchall()}
    return pairs, con


def test_a_mistyped_digit_is_linked_wherever_it_falls(tmp_path):
    person = make_id(COUNTY, "19500312", 21)
    typo_in_sequence = make_id(COUNTY, "19500312", 26)       # same birth date: found by name and birth date
    typo_in_birth_date = make_id(COUNTY, "19500812", 21)     # same county and sequence: found by those
    pairs, _ = _link(tmp_path, [(person, "王秀兰", COUNTY), (typo_in_sequence, "王秀兰", OTHER_COUNTY),
                              (typo_in_birth_date, "王秀兰", COUNTY)])
    assert frozenset({person, typo_in_sequence}) in pairs
    assert frozenset({person, typo_in_birth_date}) in pairs


def test_namesakes_of_one_county_are_not_all_compared(tmp_path):
    # a common name is shared by thousands in a county: comparing each with each is quadratic (50
    # million pairs at 25M rows). Same name and county are compared only with the same sequence code.
    namesakes = [(make_id(COUNTY, f"19{40 + i}0{1 + i % 9}15", 100 + i), "张伟", COUNTY) for i in range(40)]
    pairs, con = _link(tmp_path, namesakes)
    assert pairs == set()
    rules = " OR ".join(f"({r['blocking_rule']})" for r in load_model(DEFAULT_REFERENCE)["blocking_rules_to_generate_predictions"])
    compared = con.execute(f"SELECT count(*) FROM linkage_persons l JOIN linkage_persons r "
                           f"ON l.id_number < r.id_number AND ({rules})").fetchone()[0]
    assert compared == 0  # was 40 * 39 / 2 = 780 with name and county alone
