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
    assert result["files_by_status"] == {"rejected": 1}
    assert Settings().max_row_swing == 0.5
