"""The inbox is read, not trusted (issue 17, case 5): links and special files are refused unread,
hidden spreadsheet rows and sheets are quarantined, a file of another month is rejected whole, one
person with two accounts in one file is held, and names with characters nobody sees never reach a
bank file. Each on a small hand-made inbox through the real stages.

Amounts (shipped reference data, 和平区/沈河区, Shenyang): tekun 分散供养 全自理 urban = basic 852.00
+ care 100.00 = 952.00 a month in the 2020-01 and 2020-02 payrolls."""

from __future__ import annotations

import io
import os
import zipfile
from decimal import Decimal as D

import pytest
import xlsxwriter

from pipelines.settings import RunError
from tests.helpers import context, query, roster_path, run, write_csv
from tests.test_engine_golden import ORPHAN, TEKUN, C, acct, common, person

TEKUN_MONTHLY = D("852.00") + D("100.00")


def tekun_row(p, account=None, name=None, holder=None):
    row = common(p) + ["分散供养", "全自理", ""]
    if account:
        row[6] = account
    if name is not None:
        row[1] = name
    if holder is not None:
        row[7] = holder
    return row


def regular_lines(wh, month):
    return query(wh, "SELECT id_number, service_month, line_type, amount, status, hold_reason FROM payment_ledger "
                     "WHERE payroll_month = ? AND line_type IN ('regular', 'arrears') ORDER BY id_number, service_month",
                 [month])


def dispositions(wh, month, source_file):
    return query(wh, "SELECT source_row, id_number, disposition, reason_codes FROM row_disposition "
                     "WHERE payroll_month = ? AND source_file = ? ORDER BY source_row", [month, source_file])


