"""Payout files as their readers check them: pain.001 against the official XSD with totals added up
independently of the XML library that wrote them, manifests that catch tampering, released months."""

from __future__ import annotations

import csv
import json
import shutil
from decimal import Decimal
from xml.etree import ElementTree

import pyarrow.parquet as pq
import pytest
from python_calamine import CalamineWorkbook

from pipelines.cli import main as doudi
from pipelines.warehouse_months import copy_warehouse
from tests.helpers import query

NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"}


def test_pain001_validates_and_its_totals_equal_the_ledger(four_months):
    from pipelines.payout import pain001_schema

    out, wh = four_months["out"], four_months["warehouse"]
    for month in ("2020-01", "2020-04"):
        manifest = json.loads((out / month / "payouts" / "manifest.json").read_text(encoding="utf-8"))
        xml_files = [f for f in manifest["files"] if f["format"] == "pain001"]
        assert xml_files
        grand = Decimal("0")
        for f in xml_files:
            path = out / month / "payouts" / f["name"]
            pain001_schema().validate(str(path))  # raises on any XSD violation
            root = ElementTree.parse(path).getroot()  # the standard library, not lxml
            amounts = [Decimal(e.text) for e in root.iterfind(".//p:CdtTrfTxInf/p:Amt/p:InstdAmt", NS)]
            assert all(e.get("Ccy") == "CNY" for e in root.iterfind(".//p:InstdAmt", NS))
            total = sum(amounts)
            assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs", namespaces=NS) == str(len(amounts))
            assert Decimal(root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum", namespaces=NS)) == total
            for pmt in root.iterfind(".//p:PmtInf", NS):
                txs = [Decimal(e.text) for e in pmt.iterfind("p:CdtTrfTxInf/p:Amt/p:InstdAmt", NS)]
                assert pmt.findtext("p:NbOfTxs", namespaces=NS) == str(len(txs))
                assert Decimal(pmt.findtext("p:CtrlSum", namespaces=NS)) == sum(txs)
            assert (len(amounts), f"{total:.2f}") == (f["count"], f["sum"])
            grand += total
        ledger = query(wh, "SELECT sum(amount) FROM payment_ledger WHERE payroll_month = ? AND status = 'payable'",
                       [month])[0][0]
        assert grand == ledger


def test_xlsx_payout_matches_the_csv_rendering(four_months):
    payouts = four_months["out"] / "2020-02" / "payouts"
    manifest = json.loads((payouts / "manifest.json").read_text(encoding="utf-8"))
    for f in [f for f in manifest["files"] if f["format"] == "xlsx"][:3]:
        sheet = CalamineWorkbook.from_path(str(payouts / f["name"])).get_sheet_by_index(0).to_python()
        header = next(i for i, r in enumerate(sheet) if r[0] == "支付流水号")
        total = next(i for i, r in enumerate(sheet) if r[0] == "合计")
        body = sheet[header + 1:total]
        # the title names month, bank and batch; the first page states the totals
        assert sheet[0][0].startswith("2020-02 社会救助资金代发明细") and f"批次 {f['batch_id']}" in sheet[0][0]
        assert sheet[2][0] == f"合计 {f['count']} 笔，金额 {Decimal(f['sum']):,.2f} 元"
        with open(payouts / f["name"].replace(".xlsx", ".csv"), encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert [r[0] for r in body] == [r["payment_ref"] for r in rows]
        assert sum(Decimal(str(r[5])).quantize(Decimal("0.01")) for r in body) == Decimal(f["sum"])


def test_manifest_chains_to_the_previous_month(four_months):
    import hashlib

    out = four_months["out"]
    feb = json.loads((out / "2020-02" / "payouts" / "manifest.json").read_text(encoding="utf-8"))
    jan_bytes = (out / "2020-01" / "payouts" / "manifest.json").read_bytes()
    assert feb["previous_manifest_sha256"] == hashlib.sha256(jan_bytes).hexdigest()


@pytest.fixture
def month_copy(four_months, tmp_path):
    """A copy of 2020-03's outputs and the warehouse, to tamper with."""
    shutil.copytree(four_months["out"] / "2020-03" / "payouts", tmp_path / "out" / "2020-03" / "payouts")
    copy_warehouse(four_months["warehouse"], tmp_path / "warehouse.duckdb")
    args = ["--month", "2020-03", "--out", str(tmp_path / "out"), "--warehouse", str(tmp_path / "warehouse.duckdb")]
    assert doudi(["verify", *args]) == 0
    return tmp_path / "out" / "2020-03" / "payouts", args


def _first(payouts, fmt):
    manifest = json.loads((payouts / "manifest.json").read_text(encoding="utf-8"))
    return payouts / next(f["name"] for f in manifest["files"] if f["format"] == fmt)


def test_verify_detects_a_flipped_byte(month_copy, capsys):
    payouts, args = month_copy
    path = _first(payouts, "pain001")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert doudi(["verify", *args]) == 1
    assert "SHA-256 differs" in capsys.readouterr().err


def test_verify_detects_a_removed_file(month_copy, capsys):
    payouts, args = month_copy
    _first(payouts, "xlsx").unlink()
    assert doudi(["verify", *args]) == 1
    assert "missing" in capsys.readouterr().err


def test_verify_detects_an_edited_amount(month_copy, capsys):
    payouts, args = month_copy
    path = _first(payouts, "csv")
    text = path.read_text(encoding="utf-8").splitlines(keepends=True)
    fields = text[1].split(",")
    fields[5] = str(Decimal(fields[5]) + 100)
    text[1] = ",".join(fields)
    path.write_text("".join(text), encoding="utf-8")
    assert doudi(["verify", *args]) == 1
    err = capsys.readouterr().err
    assert "SHA-256 differs" in err and "records /" in err


def test_verify_and_release_refuse_a_file_the_manifest_does_not_name(month_copy, capsys):
    """The bank is sent the folder: a transfer file slipped in beside the published ones (a copy of
    one under another part's name, which its own checks would pass) stops verify and release."""
    payouts, args = month_copy
    path = _first(payouts, "csv")
    (payouts / path.name.replace("_01.csv", "_09.csv")).write_bytes(path.read_bytes())
    for command in (["verify", *args], ["release", *args, "--by", "测试员"]):
        assert doudi(command) == 1
        err = capsys.readouterr().err
        assert path.name.replace("_01.csv", "_09.csv") + ": in the payouts folder but not in the manifest" in err, err
    assert not (payouts / "released.json").exists()


def test_a_released_month_is_never_rewritten(four_months, tmp_path, capsys):
    from pipelines.payout import write_payouts
    from tests.helpers import context

    out = tmp_path / "out"
    shutil.copytree(four_months["out"] / "2020-01", out / "2020-01")
    copy_warehouse(four_months["warehouse"], tmp_path / "warehouse.duckdb")  # release records it there
    args = ["--month", "2020-01", "--out", str(out), "--warehouse", str(tmp_path / "warehouse.duckdb")]
    assert doudi(["release", *args, "--by", "测试员"]) == 0
    before = {p.name: p.read_bytes() for p in (out / "2020-01" / "payouts").iterdir()}
    ctx = context(tmp_path, "2020-01", inbox=four_months["inbox"])
    with pytest.raises(Exception, match="released"):
        write_payouts(ctx)
    assert {p.name: p.read_bytes() for p in (out / "2020-01" / "payouts").iterdir()} == before
    assert doudi(["release", *args, "--by", "again"]) == 1


def test_large_batches_split_into_parts(tmp_path, monkeypatch):
    """Banks cap batch sizes: with at most 2 records a file, a bank's batch becomes several parts,
    each with its own count and control sum, and the month still reconciles."""
    from tests.helpers import make_id, roster_path, run, write_csv
    from tests.test_malformed_inputs import TEKUN_HEAD, tekun

    monkeypatch.setenv("DOUDI_MAX_RECORDS_PER_FILE", "2")
    rows = [tekun(make_id("210102", "19400101", i), 银行账号=f"62220202001{i:08d}") for i in range(5)]
    write_csv(roster_path(tmp_path / "inbox", "2020-01", "tekun", "210102_tekun_202001.csv"), TEKUN_HEAD, rows)
    run(tmp_path, "2020-01")
    manifest = json.loads((tmp_path / "out" / "2020-01" / "payouts" / "manifest.json").read_text(encoding="utf-8"))
    csv_parts = [f for f in manifest["files"] if f["format"] == "csv"]
    assert [f["count"] for f in csv_parts] == [2, 2, 1]
    assert [f["name"] for f in csv_parts] == ["2020-01_ICBC_R_01.csv", "2020-01_ICBC_R_02.csv",
                                              "2020-01_ICBC_R_03.csv"]
    assert doudi(["verify", "--month", "2020-01", "--out", str(tmp_path / "out"),
                  "--warehouse", str(tmp_path / "warehouse.duckdb")]) == 0


def test_chunked_aggregation_writes_the_same_files(four_months, tmp_path, monkeypatch):
    """Payout records are aggregated a chunk of payee accounts at a time, so that a national month's
    per-payee aggregates fit in memory. However small the chunks, the files, refs and records are
    the same bytes as the run's own; so are they when the batch parts are written side by side in
    threads (the run's own wrote them one after another)."""
    from pipelines.payout import write_payouts
    from tests.helpers import context

    month = "2020-04"
    work = tmp_path / "out" / month / "_work" / "compute"
    work.mkdir(parents=True)
    shutil.copy(four_months["out"] / month / "_work" / "compute" / "ledger.parquet", work)
    monkeypatch.setenv("DOUDI_PAYOUT_CHUNK_LINES", "7")
    monkeypatch.setenv("DOUDI_PAYOUT_PROCESSES", "3")
    monkeypatch.setenv("DOUDI_PAYOUT_PARALLEL_MIN_RECORDS", "0")
    ctx = context(tmp_path, month, inbox=four_months["inbox"])
    assert ctx.settings.payout_chunk_lines == 7
    result = write_payouts(ctx)

    ours, theirs = tmp_path / "out" / month, four_months["out"] / month
    manifest = json.loads((ours / "payouts" / "manifest.json").read_text(encoding="utf-8"))
    original = json.loads((theirs / "payouts" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["totals"]["records"] > 7 * 3  # many chunks
    assert manifest["files"] == original["files"]  # names, SHA-256s, counts and sums
    for f in manifest["files"]:
        assert (ours / "payouts" / f["name"]).read_bytes() == (theirs / "payouts" / f["name"]).read_bytes()
    for name in ("payment_refs.parquet", "records.parquet"):
        ours_table = pq.read_table(ours / "_work" / "payout" / name)
        assert ours_table.num_rows and ours_table.equals(pq.read_table(theirs / "_work" / "payout" / name))
    assert result["records"] == original["totals"]["records"]


def _numbered(records_per_bank: dict[str, int], reissues: int = 0):
    """The numbering step alone, over synthetic records: DuckDB with the project's macros."""
    from pipelines.payout import number_records
    from pipelines.sqlrun import connect

    con = connect()
    parts = " UNION ALL ".join(
        f"SELECT '{bank}' AS bank_code, '210102' AS region_code, 'u' || lpad(i::VARCHAR, 8, '0') AS payee_group, "
        f"'6222' || i AS payee_account, '张三' AS payee_name, i < {reissues} AS is_reissue, [i::VARCHAR] AS line_ids "
        f"FROM range({n}) t(i)" for bank, n in records_per_bank.items())
    con.execute(f"CREATE TABLE payout_record AS {parts}")
    number_records(con, "202001", 100_000, None)
    return con


def _checkable(records_per_bank: dict[str, int]):
    """Numbered synthetic records of 1.00 yuan each, with the ledger lines they carry."""
    con = _numbered(records_per_bank)
    con.execute("CREATE VIEW month_ledger AS SELECT unnest(line_ids) AS line_id, 'payable' AS status, "
                "1.00::DECIMAL(18, 2) AS amount FROM payout_records")
    con.execute("ALTER TABLE payout_records ADD COLUMN amount DECIMAL(18, 2) DEFAULT 1.00")
    return con


@pytest.mark.unit
def test_payment_refs_stay_unique_past_999999_records_of_a_bank():
    """A bank's month with over 999,999 records (a national month) gets seven-digit sequences for all
    its refs; a bank with fewer keeps the contract's six digits (202003ICBCR000123). Six digits
    with lpad had cut record 1,234,567's ref to record 123,456's."""
    con = _numbered({"ABC": 1_000_001, "ICBC": 3}, reissues=2)
    total, distinct = con.execute("SELECT count(*), count(DISTINCT payment_ref) FROM payout_records").fetchone()
    assert total == distinct == 1_000_004
    refs = dict(con.execute("SELECT bank_code || ':' || batch_id || ':' || seq, payment_ref FROM payout_records "
                            "WHERE seq IN (1, 3, 999999, 1000000, 1000001)").fetchall())
    # the reissues (first in order) are batch X, and the sequence runs on through the bank's R batch
    assert refs["ABC:X:1"] == "202001ABCX0000001"
    assert refs["ABC:R:3"] == "202001ABCR0000003"
    assert refs["ABC:R:1000000"] == "202001ABCR1000000"
    assert refs["ABC:R:1000001"] == "202001ABCR1000001"
    assert refs["ICBC:X:1"] == "202001ICBCX000001"
    assert refs["ICBC:R:3"] == "202001ICBCR000003"
    widths = con.execute("SELECT bank_code, min(length(payment_ref)), max(length(payment_ref)) FROM payout_records "
                         "GROUP BY ALL ORDER BY ALL").fetchall()
    assert widths == [("ABC", 17, 17), ("ICBC", 17, 17)]
    parts = con.execute("SELECT batch_id, part, count(*) FROM payout_records WHERE bank_code = 'ABC' "
                        "GROUP BY ALL ORDER BY ALL").fetchall()
    assert parts[0] == ("R", 1, 100_000) and parts[-1] == ("X", 1, 2)
    assert sum(p[2] for p in parts) == 1_000_001


@pytest.mark.unit
def test_payout_refuses_records_that_share_a_payment_ref():
    """The stage checks its own refs: two records under one ref would be one transfer to a bank."""
    from pipelines.payout import check_records
    from pipelines.settings import RunError

    con = _checkable({"ICBC": 3})
    check_records(con, released=False)  # three records, three refs
    con.execute("UPDATE payout_records SET payment_ref = '202001ICBCR000001'")
    with pytest.raises(RunError, match="3 payout records but 1 distinct payment refs"):
        check_records(con, released=False)


@pytest.mark.unit
def test_a_supplementary_batch_may_not_reuse_a_released_ref():
    """A ref a released batch of the month carried is never sent again; refs of the month's unreleased
    batches (a supplementary batch being rerun) may be."""
    from pipelines.payout import check_records
    from pipelines.settings import RunError

    con = _checkable({"ICBC": 1})
    # as write_payouts defines it over the warehouse: the month's records of batches R and X
    con.execute("CREATE VIEW released_records AS SELECT * FROM (VALUES ('R', '202001ICBCR000001')) "
                "t(batch_id, payment_ref)")
    con.execute("UPDATE payout_records SET payment_ref = '202001ICBCS1000001'")
    check_records(con, released=True)  # S1 is not released: its rerun may write it again
    con.execute("UPDATE payout_records SET payment_ref = '202001ICBCR000001'")
    with pytest.raises(RunError, match="202001ICBCR000001 was already sent in a released batch"):
        check_records(con, released=True)


# ------------------------------------------------------------------ files composed by DuckDB (issue 22)

def _oracle_files(ctx, records, formats):
    """The files of every batch part as the row-by-row renderers of tests/payout_oracle.py write them,
    from payout records (the columns of pipelines/payout.py's `payout_records`)."""
    from tests.payout_oracle import render_batch

    columns = "payment_ref, payee_name, payee_account, bank_code, bank_name, amount, programs, region_code, memo, bic"
    files = {}
    for bank_code, batch_id, part in records.execute(
            "SELECT DISTINCT bank_code, batch_id, part FROM payout_records ORDER BY ALL").fetchall():
        rows = records.execute(f"SELECT {columns} FROM payout_records WHERE bank_code = ? AND batch_id = ? "
                               "AND part = ? ORDER BY seq", [bank_code, batch_id, part]).fetchall()
        stem = f"{ctx.month}_{bank_code}_{batch_id}_{part:02d}"
        total, rendered = render_batch(ctx, formats, stem, rows, bank_code, batch_id)
        for _fmt, name, data in rendered:
            files[name] = (data, len(rows), f"{total:.2f}")
    return files


def test_every_payout_file_is_the_bytes_the_row_by_row_renderers_wrote(four_months):
    """The months' files, composed by DuckDB, are byte for byte what the Python renderers of
    tests/payout_oracle.py (doudi's before issue 22) write from the same records."""
    import duckdb

    from tests.helpers import context

    for month in ("2020-01", "2020-04"):
        out = four_months["out"] / month
        ctx = context(four_months["tmp"], month, inbox=four_months["inbox"])
        con = duckdb.connect()
        con.execute("CREATE TABLE payout_records AS SELECT * FROM read_parquet(?)",
                    [str(out / "_work" / "payout" / "records.parquet")])
        expected = _oracle_files(ctx, con, ["csv", "xlsx", "pain001"])
        manifest = json.loads((out / "payouts" / "manifest.json").read_text(encoding="utf-8"))
        # the banks' own layouts (tests/test_bank_templates.py) came after the oracle
        rendered = [f for f in manifest["files"] if not f["format"].startswith("template:")]
        assert sorted(f["name"] for f in rendered) == sorted(expected)
        for f in rendered:
            data, count, total = expected[f["name"]]
            assert (out / "payouts" / f["name"]).read_bytes() == data, f["name"]
            assert (f["count"], f["sum"]) == (count, total)


HOSTILE = [
    # name, account, memo, bic, amount
    ("=HYPERLINK(\"x\")", "6222 0001", "价格临时补贴 2020-01（2人）；最低生活保障金 2020-01", "ABOCCNBJ", "0.07"),
    ("+张三", "-6222", "@memo", None, "0.56"),
    ("李四 ", " 6222", "tab\tinside and\nnewline", "", "0.69"),
    ("王\u3000五", "6222\u3000", "\u3000全角空格", "ICBKCNBJ", "1278.22"),
    ("a & b < c > d \" ' ", "1,2", "逗号,和\"引号\"", "BKCHCNBJ300", "999999.99"),
    ("_x0041_ literal", "_X0041_", "<r>rich</r>", None, "12345678.91"),
    ("名" * 150, "6222", "摘" * 150, None, "0.01"),
    ("emoji 👍🏽 name", "6222", "]]> cdata end", None, "100.00"),
    ("", "6222", None, None, "5.50"),
    ("回车\r名", "6222", "memo\r\nline", None, "0.10"),
]
CONTROL_ONLY = [  # text XML 1.0 cannot carry: XLSX escapes it (_x0001_), a pain.001 cannot hold it
    ("控制\x01字符", "6222\x1f", "\x0bmemo\x0c", None, "3.33"),
    ("\ufffe不是字符", "6222", "_x0000_", None, "4.44"),
]


def _hostile_records(con, rows, copies: int = 1):
    """payout_records of bank TEST, batch R, part 1 with the given values, repeated, some of them with
    every optional column missing, so that row spans of 16 differ."""
    con.execute("CREATE OR REPLACE TABLE payout_records (bank_code VARCHAR, batch_id VARCHAR, part INTEGER, "
                "seq BIGINT, payment_ref VARCHAR, payee_name VARCHAR, payee_account VARCHAR, bank_name VARCHAR, "
                "amount DECIMAL(18, 2), programs VARCHAR, region_code VARCHAR, memo VARCHAR, bic VARCHAR)")
    values = []
    for i in range(copies * len(rows)):
        name, account, memo, bic, amount = rows[i % len(rows)]
        sparse = i % 37 >= 20  # rows 20..36 of 37: no bank name, programs, region or memo
        values.append(("TEST", "R", 1, i + 1, f"202001TESTR{i + 1:06d}", name, account,
                       None if sparse else "测试银行", amount, None if sparse else "dibao;tekun",
                       None if sparse else "210102", None if sparse else memo, bic))
    con.executemany("INSERT INTO payout_records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)


@pytest.mark.stage
@pytest.mark.parametrize("rows, formats", [(HOSTILE, ["csv", "csv_gbk", "xlsx"]),
                                           (HOSTILE + CONTROL_ONLY, ["csv", "csv_gbk", "xlsx"])])
def test_hostile_values_give_the_row_by_row_bytes(tmp_path, rows, formats):
    """Formula triggers, white space at either end (ASCII and full-width), XML specials, CR and LF,
    literal _xHHHH_, a '<r>…</r>' string, over-long names and memos, characters beyond the BMP, missing
    values and amounts whose nearest double prints with 16 digits (0.07): the CSV, GBK CSV and XLSX are
    the oracle's bytes."""
    from pipelines.payout import write_batch
    from pipelines.sqlrun import connect
    from tests.helpers import context

    ctx = context(tmp_path, "2020-01")
    con = connect()
    _hostile_records(con, rows, copies=9)  # 90+ records: several spans of 16 rows, sparse rows among them
    out = tmp_path / "payouts"
    out.mkdir()
    entries = write_batch(ctx, con, formats, out, "TEST", "R", 1)
    expected = _oracle_files(ctx, con, formats)
    for e in entries:
        data, count, total = expected[e["name"]]
        assert (out / e["name"]).read_bytes() == data, e["name"]
        assert (e["count"], e["sum"]) == (count, total)


@pytest.mark.stage
def test_hostile_values_in_pain001_give_the_row_by_row_bytes(tmp_path):
    """The same values in a pain.001 (names and memos cut at 140 characters, escaped as libxml2 does),
    except an empty name: the XSD refuses it, here as in the oracle."""
    from pipelines.payout import write_batch
    from pipelines.settings import RunError
    from pipelines.sqlrun import connect
    from tests.helpers import context

    ctx = context(tmp_path, "2020-01")
    con = connect()
    valid = [r for r in HOSTILE if r[0] and r[2]]
    _hostile_records(con, valid)
    out = tmp_path / "payouts"
    out.mkdir()
    entries = write_batch(ctx, con, ["pain001"], out, "TEST", "R", 1)
    data, count, total = _oracle_files(ctx, con, ["pain001"])[entries[0]["name"]]
    assert (out / entries[0]["name"]).read_bytes() == data
    assert (entries[0]["count"], entries[0]["sum"]) == (count, total)

    _hostile_records(con, HOSTILE)  # an empty name (and a missing memo): not a valid pain.001
    with pytest.raises(RunError, match="fails the XSD"):
        write_batch(ctx, con, ["pain001"], out, "TEST", "R", 1)
    assert not (out / entries[0]["name"]).exists() or (out / entries[0]["name"]).read_bytes() == data
    assert not list(out.glob(".*.tmp-*"))


@pytest.mark.stage
def test_a_file_that_does_not_read_back_as_its_batch_is_not_written(tmp_path, monkeypatch):
    """Each file is read back before it is renamed into place; a file whose reading differs from its
    batch's count and sum (an amount changed), or that cannot be read (cut short), is refused and left
    under no name."""
    from pipelines import payout_render
    from pipelines.payout import write_batch
    from pipelines.settings import RunError
    from pipelines.sqlrun import connect
    from tests.helpers import context

    real = payout_render.write_csv

    def edited(con, path):  # one amount changed by a fen on its way to disk
        real(con, path)
        path.write_bytes(path.read_bytes().replace(b",0.07,", b",0.08,"))

    def truncated(con, path):  # cut inside the last record's quoted memo
        real(con, path)
        path.write_bytes(path.read_bytes()[:-8])

    con = connect()
    _hostile_records(con, HOSTILE)
    out = tmp_path / "payouts"
    out.mkdir()
    for broken, message in ((edited, "reads back as 10 records / 13347064.06"), (truncated, "unexpected end")):
        monkeypatch.setattr(payout_render, "write_csv", broken)
        with pytest.raises(RunError, match=message) as refused:
            write_batch(context(tmp_path, "2020-01"), con, ["csv"], out, "TEST", "R", 1)
        assert list(out.iterdir()) == []
        # named as the bank would see it, not by the temporary name it was written under
        assert str(refused.value).startswith("2020-01_TEST_R_01.csv") and ".tmp-" not in str(refused.value), \
            refused.value

    # a workbook whose total row disagrees with its rows
    real_xlsx = payout_render.xlsx_bytes
    monkeypatch.setattr(payout_render, "xlsx_bytes", lambda *a: _total_row_changed(real_xlsx(*a)))
    with pytest.raises(RunError, match="its total row says 11 笔") as refused:
        write_batch(context(tmp_path, "2020-01"), con, ["xlsx"], out, "TEST", "R", 1)
    assert str(refused.value).startswith("2020-01_TEST_R_01.xlsx") and ".tmp-" not in str(refused.value), refused.value
    assert list(out.iterdir()) == []


def _total_row_changed(workbook: bytes) -> bytes:
    """The workbook with its total row's count cell ("10 笔") one higher."""
    import io
    import zipfile

    src, dst = zipfile.ZipFile(io.BytesIO(workbook)), io.BytesIO()
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename in ("xl/sharedStrings.xml", "xl/worksheets/sheet1.xml"):
                data = data.replace(">10 笔<".encode(), ">11 笔<".encode())
            out.writestr(item, data)
    return dst.getvalue()


def test_pain001_files_are_checked_side_by_side_in_threads(four_months):
    """Batch parts are written and checked in threads (DOUDI_PAYOUT_PROCESSES): libxml2 parsing the
    XSD in two threads at once failed a 250k-row bench month, so each thread parses its own schema,
    one at a time. Eight threads released together each read every pain.001 of the month."""
    import threading

    import pipelines.payout_render as render

    files = sorted((four_months["out"] / "2020-03" / "payouts").glob("*.pain001.xml"))
    expected = [render.read_pain001_totals(f) for f in files]
    start, results, schemas = threading.Barrier(8), {}, {}

    def check(i):
        start.wait()
        schemas[i] = render.lxml_schema()
        results[i] = [render.read_pain001_totals(f) for f in files]

    threads = [threading.Thread(target=check, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results.get(i) for i in range(8)] == [expected] * 8
    assert len({id(schema) for schema in schemas.values()}) == 8  # one a thread, never one shared


def test_a_pain001_whose_control_sum_is_wrong_is_refused(four_months, tmp_path):
    """The validating read compares the group header's and the payment information's counts and control
    sums with the transactions it reads."""
    from pipelines.payout_render import read_pain001_totals
    from pipelines.settings import RunError

    good = _first(four_months["out"] / "2020-03" / "payouts", "pain001")
    data = good.read_bytes()
    ctrl = data.index(b"<CtrlSum>") + len(b"<CtrlSum>")
    end = data.index(b"</CtrlSum>")
    bad = tmp_path / "bad.pain001.xml"
    bad.write_bytes(data[:ctrl] + b"1.00" + data[end:])
    read_pain001_totals(good)
    with pytest.raises(RunError, match="control totals"):
        read_pain001_totals(bad)
