"""Bank returns are append-only facts (issue 17, case 3): a loaded return is never deleted by a
later load, withdrawing one is a recorded command; returns count only for released batches and
only when payment_ref, amount and account agree with what was sent; the same bytes under another
name are not loaded twice; a ref the bank answered for never comes to name another payee.

Small hand-made inboxes (two or three tekun persons, tests/test_engine_golden.py) through the real
stages and the `doudi` command."""

from __future__ import annotations

import shutil
from decimal import Decimal as D

from pipelines.cli import main as doudi
from pipelines.vocabulary import FINDING_TYPES
from tests.helpers import query, roster_path, run, write_csv
from tests.test_engine_golden import TEKUN, C, acct, common, person

RETURN_HEADER = ["payment_ref", "status", "reason"]
# accounts sort by birth date (acct: 6222 + birth date + 0001), and the payout records of a bank
# are numbered in account order: A is record 1 of ICBC, B record 2
A, B = person(61, "19400101"), person(62, "19410101")


def _tekun(inbox, month, people):
    write_csv(roster_path(inbox, month, "tekun", f"{C}_tekun_{month.replace('-', '')}.csv"), TEKUN,
              [common(p) + ["分散供养", "全自理", ""] for p in people])


def _doudi(tmp_path, *args, out=None):
    paths = {"--inbox": tmp_path / "inbox", "--out": out or tmp_path / "out",
             "--warehouse": tmp_path / "warehouse.duckdb"}
    if args[0] == "release":  # release reads no inbox
        del paths["--inbox"]
    return doudi([*map(str, args), *(str(x) for item in paths.items() for x in item)])


def _returns(tmp_path, month="2020-02"):
    return _doudi(tmp_path, "returns", "--month", month)


def _release(tmp_path, month="2020-01"):
    assert _doudi(tmp_path, "release", "--month", month, "--by", "财政局") == 0


def _ref(wh, p, month="2020-01"):
    return query(wh, "SELECT DISTINCT payment_ref FROM payment_ledger WHERE payroll_month = ? AND id_number = ? "
                     "AND status = 'payable'", [month, p["id"]])[0][0]


def _state(wh, p, month="2020-01"):
    return query(wh, "SELECT DISTINCT payment_state FROM payment_ledger WHERE payroll_month = ? AND id_number = ? "
                     "AND status = 'payable'", [month, p["id"]])


def _findings(wh, finding_type):
    return query(wh, "SELECT payroll_month, payment_ref, detail FROM reconciliation_finding WHERE finding_type = ? "
                     "ORDER BY ALL", [finding_type])


def _january_released(tmp_path, people=(A, B)):
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    _tekun(inbox, "2020-01", people)
    run(tmp_path, "2020-01")
    _release(tmp_path)
    return inbox, wh


def test_an_archived_return_folder_keeps_its_loaded_returns_and_the_failure_is_reissued(tmp_path):
    """Today the second load, with the folder archived, deleted the return and put A's payment back
    to `sent`: February would never reissue it."""
    inbox, wh = _january_released(tmp_path)
    folder = inbox / "2020-02" / "bank_returns"
    write_csv(folder / "ICBC_202001_回盘.csv", RETURN_HEADER, [[_ref(wh, A), "失败", "户名不符"]])
    assert _returns(tmp_path) == 0
    assert _state(wh, A) == [("failed",)]

    shutil.rmtree(folder)  # the operator archives the folder, then loads again
    assert _returns(tmp_path) == 0
    assert _state(wh, A) == [("failed",)] and _state(wh, B) == [("sent",)]
    files = query(wh, "SELECT source_file, status, loaded_by IS NOT NULL, loaded_at IS NOT NULL FROM bank_return_file")
    assert files == [("bank_returns/ICBC_202001_回盘.csv", "loaded", True, True)]
    assert {r[1] for r in _findings(wh, "returned_not_reissued")} == {_ref(wh, A)}

    # February: A's account is corrected; January's failed transfer goes out again, once
    _tekun(inbox, "2020-02", [B])
    moved = common(A)
    moved[6] = "6222999988887777"
    write_csv(roster_path(inbox, "2020-02", "tekun", f"{C}_tekun_202002_A.csv"), TEKUN,
              [moved + ["分散供养", "全自理", ""]])
    run(tmp_path, "2020-02")
    jan = query(wh, "SELECT sum(amount) FROM payment_ledger WHERE payroll_month = '2020-01' AND id_number = ? "
                    "AND status = 'payable'", [A["id"]])[0][0]
    reissue = query(wh, "SELECT status, sum(amount), any_value(payee_account) FROM payment_ledger "
                        "WHERE payroll_month = '2020-02' AND line_type = 'reissue' AND id_number = ? GROUP BY 1",
                    [A["id"]])
    assert reissue == [("payable", jan, "6222999988887777")]


