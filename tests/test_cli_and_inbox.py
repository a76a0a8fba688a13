"""The CLI's promises, the inbox on object storage, and the row-count swing check."""

from __future__ import annotations

import fsspec

from pipelines.cli import main as doudi
from pipelines.ingest import ingest_program
from pipelines.settings import Settings
from tests.helpers import context, make_id, roster_path, run, write_csv
from tests.test_malformed_inputs import TEKUN_HEAD, tekun

C = "210102"


def test_cli_run_without_an_inbox_exits_1_with_a_clear_message(tmp_path, capsys):
    code = doudi(["run", "--month", "2020-03", "--inbox", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"),
                  "--warehouse", str(tmp_path / "w.duckdb")])
    assert code == 1
    err = capsys.readouterr().err
    assert "no inbox for 2020-03" in err and "Traceback" not in err
    assert not (tmp_path / "w.duckdb").exists()


def test_cli_rejects_a_malformed_month(tmp_path, capsys):
    assert doudi(["run", "--month", "2020-3", "--out", str(tmp_path)]) == 1
    assert "YYYY-MM" in capsys.readouterr().err


def test_cli_run_prints_where_the_outputs_are(tmp_path, capsys):
    write_csv(roster_path(tmp_path / "inbox", "2020-01", "tekun", f"{C}_tekun_202001.csv"), TEKUN_HEAD, [tekun()])
    code = doudi(["run", "--month", "2020-01", "--inbox", str(tmp_path / "inbox"), "--out", str(tmp_path / "out"),
                  "--warehouse", str(tmp_path / "w.duckdb")])
    out = capsys.readouterr().out
    assert code == 0
    assert str(tmp_path / "out" / "2020-01" / "payouts") in out and "1 transfers" in out


def test_inbox_on_object_storage(tmp_path):
    """The inbox is read through fsspec paths: here an in-memory filesystem stands for S3."""
    fs = fsspec.filesystem("memory")
    local = write_csv(tmp_path / "x.csv", TEKUN_HEAD, [tekun()])
    fs.pipe(f"/doudi-inbox/2020-01/rosters/tekun/{C}_tekun_202001.csv", local.read_bytes())
    ctx = context(tmp_path, "2020-01", inbox="memory://doudi-inbox")
    result = ingest_program(ctx, "tekun")
    assert result["rows"] == 1 and result["files_by_status"] == {"loaded": 1}


def test_row_count_swing_rejects_a_county_file(tmp_path):
    """A county that delivered 60 rows last month and 20 now is rejected whole (default limit 50%)."""
    inbox = tmp_path / "inbox"
    rows = [tekun(make_id(C, "19400101", i), 银行账号=f"62220202001{i:08d}") for i in range(60)]
    write_csv(roster_path(inbox, "2020-01", "tekun", f"{C}_tekun_202001.csv"), TEKUN_HEAD, rows)
    run(tmp_path, "2020-01")
    write_csv(roster_path(inbox, "2020-02", "tekun", f"{C}_tekun_202002.csv"), TEKUN_HEAD, rows[:20])
    from pipelines.warehouse import previous_file_counts

    ctx = context(tmp_path, "2020-02")
    assert previous_file_counts(ctx)["tekun"] == {C: 60}
    result = ingest_program(ctx, "tekun", previous_file_counts(ctx)["tekun"])
    # rejected whole, and so the county's January file is paid forward (issue 20, tests/test_carry_forward.py)
    assert result["files_by_status"] == {"loaded": 1, "rejected": 1}
    import pyarrow.parquet as pq

    files = pq.read_table(result["files_path"]).to_pylist()
    assert {(f["status"], f["reason_code"] or "", f["carried_from"] or "") for f in files} == {
        ("rejected", "FILE_ROW_SWING", ""), ("loaded", "", "2020-01")}
    assert Settings().max_row_swing == 0.5


# --- the CLI as an operator meets it (issue 21) -------------------------------------------------------
def _household_inbox(inbox, month="2020-01"):
    """A two-member dibao household (price subsidies each) in Shenyang."""
    from tests.test_engine_golden import DIBAO, common, person

    head, wife = person(71, "19600101", name="张大山"), person(72, "19620101", False, name="李小花")
    write_csv(roster_path(inbox, month, "dibao", f"{C}_dibao_{month.replace('-', '')}.csv"), DIBAO,
              [common(head) + ["HH71", "户主", 2, "0", ""], common(wife, account=False) + ["HH71", "配偶", 2, "0", ""]])
    return head, wife


def _where(tmp_path):
    return ["--inbox", str(tmp_path / "inbox"), "--out", str(tmp_path / "out"), "--warehouse", str(tmp_path / "w.duckdb")]


def test_doudi_alone_prints_the_help(capsys):
    assert doudi([]) == 0
    out = capsys.readouterr().out
    assert "usage: doudi" in out and "run" in out and "explain" in out


