"""The generator's planted defects against what the pipeline found (ground_truth.csv), scored by
pipelines/truth.py (bench/ prints the same figures at scale).

Validation defects must be quarantined with the right reason; exact duplicates must be `duplicate`
rows with the right rule; file-level defects must be recognised; integrity defects must become
findings. Recall per defect type is printed (pytest -s) and must be 1.0 on this sample for every
exact type (the issue asks ≥ 0.99). Near-duplicates (id_typo, id_swap) are found by record linkage:
pairs, with recall ≥ 0.9 at precision ≥ 0.95."""

from __future__ import annotations

import json

from pipelines.truth import FINDING, ROW_REASON, exact_recall, near_duplicate_scores, read_truth
from tests.helpers import query


def test_planted_defects_are_found(four_months):
    recall = exact_recall(read_truth(four_months["inbox"]), four_months["warehouse"])
    print("\nrecall by planted defect type:", {d: f"{r:.3f} ({n})" for d, (r, n) in recall.items()})
    assert set(recall) >= set(ROW_REASON) - {"orphan_aged_out"}
    assert set(recall) >= set(FINDING) | {"dup_in_file", "duplicate_delivery", "corrected_file"}
    assert all(r == 1.0 for r, _ in recall.values()), recall


def test_near_duplicates_are_linked(four_months):
    """Each planted pair (a mistyped or swapped ID and the correct one, listed by two counties) must
    come back as a near_duplicate finding naming both IDs; found pairs not planted count against
    precision."""
    wh = four_months["warehouse"]
    scores = near_duplicate_scores(read_truth(four_months["inbox"]), wh)
    print(f"\nnear-duplicates: {scores}")
    assert scores["planted"] >= 10
    assert scores["recall"] >= 0.9 and scores["precision"] >= 0.95, scores
    # the finding says why: weight and the fields that agreed, and the other ID masked
    detail = query(wh, "SELECT detail FROM finding WHERE finding_type = 'near_duplicate' LIMIT 1")[0][0]
    assert "匹配权重" in detail and "姓名相同" in detail and "********" in detail


def test_planted_watch_cases_are_on_the_watch_list(four_months):
    """The generator plants, from the second month, a case of every watch rule (an income halved, a
    household that lost two members, registered people on no program, an income just under the
    standard, a household whose income rose above it, an orphan soon of age, tekun and dibao people
    at an age threshold) and of every visit rule (dispersed tekun and orphan, an elderly dibao member
    living alone who is severely disabled, so on the nursing subsidy and classified 重残): each is on
    that month's watch or visit list in the analyst database, under its rule."""
    from pipelines.truth import VISIT, WATCH, watch_recall
    from pipelines.vocabulary import VISIT_RULES, WATCH_RULES

    assert set(WATCH.values()) == set(WATCH_RULES) and set(VISIT.values()) == set(VISIT_RULES)
    truth = read_truth(four_months["inbox"])
    recall = watch_recall(truth, four_months["tmp"] / "warehouse_analyst.duckdb", four_months["tmp"] / "pseudonym.key")
    print("\nwatch- and visit-list recall by planted rule:", recall)
    assert set(recall) == set(WATCH) | set(VISIT)
    assert all(n >= 3 for _r, n in recall.values()), recall  # one a month at least, 2020-02..04
    assert all(r == 1.0 for r, _ in recall.values()), recall
def test_the_generated_temporary_cases_reach_the_payout_files(four_months):
    """Every month of the sample delivers temporary-assistance cases (rosters/temporary/): each payable
    one_off line is carried by a payout record of its month, whose payment_ref stands in that month's
    CSV payout file, and the line's amount is the case's amount as delivered (a planted 一事一议,
    migrant or plain case); each held one is owed with a finding, not sent."""
    wh, out = four_months["warehouse"], four_months["out"]
    for month in four_months["results"]:
        assert list((four_months["inbox"] / month / "rosters" / "temporary").iterdir()), month
        lines = query(wh, "SELECT approval_no, status, amount, payment_ref, hold_reason FROM payment_ledger "
                          "WHERE payroll_month = ? AND program = 'temporary' AND line_type = 'one_off'", [month])
        payable = [r for r in lines if r[1] == "payable"]
        assert payable and all(r[3] for r in payable), (month, lines)
        # the CSV payout files the manifest names (a bank's own template may be another encoding)
        manifest = json.loads((out / month / "payouts" / "manifest.json").read_text(encoding="utf-8"))
        sent = "".join((out / month / "payouts" / f["name"]).read_text(encoding="utf-8-sig")
                       for f in manifest["files"] if f["format"] == "csv")
        assert all(r[3] in sent for r in payable), month
        carried = query(wh, "SELECT count(*) FROM payout_record WHERE payroll_month = ? AND payment_ref IN "
                            "(SELECT payment_ref FROM payment_ledger WHERE payroll_month = ? AND line_type = 'one_off' "
                            "AND status = 'payable') AND programs LIKE '%temporary%'", [month, month])[0][0]
        assert carried == len({r[3] for r in payable}), month
        held = [r for r in lines if r[1] == "held"]
        assert all(r[3] is None and r[4] for r in held), held