def payout_text(tmp_path, month) -> str:
    """Every payout file of the month as text (an XLSX's parts unzipped), for what a bank would read."""
    parts = []
    for path in sorted((tmp_path / "out" / month / "payouts").rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                parts += [zf.read(n).decode("utf-8", "replace") for n in zf.namelist()]
        else:
            parts.append(data.decode("utf-8", "replace"))
    assert parts, "the month wrote no payout file"
    return "\n".join(parts)


P1, P2, P3 = person(101, "19400101"), person(102, "19410101"), person(103, "19420101", False)
P4, P5, P6 = person(104, "19430101"), person(105, "19440101", False), person(106, "19450101")
ORPHAN_CHILD, GUARDIAN = person(107, "20120101"), person(108, "19800101")


def test_links_and_special_files_in_the_inbox_are_refused_unread_with_a_finding(tmp_path):
    """A roster linked in from elsewhere, a link to /etc/passwd, a FIFO and a linked program folder:
    none is followed or read, each is a rejected file with a finding naming it, nobody in them is
    paid, and the month goes on (the real roster beside them is paid). The FIFO would hang a reader."""
    inbox, wh, month = tmp_path / "inbox", tmp_path / "warehouse.duckdb", "2020-01"
    write_csv(roster_path(inbox, month, "tekun", f"{C}_tekun_202001.csv"), TEKUN, [tekun_row(P1)])
    elsewhere = tmp_path / "elsewhere"
    outside_roster = write_csv(elsewhere / "roster.csv", TEKUN, [tekun_row(P2)])
    write_csv(elsewhere / "orphan" / f"{C}_orphan_202001.csv", ORPHAN,
              [[C, ORPHAN_CHILD["name"], ORPHAN_CHILD["id"], ORPHAN_CHILD["sex"], "城市", "中国工商银行", acct(GUARDIAN),
                GUARDIAN["name"], "2019-06", "", "", "社会散居", GUARDIAN["name"], GUARDIAN["id"]]])
    tekun_dir = roster_path(inbox, month, "tekun", "x").parent
    os.symlink(outside_roster, tekun_dir / "210103_tekun_202001.csv")
    os.symlink("/etc/passwd", tekun_dir / "passwd.csv")
    os.mkfifo(tekun_dir / "pipe.csv")
    os.symlink(elsewhere / "orphan", inbox / month / "rosters" / "orphan")
    write_csv(tekun_dir / "旧版" / f"{C}_tekun_202001.csv", TEKUN, [tekun_row(P2)])  # a sub-folder

    run(tmp_path, month)

    assert [r[0] for r in regular_lines(wh, month)] == [P1["id"]]
    files = query(wh, "SELECT source_file, status, reason_code, sha256, rows FROM source_file "
                      "WHERE payroll_month = ? AND status = 'rejected' ORDER BY source_file", [month])
    assert files == [
        ("rosters/orphan", "rejected", "FILE_NOT_REGULAR", "", 0),
        ("rosters/tekun/210103_tekun_202001.csv", "rejected", "FILE_NOT_REGULAR", "", 0),
        ("rosters/tekun/passwd.csv", "rejected", "FILE_NOT_REGULAR", "", 0),
        ("rosters/tekun/pipe.csv", "rejected", "FILE_NOT_REGULAR", "", 0),
        ("rosters/tekun/旧版", "rejected", "FILE_NOT_REGULAR", "", 0),
    ]
    found = query(wh, "SELECT source_file, action, detail FROM finding WHERE payroll_month = ? "
                      "AND finding_type = 'file_rejected' ORDER BY source_file", [month])
    assert [(f[0], f[1]) for f in found] == [(f[0], "file_rejected") for f in files]
    assert "符号链接" in found[0][2] and "rosters/orphan" in found[0][2]
    assert "符号链接" in found[2][2] and "passwd.csv" in found[2][2]
    assert "特殊文件" in found[3][2] and "pipe.csv" in found[3][2]
    assert "是文件夹" in found[4][2] and "旧版" in found[4][2]
    # nothing of what the links point at was read into the month
    assert not query(wh, "SELECT 1 FROM row_disposition WHERE id_number IN (?, ?)", [P2["id"], ORPHAN_CHILD["id"]])


def test_a_linked_registry_extract_stops_the_month_with_one_sentence(tmp_path):
    """A linked deaths.csv may be any file, and going on without it could pay the dead: the run stops."""
    inbox, month = tmp_path / "inbox", "2020-01"
    write_csv(roster_path(inbox, month, "tekun", f"{C}_tekun_202001.csv"), TEKUN, [tekun_row(P1)])
    real = write_csv(tmp_path / "elsewhere" / "deaths.csv", ["id_number", "name", "death_date", "source"],
                     [[P1["id"], P1["name"], "2019-11-02", "公安"]])
    (inbox / month / "registry").mkdir()
    os.symlink(real, inbox / month / "registry" / "deaths.csv")
    with pytest.raises(RunError) as err:
        run(tmp_path, month)
    message = str(err.value)
    assert "registry/deaths.csv" in message and "symbolic link" in message and "\n" not in message
    assert not (tmp_path / "out" / month / "payouts" / "manifest.json").exists()


def test_a_linked_month_folder_stops_the_month_with_one_sentence(tmp_path):
    """<inbox>/2020-01 linked to a folder elsewhere: nothing under it is read, and the run says why."""
    elsewhere = tmp_path / "elsewhere"
    write_csv(roster_path(elsewhere, "2020-01", "tekun", f"{C}_tekun_202001.csv"), TEKUN, [tekun_row(P1)])
    (tmp_path / "inbox").mkdir()
    os.symlink(elsewhere / "2020-01", tmp_path / "inbox" / "2020-01")
    with pytest.raises(RunError) as err:
        run(tmp_path, "2020-01")
    assert "symbolic link" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "warehouse.duckdb").exists()


def _hidden_workbook() -> bytes:
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    ws = wb.add_worksheet("花名册")
    ws.write(0, 0, "沈阳市和平区2020年1月特困供养花名册")
    ws.write_row(1, 0, TEKUN)
    ws.write_row(2, 0, tekun_row(P1))
    ws.write_row(3, 0, tekun_row(P2))
    ws.set_row(3, None, None, {"hidden": True})
    # P3 twice: a hidden row with another account first, then the visible row that stands
    ws.write_row(4, 0, tekun_row(P3, account="6222999900001111"))
    ws.set_row(4, None, None, {"hidden": True})
    ws.write_row(5, 0, tekun_row(P3))
    hidden = wb.add_worksheet("备用")
    hidden.write_row(0, 0, list(reversed(TEKUN)))  # columns in another order: placed by header
    hidden.write_row(1, 0, list(reversed(tekun_row(P4))))
    hidden.hide()
    very_hidden = wb.add_worksheet("x")
    very_hidden.write_row(0, 0, TEKUN)
    very_hidden.write_row(1, 0, tekun_row(P5))
    very_hidden.very_hidden()
    lists = wb.add_worksheet("下拉")  # the values behind a drop-down: no roster header, no rows
    lists.write_column(0, 0, ["城市", "农村"])
    lists.hide()
    wb.close()
    return buf.getvalue()