def test_withdrawing_a_return_file_is_recorded_and_recomputes_the_states(tmp_path):
    inbox, wh = _january_released(tmp_path)
    folder = inbox / "2020-02" / "bank_returns"
    write_csv(folder / "wrong.csv", RETURN_HEADER, [[_ref(wh, A), "失败", "账户已销户"]])
    write_csv(folder / "right.csv", RETURN_HEADER, [[_ref(wh, B), "成功", ""]])
    assert _returns(tmp_path) == 0
    assert _state(wh, A) == [("failed",)] and _state(wh, B) == [("paid",)]

    assert _doudi(tmp_path, "withdraw-return", "--month", "2020-02", "--file", "wrong.csv", "--by", "王科长",
                  "--reason", "银行来函撤回，2020-2-9") == 0
    assert _state(wh, A) == [("sent",)] and _state(wh, B) == [("paid",)]
    assert query(wh, "SELECT received_month, source_file, withdrawn_by, reason, withdrawn_at IS NOT NULL "
                     "FROM bank_return_withdrawal") == [("2020-02", "bank_returns/wrong.csv", "王科长",
                                                         "银行来函撤回，2020-2-9", True)]
    # the facts stay: the file and its row are still recorded, and the report says it was withdrawn
    assert query(wh, "SELECT count(*) FROM bank_return_received WHERE source_file = 'bank_returns/wrong.csv'") == [(1,)]
    withdrawn = _findings(wh, "return_file_withdrawn")
    assert len(withdrawn) == 1 and withdrawn[0][0] == "2020-01" and "王科长" in withdrawn[0][2]
    recon = (tmp_path / "out" / "2020-01" / "reports" / "reconciliation.html").read_text(encoding="utf-8")
    assert "return_file_withdrawn" in recon and "银行来函撤回" in recon
    # its closed account no longer stops February's payment
    _tekun(inbox, "2020-02", [A, B])
    run(tmp_path, "2020-02")
    assert query(wh, "SELECT DISTINCT status FROM payment_ledger WHERE payroll_month = '2020-02' AND id_number = ?",
                 [A["id"]]) == [("payable",)]

    # the file still in the folder is not loaded again; withdrawing it twice is refused in one sentence
    assert _returns(tmp_path) == 0
    assert _state(wh, A) == [("sent",)]
    assert _doudi(tmp_path, "withdraw-return", "--month", "2020-02", "--file", "wrong.csv", "--by", "王科长",
                  "--reason", "again") == 1
    assert _doudi(tmp_path, "withdraw-return", "--month", "2020-02", "--file", "nothing.csv", "--by", "王科长",
                  "--reason", "?") == 1


def test_returns_for_a_batch_never_released_change_no_state_even_after_a_rerun(tmp_path):
    """The issue's case: returns for an unreleased January were taken; January rerun without A,
    A's old ref became B's, and B carried A's 账户已销户 failure."""
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    _tekun(inbox, "2020-01", [A, B])
    run(tmp_path, "2020-01")
    ref_a = _ref(wh, A)
    assert ref_a.endswith("000001")
    write_csv(inbox / "2020-02" / "bank_returns" / "early.csv", RETURN_HEADER, [[ref_a, "失败", "账户已销户"]])
    assert _returns(tmp_path) == 0
    assert _state(wh, A) == [("sent",)]
    not_released = _findings(wh, "return_ref_not_released")
    assert [(m, r) for m, r, _ in not_released] == [("2020-01", ref_a)]

    _tekun(inbox, "2020-01", [B])  # the county withdraws A before release: B's transfer is record 1 now
    run(tmp_path, "2020-01")
    assert _ref(wh, B) == ref_a
    assert _state(wh, B) == [("sent",)]
    # and no account is taken for closed on the strength of that row
    _tekun(inbox, "2020-02", [B])
    run(tmp_path, "2020-02")
    assert query(wh, "SELECT DISTINCT status FROM payment_ledger WHERE payroll_month = '2020-02' AND id_number = ?",
                 [B["id"]]) == [("payable",)]
    assert query(wh, "SELECT count(*) FROM finding WHERE finding_type = 'account_closed'") == [(0,)]


