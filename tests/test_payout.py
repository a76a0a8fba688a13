"""Payout files as their readers check them: pain.001 against the official XSD with totals added up
independently of the XML library that wrote them, manifests that catch tampering, released months."""

from __future__ import annotations

import csv
import json
import shutil
from decimal import Decimal
from xml.etree import ElementTree

import pytest
from python_calamine import CalamineWorkbook

from pipelines.cli import main as doudi
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
        body = [r for r in sheet[1:] if r and r[0] != "合计"]
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
    shutil.copy(four_months["warehouse"], tmp_path / "warehouse.duckdb")
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


def test_a_released_month_is_never_rewritten(four_months, tmp_path, capsys):
    from pipelines.payout import write_payouts
    from tests.helpers import context

    out = tmp_path / "out"
    shutil.copytree(four_months["out"] / "2020-01", out / "2020-01")
    args = ["--month", "2020-01", "--out", str(out)]
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
