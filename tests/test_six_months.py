"""Six generated months, run as a bureau would: reruns, releases, a bank return with failures, a
corrected roster for a month already released (a supplementary run), reissues. After every step the
books must hold: nobody payable twice (a payment the bank returned as failed does not count as
paid), and every delivered row of every file judged exactly once."""

from __future__ import annotations

import csv
import io

from pipelines.cli import main as doudi
from pipelines.io import sha256_file
from pipelines.vocabulary import COMMON_COLUMNS
from tests.helpers import make_id, query, write_csv

MONTHS = [f"2020-{m:02d}" for m in range(1, 7)]


def assert_books(wh):
    # a one_off line (temporary assistance, in the generated months) is one case: its approval joins the key
    twice = query(wh, "SELECT id_number, program, service_month, line_type, approval_no, count(*) FROM payment_ledger "
                      "WHERE status = 'payable' AND payment_state IS DISTINCT FROM 'failed' GROUP BY ALL "
                      "HAVING count(*) > 1")
    assert twice == []
    unbalanced = query(wh, "SELECT f.payroll_month, f.source_file, f.rows, count(d.source_row) FROM source_file f "
                           "LEFT JOIN row_disposition d USING (payroll_month, source_file) "
                           "GROUP BY ALL HAVING f.rows <> count(d.source_row)")
    assert unbalanced == []
    assert query(wh, "SELECT count(*) FROM row_disposition WHERE disposition NOT IN "
                     "('accepted', 'quarantined', 'duplicate')") == [(0,)]
    # every payable line is carried by a payout record of its month
    assert query(wh, "SELECT count(*) FROM payment_ledger l ANTI JOIN payout_record r USING (payroll_month, payment_ref) "
                     "WHERE l.status = 'payable'") == [(0,)]


def _corrected_tekun_file(inbox, month):
    """A county's tekun roster for `month`, corrected: its last person removed, a missing person added."""
    folder = inbox / month / "rosters" / "tekun"
    for path in sorted(folder.glob("*.csv")):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            continue
        rows = list(csv.reader(io.StringIO(text)))
        header = rows[0]
        id_col = next((i for i, h in enumerate(header) if h in ("id_number", *COMMON_COLUMNS["id_number"])), None)
        if id_col is None or len(rows) < 4 or "_" not in path.stem:
            continue
        added = list(rows[1])
        added[id_col] = make_id(added[id_col][:6], "19380303", 77, male=added[id_col][16] in "13579")
        name_col = next(i for i, h in enumerate(header) if h in ("name", "姓名"))
        holder_col = next((i for i, h in enumerate(header) if h in ("account_holder", "账户名", "户名")), None)
        added[name_col] = "补录某"
        if holder_col is not None and added[holder_col]:
            added[holder_col] = "补录某"
        account_col = next((i for i, h in enumerate(header) if h in ("bank_account", "银行账号", "账号", "社保卡号")), None)
        if account_col is not None and added[account_col]:
            added[account_col] = "6222777766665555"
        write_csv(path.with_name(path.stem + "_v9.csv"), header, rows[1:-1] + [added])
        return added[id_col], rows[-1][id_col]
    raise AssertionError("no UTF-8 tekun CSV to correct")


def test_six_months_with_reruns_a_release_a_bank_return_and_a_correction(tmp_path):
    from pipelines.generate import generate

    inbox, out, wh = tmp_path / "inbox", tmp_path / "out", tmp_path / "warehouse.duckdb"
    generate(inbox, "2020-01..2020-06", persons=300, seed=13)
    common = ["--inbox", str(inbox), "--out", str(out), "--warehouse", str(wh)]

    def run(month, *extra):
        assert doudi(["run", "--month", month, *common, *extra]) == 0
        assert_books(wh)

    def files(month):
        return {p.name: sha256_file(p) for p in (out / month / "payouts").glob(f"{month}_*")}

    run("2020-01")
    first = files("2020-01")
    run("2020-01")  # a rerun before release: the same bytes
    assert files("2020-01") == first
    assert doudi(["release", "--month", "2020-01", "--out", str(out), "--warehouse", str(wh), "--by", "财政局"]) == 0

    # the bank returns three January payments as failed
    refs = [r[0] for r in query(wh, "SELECT payment_ref FROM payout_record WHERE payroll_month = '2020-01' "
                                    "ORDER BY payment_ref LIMIT 3")]
    write_csv(inbox / "2020-02" / "bank_returns" / "return.csv", ["payment_ref", "status", "reason"],
              [[r, "失败", "账户冻结"] for r in refs])
    assert doudi(["returns", "--month", "2020-02", *common]) == 0
    assert_books(wh)
    failed_lines = query(wh, "SELECT line_id FROM payment_ledger WHERE payment_state = 'failed'")
    assert failed_lines

    run("2020-02")
    # every failed line is owed again by exactly one reissue line (payable or waiting for an account)
    reissued = query(wh, "SELECT unnest(reissue_of) AS line_id, count(*) FROM payment_ledger "
                         "WHERE payroll_month = '2020-02' AND line_type = 'reissue' GROUP BY 1")
    assert {r[0] for r in reissued} == {r[0] for r in failed_lines} and {r[1] for r in reissued} == {1}
    assert doudi(["release", "--month", "2020-02", "--out", str(out), "--warehouse", str(wh), "--by", "财政局"]) == 0

    # January is corrected by a county after its release: only the added person goes out, in S1
    added_id, removed_id = _corrected_tekun_file(inbox, "2020-01")
    released_january = files("2020-01")
    run("2020-01", "--supplementary")
    assert {k: v for k, v in files("2020-01").items() if k in released_january} == released_january
    supplement = query(wh, "SELECT DISTINCT id_number FROM payment_ledger WHERE payroll_month = '2020-01' "
                           "AND batch_id LIKE 'S%'")
    assert supplement == [(added_id,)]
    assert query(wh, "SELECT count(*) FROM finding WHERE payroll_month = '2020-01' "
                     "AND finding_type = 'overpaid_after_release' AND id_number = ?", [removed_id])[0][0] >= 1

    for month in MONTHS[2:]:
        run(month)
    fourth = files("2020-04")
    run("2020-04")  # rerunning a past, unreleased month reproduces it
    assert files("2020-04") == fourth
    # and a released month refuses a plain rerun
    assert doudi(["run", "--month", "2020-02", *common]) == 1
    assert_books(wh)