def test_a_return_whose_amount_or_account_differs_from_what_was_sent_is_a_finding_not_a_state(tmp_path):
    inbox, wh = _january_released(tmp_path)
    ref_a, ref_b = _ref(wh, A), _ref(wh, B)
    sent_a = query(wh, "SELECT amount FROM payout_record WHERE payment_ref = ?", [ref_a])[0][0]
    sent_b = query(wh, "SELECT amount FROM payout_record WHERE payment_ref = ?", [ref_b])[0][0]
    write_csv(inbox / "2020-02" / "bank_returns" / "r.csv", RETURN_HEADER + ["amount", "payee_account"],
              [[ref_a, "失败", "账户已销户", f"{sent_a + D('0.01')}", acct(A)],
               [ref_b, "失败", "户名不符", f"{sent_b}", "6222000011112222"]])
    assert _returns(tmp_path) == 0
    assert _state(wh, A) == [("sent",)] and _state(wh, B) == [("sent",)]
    amount = _findings(wh, "return_amount_differs")
    account = _findings(wh, "return_account_differs")
    assert [(m, r) for m, r, _ in amount] == [("2020-01", ref_a)] and f"{sent_a + D('0.01')}" in amount[0][2]
    assert [(m, r) for m, r, _ in account] == [("2020-01", ref_b)]
    assert "6222000011112222" not in account[0][2]  # masked
    recon = (tmp_path / "out" / "2020-01" / "reports" / "reconciliation.html").read_text(encoding="utf-8")
    assert "return_amount_differs" in recon and "return_account_differs" in recon and "未据此改变付款状态" in recon
    # the page names the type as a bureau reads it, its code beside
    assert f"{FINDING_TYPES['return_amount_differs']}（return_amount_differs）" in recon

    # the same row with what was sent is taken (the amount written with a thousands separator)
    write_csv(inbox / "2020-02" / "bank_returns" / "s.csv", RETURN_HEADER + ["amount", "payee_account"],
              [[ref_a, "失败", "账户已销户", f"{sent_a:,.2f}", acct(A)]])
    assert _returns(tmp_path) == 0
    assert _state(wh, A) == [("failed",)] and _state(wh, B) == [("sent",)]


def test_the_same_return_content_under_another_name_is_not_loaded_twice(tmp_path, capsys):
    inbox, wh = _january_released(tmp_path)
    folder = inbox / "2020-02" / "bank_returns"
    original = write_csv(folder / "ICBC_0203.csv", RETURN_HEADER, [[_ref(wh, A), "失败", "账户冻结"]])
    assert _returns(tmp_path) == 0
    shutil.copy(original, folder / "ICBC_0203_重发.csv")  # the bank sends it again under another name
    capsys.readouterr()
    assert _returns(tmp_path) == 0
    said = capsys.readouterr().out
    assert "ICBC_0203_重发.csv has the bytes of 2020-02/bank_returns/ICBC_0203.csv" in said
    assert query(wh, "SELECT count(*) FROM bank_return_received") == [(1,)]
    assert query(wh, "SELECT count(*) FROM bank_return") == [(1,)]
    assert query(wh, "SELECT source_file, status FROM bank_return_file ORDER BY load_id") == [
        ("bank_returns/ICBC_0203.csv", "loaded"), ("bank_returns/ICBC_0203_重发.csv", "duplicate")]
    duplicate = _findings(wh, "return_file_duplicate")
    assert len(duplicate) == 1 and duplicate[0][0] == "2020-01" and "ICBC_0203.csv" in duplicate[0][2]
    # a third load records nothing more
    assert _returns(tmp_path) == 0
    assert query(wh, "SELECT count(*) FROM bank_return_file") == [(2,)]


def test_a_ref_the_bank_answered_for_never_comes_to_name_another_payee(tmp_path, capsys):
    """payout.py keeps a released month's refs while its release record (payouts/released.json) is
    there. Run into another output folder, the record is not seen: the rerun would give A's ref,
    which the bank returned as failed, to B. The month's recorded state (month_state, in the
    warehouse) refuses the rerun before any stage; behind it, publish would refuse a released ref
    that moved (check_answered_refs_unchanged). The warehouse stays as it was."""
    inbox, wh = _january_released(tmp_path)
    ref_a = _ref(wh, A)
    write_csv(inbox / "2020-02" / "bank_returns" / "r.csv", RETURN_HEADER, [[ref_a, "失败", "户名不符"]])
    assert _returns(tmp_path) == 0
    before = query(wh, "SELECT payment_ref, payee_name, payee_account, amount FROM payout_record ORDER BY ALL")

    _tekun(inbox, "2020-01", [B])
    capsys.readouterr()
    assert _doudi(tmp_path, "run", "--month", "2020-01", out=tmp_path / "elsewhere") == 1
    said = capsys.readouterr().err
    assert "2020-01 was released to the banks" in said and "--supplementary" in said, said
    assert "Traceback" not in said and acct(B) not in said
    assert query(wh, "SELECT payment_ref, payee_name, payee_account, amount FROM payout_record ORDER BY ALL") == before
    assert _state(wh, A) == [("failed",)] and _state(wh, B) == [("sent",)]