def test_hidden_rows_and_sheets_are_read_and_quarantined_never_paid(tmp_path):
    inbox, wh, month = tmp_path / "inbox", tmp_path / "warehouse.duckdb", "2020-01"
    path = roster_path(inbox, month, "tekun", f"{C}_tekun_202001.xlsx")
    path.parent.mkdir(parents=True)
    path.write_bytes(_hidden_workbook())

    run(tmp_path, month)

    assert regular_lines(wh, month) == [(P1["id"], month, "regular", TEKUN_MONTHLY, "payable", None),
                                        (P3["id"], month, "regular", TEKUN_MONTHLY, "payable", None)]
    # hidden sheets' rows are numbered after the first sheet's four data rows
    assert dispositions(wh, month, f"rosters/tekun/{C}_tekun_202001.xlsx") == [
        (1, P1["id"], "accepted", []),
        (2, P2["id"], "quarantined", ["ROW_HIDDEN"]),
        (3, P3["id"], "quarantined", ["ROW_HIDDEN"]),
        (4, P3["id"], "accepted", []),
        (5, P4["id"], "quarantined", ["SHEET_HIDDEN"]),
        (6, P5["id"], "quarantined", ["SHEET_HIDDEN"]),
    ]
    assert query(wh, "SELECT payee_account FROM payment_ledger WHERE id_number = ? AND line_type = 'regular'",
                 [P3["id"]]) == [(acct(P3),)]
    assert "6222999900001111" not in payout_text(tmp_path, month)


def test_a_hidden_roster_column_rejects_the_file(tmp_path):
    """The account column hidden: the account paid would be one the caseworker never saw. The file is
    rejected whole and its rows quarantined; a hidden column that is no roster's (a helper) is fine."""
    inbox, wh, month = tmp_path / "inbox", tmp_path / "warehouse.duckdb", "2020-01"
    for county, hide in (("210102", TEKUN.index("bank_account")), ("210103", len(TEKUN))):
        buf = io.BytesIO()
        wb = xlsxwriter.Workbook(buf, {"in_memory": True})
        ws = wb.add_worksheet()
        ws.write_row(0, 0, [*TEKUN, "备注"])
        ws.write_row(1, 0, [county, *tekun_row(P1 if county == "210102" else P2)[1:], "辅助列"])
        ws.set_column(hide, hide, None, None, {"hidden": True})
        wb.close()
        path = roster_path(inbox, month, "tekun", f"{county}_tekun_202001.xlsx")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf.getvalue())

    run(tmp_path, month)

    assert [r[0] for r in regular_lines(wh, month)] == [P2["id"]]
    assert [(*r[:3], sorted(r[3])) for r in dispositions(wh, month, "rosters/tekun/210102_tekun_202001.xlsx")] == [
        (1, P1["id"], "quarantined", ["FILE_COLUMN_HIDDEN", "FILE_REJECTED"])]
    [(detail,)] = query(wh, "SELECT reason_detail FROM source_file WHERE payroll_month = ? AND status = 'rejected'",
                        [month])
    assert "银行账号(bank_account)" in detail


@pytest.mark.unit
def test_months_in_a_file_name():
    from pipelines.ingest import months_in_name

    assert months_in_name("210124_tekun_201912.csv") == {"2019-12"}
    assert months_in_name("210102_dibao_202003_v2.csv") == {"2020-03"}
    assert months_in_name("沈阳市和平区2020年3月低保花名册.xlsx") == {"2020-03"}
    assert months_in_name("210102_dibao_2020-03.csv") == {"2020-03"}
    assert months_in_name("210102_dibao.csv") == set()
    assert months_in_name("210102_dibao_20200131.csv") == set()  # a date, not a month