def test_a_run_ends_with_what_was_quarantined_held_and_found_and_the_next_command(tmp_path, capsys):
    _household_inbox(tmp_path / "inbox")
    write_csv(roster_path(tmp_path / "inbox", "2020-01", "tekun", f"{C}_tekun_202001.csv"), TEKUN_HEAD,
              [tekun(), tekun(make_id(C, "19410101", 3), 性别="女")])  # the second: sex disagrees with the ID
    assert doudi(["run", "--month", "2020-01", *_where(tmp_path)]) == 0
    out = capsys.readouterr().out
    # 2 dibao members + 1 tekun person paid: one dibao transfer (the head's account) and one tekun transfer
    assert out.splitlines()[0].startswith("2020-01: 2 transfers, ")
    assert "rows:      4 delivered: 3 accepted, 1 quarantined, 0 duplicate" in out
    assert str(tmp_path / "out" / "2020-01" / "reports" / "quarantine.xlsx") in out
    assert "held:      0 payment lines, 0.00 yuan" in out
    assert f"next:      doudi verify --month 2020-01 --out {tmp_path / 'out'}" in out
    assert "doudi release --month 2020-01" in out


def test_a_wrong_reference_path_is_one_sentence_and_writes_nothing(tmp_path, capsys):
    _household_inbox(tmp_path / "inbox")
    code = doudi(["run", "--month", "2020-01", *_where(tmp_path), "--reference", str(tmp_path / "nowhere")])
    assert code == 1
    err = capsys.readouterr().err
    assert "no reference folder at" in err and "--reference" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inbox"]  # no out folder, no lock, no warehouse


def test_explain_names_each_member_and_refuses_an_unknown_id(tmp_path, capsys):
    from pipelines.idnumbers import mask_id

    head, wife = _household_inbox(tmp_path / "inbox")
    assert doudi(["run", "--month", "2020-01", *_where(tmp_path)]) == 0
    capsys.readouterr()
    where = ["--out", str(tmp_path / "out"), "--warehouse", str(tmp_path / "w.duckdb")]
    assert doudi(["explain", "--month", "2020-01", "--id", "HH71", *where]) == 0
    out = capsys.readouterr().out
    price = [ln for ln in out.splitlines() if "价格临时补贴" in ln and "yuan" in ln]
    assert len(price) == 2 and mask_id(head["id"]) in price[0] + price[1] and mask_id(wife["id"]) in price[0] + price[1]
    assert "None" not in out and head["id"] not in out and "张大山" not in out  # names and IDs masked
    assert doudi(["explain", "--month", "2020-01", "--id", make_id(C, "19990101", 9), *where]) == 1
    assert "no line and no roster row for" in capsys.readouterr().err


def test_clear_takes_the_ledgers_program_names(tmp_path, capsys):
    _household_inbox(tmp_path / "inbox")
    assert doudi(["run", "--month", "2020-01", *_where(tmp_path)]) == 0
    capsys.readouterr()
    code = doudi(["clear", "--month", "2020-01", "--out", str(tmp_path / "out"), "--warehouse",
                  str(tmp_path / "w.duckdb"), "--by", "王科员", "--id", make_id(C, "19500101", 8),
                  "--program", "disability_living", "--hold-reason", "account_holder_mismatch"])
    assert code == 1  # accepted by the parser (not 2); nothing of that person's was held
    assert "no disability payment of" in capsys.readouterr().err


def test_returns_names_a_rejected_file_and_says_why(tmp_path, capsys):
    _household_inbox(tmp_path / "inbox")
    assert doudi(["run", "--month", "2020-01", *_where(tmp_path)]) == 0
    (tmp_path / "inbox" / "2020-02" / "bank_returns").mkdir(parents=True)
    (tmp_path / "inbox" / "2020-02" / "bank_returns" / "ICBC_回盘.csv").write_bytes(b"\x00\x01 not a return file")
    capsys.readouterr()
    assert doudi(["returns", "--month", "2020-02", *_where(tmp_path)]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "REJECTED" in ln)
    assert "ICBC_回盘.csv: " in line and len(line.split("ICBC_回盘.csv: ", 1)[1]) > 10
    assert "{" not in out  # sentences, not Python dicts


def test_a_supplementary_run_with_nothing_new_says_so(tmp_path, capsys):
    _household_inbox(tmp_path / "inbox")
    assert doudi(["run", "--month", "2020-01", *_where(tmp_path)]) == 0
    where = ["--out", str(tmp_path / "out"), "--warehouse", str(tmp_path / "w.duckdb")]
    assert doudi(["verify", "--month", "2020-01", *where]) == 0
    assert doudi(["release", "--month", "2020-01", *where, "--by", "财政局"]) == 0
    capsys.readouterr()
    assert doudi(["run", "--month", "2020-01", *_where(tmp_path), "--supplementary"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2020-01 supplementary run: nothing new to pay, no payout file written")
    assert "next:      nothing to release" in out


def test_a_run_names_the_counties_paid_forward(tmp_path, capsys):
    _household_inbox(tmp_path / "inbox")
    assert doudi(["run", "--month", "2020-01", *_where(tmp_path)]) == 0
    (tmp_path / "inbox" / "2020-02" / "rosters").mkdir(parents=True)  # February: the county's file is late
    capsys.readouterr()
    assert doudi(["run", "--month", "2020-02", *_where(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"CARRIED:   {C} dibao: the file is missing" in out and "--supplementary" in out