def test_a_warehouse_from_before_keeps_the_returns_it_loaded(tmp_path):
    """A warehouse written before returns were facts holds `bank_return` (replaced by each load) and
    the older `bank_return_file`: the next load moves them into the facts and matches them against
    the releases, so January's failure survives an empty folder."""
    import duckdb

    inbox, wh = _january_released(tmp_path)
    ref_a = _ref(wh, A)
    con = duckdb.connect(str(wh))
    con.execute("DROP TABLE bank_return; DROP TABLE bank_return_file; DROP TABLE bank_return_received; "
                "DROP TABLE bank_return_withdrawal")
    con.execute("CREATE TABLE bank_return (received_month VARCHAR, source_file VARCHAR, source_row BIGINT, "
                "payment_ref VARCHAR, status VARCHAR, reason VARCHAR, amount DECIMAL(18, 2), payee_account VARCHAR, "
                "raw_status VARCHAR)")
    con.execute("CREATE TABLE bank_return_file (received_month VARCHAR, source_file VARCHAR, sha256 VARCHAR, "
                "format VARCHAR, rows BIGINT, status VARCHAR, detail VARCHAR, loaded_at VARCHAR)")
    con.execute("INSERT INTO bank_return VALUES ('2020-02', 'bank_returns/old.csv', 1, ?, 'failed', '户名不符', NULL, "
                "NULL, '失败')", [ref_a])
    con.execute("INSERT INTO bank_return_file VALUES ('2020-02', 'bank_returns/old.csv', 'ab', 'csv', 1, 'loaded', "
                "NULL, '2020-02-03T00:00:00+00:00')")
    con.close()  # the ledger's payment_state is derived from the returns in effect: A's comes from old.csv

    assert _returns(tmp_path) == 0  # no folder: nothing new
    assert _state(wh, A) == [("failed",)] and _state(wh, B) == [("sent",)]
    assert query(wh, "SELECT load_id, source_file, match FROM bank_return_received") == [
        (1, "bank_returns/old.csv", "matched")]
    assert query(wh, "SELECT load_id, status FROM bank_return_file") == [(1, "loaded")]


def test_a_file_that_answers_one_payment_both_ways_is_a_finding_not_decided_by_row_order(tmp_path):
    """Attack finding 7: one return file says 失败 and then 成功 for A's transfer. Whichever row came
    last used to decide. Now A's payment stays `sent` (neither paid nor reissued) with a finding
    naming both rows; B, answered once, is paid. A later file that answers once settles it."""
    inbox, wh = _january_released(tmp_path)
    folder = inbox / "2020-02" / "bank_returns"
    ref_a, ref_b = _ref(wh, A), _ref(wh, B)
    for rows in ([[ref_a, "失败", "户名不符"], [ref_a, "成功", ""], [ref_b, "成功", ""]],
                 [[ref_a, "成功", ""], [ref_a, "失败", "户名不符"], [ref_b, "成功", ""]]):
        shutil.rmtree(folder, ignore_errors=True)
        write_csv(folder / f"ICBC_{len(list(tmp_path.glob('*')))}.csv", RETURN_HEADER, rows)
        assert _returns(tmp_path) == 0
        assert _state(wh, A) == [("sent",)] and _state(wh, B) == [("paid",)]
        found = _findings(wh, "return_contradictory")
        assert [(f[0], f[1]) for f in found] == [("2020-01", ref_a)] and "第1、2行" in found[0][2], found
    write_csv(folder / "ICBC_更正.csv", RETURN_HEADER, [[ref_a, "成功", ""]])
    assert _returns(tmp_path) == 0
    assert _state(wh, A) == [("paid",)] and _findings(wh, "return_contradictory") == []


def test_a_linked_return_file_is_refused_unread_and_nothing_is_loaded(tmp_path, capsys):
    """The inbox is read, not trusted (issue 17, case 5), the bank_returns folder too: a link to a
    return file elsewhere is not followed; the load stops in one sentence and records nothing."""
    inbox, wh = _january_released(tmp_path)
    elsewhere = write_csv(tmp_path / "elsewhere" / "ICBC.csv", RETURN_HEADER, [[_ref(wh, A), "失败", "户名不符"]])
    folder = inbox / "2020-02" / "bank_returns"
    folder.mkdir(parents=True)
    (folder / "ICBC_回盘.csv").symlink_to(elsewhere)
    capsys.readouterr()
    assert _returns(tmp_path) != 0
    err = capsys.readouterr().err
    assert "ICBC_回盘.csv is a symlink" in err and "Traceback" not in err, err
    assert _state(wh, A) == [("sent",)]
    assert query(wh, "SELECT count(*) FROM bank_return_received") == [(0,)]