def test_a_file_named_for_another_month_is_rejected_whole(tmp_path):
    """`210103_tekun_201912.csv` left in the 2020-01 folder: every row quarantined, the finding names
    both months, nobody in it paid; the county's file for January beside it is paid."""
    inbox, wh, month = tmp_path / "inbox", tmp_path / "warehouse.duckdb", "2020-01"
    write_csv(roster_path(inbox, month, "tekun", f"{C}_tekun_202001.csv"), TEKUN, [tekun_row(P1)])
    stale = [["210103", *r[1:]] for r in (tekun_row(P2), tekun_row(P3))]
    write_csv(roster_path(inbox, month, "tekun", "210103_tekun_201912.csv"), TEKUN, stale)

    run(tmp_path, month)

    assert [r[0] for r in regular_lines(wh, month)] == [P1["id"]]
    assert [(*r[:3], sorted(r[3])) for r in dispositions(wh, month, "rosters/tekun/210103_tekun_201912.csv")] == [
        (1, P2["id"], "quarantined", ["FILE_MONTH_MISMATCH", "FILE_REJECTED"]),
        (2, P3["id"], "quarantined", ["FILE_MONTH_MISMATCH", "FILE_REJECTED"]),
    ]
    [(detail,)] = query(wh, "SELECT detail FROM finding WHERE payroll_month = ? AND finding_type = 'file_rejected'",
                        [month])
    assert "210103_tekun_201912.csv" in detail and "2019-12" in detail and "2020-01" in detail


def test_corrections_are_versions_compared_as_numbers_and_other_files_of_a_county_are_read_together(tmp_path):
    """Attack finding 6: `_v10` is the later correction of `_v2` (numbers, not text: "v10" < "v2");
    `_街道B` is another street office's roster, not a correction: read beside the county's roster,
    with a finding that asks the county, never replacing it."""
    inbox, wh, month = tmp_path / "inbox", tmp_path / "warehouse.duckdb", "2020-01"
    folder = f"{C}_tekun_202001"
    write_csv(roster_path(inbox, month, "tekun", f"{folder}_v2.csv"), TEKUN, [tekun_row(P1)])
    write_csv(roster_path(inbox, month, "tekun", f"{folder}_v10.csv"), TEKUN, [tekun_row(P1), tekun_row(P2)])
    write_csv(roster_path(inbox, month, "tekun", f"{folder}_街道B.csv"), TEKUN, [tekun_row(P3)])

    run(tmp_path, month)

    assert [r[0] for r in regular_lines(wh, month)] == sorted([P1["id"], P2["id"], P3["id"]])
    files = dict(query(wh, "SELECT source_file, status FROM source_file WHERE payroll_month = ?", [month]))
    assert files == {f"rosters/tekun/{folder}_v2.csv": "superseded", f"rosters/tekun/{folder}_v10.csv": "loaded",
                     f"rosters/tekun/{folder}_街道B.csv": "loaded"}
    [(detail,)] = query(wh, "SELECT detail FROM finding WHERE payroll_month = ? "
                            "AND finding_type = 'county_files_read_together'", [month])
    assert f"{folder}_v10.csv" in detail and f"{folder}_街道B.csv" in detail and "_v2" in detail


def test_one_person_twice_in_a_file_with_two_accounts_is_held_until_one_account_comes(tmp_path):
    """P1 twice with two accounts: held (owed, not sent), with a finding; P2 twice with the same
    account is the usual duplicate and is paid once. February's roster brings one account for P1:
    February and the held January are paid, once each."""
    inbox, wh = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    other_account = "6222888800002222"
    write_csv(roster_path(inbox, "2020-01", "tekun", f"{C}_tekun_202001.csv"), TEKUN,
              [tekun_row(P1), tekun_row(P2), tekun_row(P1, account=other_account), tekun_row(P2)])
    run(tmp_path, "2020-01")

    assert regular_lines(wh, "2020-01") == sorted([
        (P1["id"], "2020-01", "regular", TEKUN_MONTHLY, "held", "account_conflict_in_file"),
        (P2["id"], "2020-01", "regular", TEKUN_MONTHLY, "payable", None),
    ])
    [(action, detail)] = query(wh, "SELECT action, detail FROM finding WHERE payroll_month = '2020-01' "
                                   "AND finding_type = 'account_conflict_in_file' AND id_number = ?", [P1["id"]])
    assert action == "held" and acct(P1) not in detail  # the account is masked in the finding
    january = payout_text(tmp_path, "2020-01")
    assert acct(P1) not in january and other_account not in january and acct(P2) in january

    write_csv(roster_path(inbox, "2020-02", "tekun", f"{C}_tekun_202002.csv"), TEKUN, [tekun_row(P1), tekun_row(P2)])
    run(tmp_path, "2020-02")
    february = [r for r in regular_lines(wh, "2020-02") if r[0] == P1["id"]]
    assert february == [(P1["id"], "2020-01", "arrears", TEKUN_MONTHLY, "payable", None),
                        (P1["id"], "2020-02", "regular", TEKUN_MONTHLY, "payable", None)]


def spaced(p):
    """The person's name with a no-break space after its first character."""
    return p["name"][0] + "\u00a0" + p["name"][1:]


def test_names_with_characters_nobody_sees_are_quarantined_and_never_reach_a_bank_file(tmp_path):
    """A quoted name with a line break, a zero-width space in name and holder, a tab inside a name, a
    right-to-left mark after a holder: quarantined (not repaired: only the county knows the real
    name, and the bank compares the holder character by character). Spaces around a name are
    ordinary typing and are trimmed, as before; a no-break space or another Unicode space is such a
    space (inside a name it becomes an ordinary one, as the bank's systems type it)."""
    inbox, wh, month = tmp_path / "inbox", tmp_path / "warehouse.duckdb", "2020-01"
    rows = [
        tekun_row(P1, name="张\n三", holder="张\n三"),
        tekun_row(P2, name="李\u200b四", holder="李\u200b四"),
        tekun_row(P3, name="孙\t八", holder="孙 八"),
        tekun_row(P4, holder=P4["name"] + "\u202e"),
        tekun_row(P5, name="  钱七 ", holder=" 钱七"),
        # a no-break space (web forms paste it) is a space like any other: trimmed, never sent to a bank
        tekun_row(P6, name=spaced(P6) + "\u00a0", holder=spaced(P6) + "\u2002"),
    ]
    write_csv(roster_path(inbox, month, "tekun", f"{C}_tekun_202001.csv"), TEKUN, rows)

    run(tmp_path, month)

    assert [r[0] for r in regular_lines(wh, month)] == sorted([P5["id"], P6["id"]])
    bad = {r[1]: r[3] for r in dispositions(wh, month, f"rosters/tekun/{C}_tekun_202001.csv")
           if r[2] == "quarantined"}
    assert bad == {p["id"]: ["NAME_HIDDEN_CHARACTER"] for p in (P1, P2, P3, P4)}
    assert query(wh, "SELECT payee_name FROM payment_ledger WHERE id_number = ? AND line_type = 'regular'",
                 [P5["id"]]) == [("钱七",)]
    bank = payout_text(tmp_path, month)
    assert query(wh, "SELECT payee_name FROM payment_ledger WHERE id_number = ? AND line_type = 'regular'",
                 [P6["id"]]) == [(P6["name"][0] + " " + P6["name"][1:],)]  # as the same name with a space
    assert "\u200b" not in bank and "\u202e" not in bank and "张 三" not in bank and "孙 八" not in bank
    assert "\u00a0" not in bank and "\u2002" not in bank
    assert all(acct(p) not in bank for p in (P1, P2, P3, P4)) and acct(P5) in bank and acct(P6) in bank


def test_a_roster_that_follows_the_contract_reads_as_before(tmp_path):
    """No link, no hidden row, the folder's month in the name, one account each: ingest outcome and
    dispositions unchanged (a visible XLSX with a title row, and a CSV with spaces around names)."""
    ctx = context(tmp_path, "2020-01")
    from pipelines.ingest import ingest_program

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    ws = wb.add_worksheet()
    ws.write(0, 0, "沈阳市和平区2020年1月特困供养花名册")
    ws.write_row(1, 0, TEKUN)
    ws.write_row(2, 0, tekun_row(P1))
    ws.write_row(3, 0, tekun_row(P2, name=" " + P2["name"] + " "))
    wb.close()
    path = roster_path(tmp_path / "inbox", "2020-01", "tekun", f"{C}_tekun_202001.xlsx")
    path.parent.mkdir(parents=True)
    path.write_bytes(buf.getvalue())
    out = ingest_program(ctx, "tekun")
    assert out["files_by_status"] == {"loaded": 1} and out["rows"] == 2
