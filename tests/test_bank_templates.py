"""Bank payout templates (bank_templates.csv, banks.csv payout_template): every shipped layout written
for a small hand-made month and read back as its bank would, to the fen; files split at a template's
record cap; payout files refused without a real paying account; the execution date a setting."""

from __future__ import annotations

import csv
import datetime
import json
import shutil
from decimal import Decimal
from xml.etree import ElementTree

import pyarrow.parquet as pq
import pytest

from pipelines.settings import DEFAULT_REFERENCE, RunError
from tests.helpers import context, make_id, roster_path, run, write_csv
from tests.test_malformed_inputs import TEKUN_HEAD, tekun

MONTH = "2020-01"
BANKS = {"ICBC": "中国工商银行", "ABC": "农行", "BOC": "中国银行", "CCB": "建设银行", "BOCOM": "交通银行",
         "PSBC": "邮储银行", "SJB": "盛京银行", "LNRCU": "农村信用社"}
SHIPPED = [r["template"] for r in csv.DictReader(open(DEFAULT_REFERENCE / "bank_templates.csv", encoding="utf-8"))]
PAIN001 = "{urn:iso:std:iso:20022:tech:xsd:pain.001.001.09}"


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    """One month of ten tekun persons: three at ICBC, one at each other bank of banks.csv (named as
    caseworkers type them), run with the shipped reference: every bank gets its template's file."""
    tmp = tmp_path_factory.mktemp("bank_templates")
    rows, n = [], 0
    for bank, typed in BANKS.items():
        for _ in range(3 if bank == "ICBC" else 1):
            n += 1
            rows.append(tekun(make_id("210102", "19400101", n), 姓名=f"测试{n}", 户名=f"测试{n}",
                              开户银行=typed, 银行账号=f"62220202001{n:08d}"))
    write_csv(roster_path(tmp / "inbox", MONTH, "tekun", "210102_tekun_202001.csv"), TEKUN_HEAD, rows)
    run(tmp, MONTH)
    return tmp


def _manifest(tmp):
    return json.loads((tmp / "out" / MONTH / "payouts" / "manifest.json").read_text(encoding="utf-8"))


def _rewrite(month, tmp_path, monkeypatch, banks_template: str | None = None, edit=None, **env):
    """write_payouts again on the month's ledger, into tmp_path, with a copy of the reference whose
    banks.csv names `banks_template` for every bank (None: the column dropped) and whose
    bank_templates.csv `edit` changes; `env` sets settings."""
    from pipelines.payout import write_payouts

    work = tmp_path / "out" / MONTH / "_work" / "compute"
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(month / "out" / MONTH / "_work" / "compute" / "ledger.parquet", work)
    reference = tmp_path / "reference"
    if not reference.exists():
        shutil.copytree(DEFAULT_REFERENCE, reference)
    with open(DEFAULT_REFERENCE / "banks.csv", encoding="utf-8") as fh:
        banks = list(csv.DictReader(fh))
    with open(reference / "banks.csv", "w", encoding="utf-8", newline="") as fh:
        columns = [c for c in banks[0] if banks_template is not None or c != "payout_template"]
        w = csv.DictWriter(fh, columns, extrasaction="ignore")
        w.writeheader()
        w.writerows([{**b, "payout_template": banks_template} for b in banks])
    if edit:
        path = reference / "bank_templates.csv"
        path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    write_payouts(context(tmp_path, MONTH, inbox=month / "inbox", reference=reference))
    return tmp_path / "out" / MONTH / "payouts"


def _ledger_by_bank(month) -> dict[str, tuple[int, Decimal]]:
    """Per bank, the ledger's payable lines: distinct payment refs (one per record) and their sum."""
    ledger = pq.read_table(month / "out" / MONTH / "_work" / "compute" / "ledger.parquet").to_pylist()
    refs = {r["line_id"]: r["payment_ref"]
            for r in pq.read_table(month / "out" / MONTH / "_work" / "payout" / "payment_refs.parquet").to_pylist()}
    by_bank: dict[str, tuple[set, Decimal]] = {}
    for line in ledger:
        if line["status"] == "payable":
            seen, total = by_bank.get(line["payee_bank_code"], (set(), Decimal("0.00")))
            by_bank[line["payee_bank_code"]] = (seen | {refs[line["line_id"]]}, total + line["amount"])
    return {bank: (len(seen), total) for bank, (seen, total) in by_bank.items()}


def _template(key):
    return next(r for r in csv.DictReader(open(DEFAULT_REFERENCE / "bank_templates.csv", encoding="utf-8"))
                if r["template"] == key)


def _read_as_the_bank(path, row) -> tuple[int, Decimal, list[dict]]:
    """A template file read with nothing of doudi's: decoded with the template's encoding, its header
    and footer lines set aside, the records split at the separator, the amounts added up."""
    text = path.read_bytes().decode(row["encoding"])
    lines = text.split("\r\n")
    assert lines[-1] == ""  # every line ends with CRLF
    lines = lines[:-1]
    heads = len(row["header"].splitlines()) if row["header"] else 0
    foots = len(row["footer"].splitlines()) if row["footer"] else 0
    sep = "\t" if row["separator"] == "tab" else row["separator"]
    columns = row["columns"].split(";")
    records = [dict(zip(columns, line.split(sep), strict=True)) for line in lines[heads:len(lines) - foots]]
    total = sum((Decimal(r["金额"]) if "金额" in r else Decimal(r["金额分"]) / 100 for r in records), Decimal("0.00"))
    declared = [field for line in lines[:heads] + lines[len(lines) - foots:] for field in line.split(sep)]
    if "{总笔数}" in row["header"] + row["footer"]:
        assert str(len(records)) in declared
    if "{总金额}" in row["header"] + row["footer"]:
        assert f"{total:.2f}" in declared
    if "{总金额分}" in row["header"] + row["footer"]:
        assert str(int(total * 100)) in declared
    return len(records), total, records


def test_the_shipped_reference_writes_each_banks_template_file(month):
    """The month run with the shipped reference: beside the CSV, XLSX and pain.001, each bank's file in
    its template's layout, in the manifest with the count and sum read back from it."""
    manifest = _manifest(month)
    templates = {f["bank_code"]: f["format"] for f in manifest["files"] if f["format"].startswith("template:")}
    assert templates == {bank: f"template:{bank}_DF" for bank in BANKS}
    assert manifest["execution_date"] == "2020-01-10"
    assert manifest["debtor"] == {"account": "TEST-DEBTOR-0000000001", "bic": "TESTCNBJ"}
    for f in manifest["files"]:
        assert (month / "out" / MONTH / "payouts" / f["name"]).stat().st_mode & 0o077 == 0  # owner-only


@pytest.mark.parametrize("key", SHIPPED)
def test_every_shipped_template_reads_back_to_the_ledger(month, tmp_path, monkeypatch, key):
    """Every bank's batch in template `key`, read back with the template's encoding: per bank, its
    records and their sum are the ledger's payable lines for that bank (records, not lines: a record
    carries a person's regular line and price subsidy), to the fen; the ID column is the payee's."""
    payouts = _rewrite(month, tmp_path, monkeypatch, banks_template=key, DOUDI_PAYOUT_FORMATS="csv")
    row = _template(key)
    fmt = "pain001" if row["format"] == "pain001" else f"template:{key}"
    files = [f for f in _manifest(tmp_path)["files"] if f["format"] == fmt]
    ledger = _ledger_by_bank(month)
    assert {f["bank_code"] for f in files} == set(ledger) == set(BANKS)
    ids = {f"测试{n}": make_id("210102", "19400101", n) for n in range(1, 11)}
    for bank, (records, total) in ledger.items():
        (f,) = [f for f in files if f["bank_code"] == bank]
        if fmt == "pain001":
            root = ElementTree.parse(payouts / f["name"]).getroot()
            amounts = [Decimal(e.text) for e in root.iter(PAIN001 + "InstdAmt")]
            count, read = len(amounts), sum(amounts)
        else:
            count, read, rows = _read_as_the_bank(payouts / f["name"], row)
            if "证件号" in rows[0]:
                assert all(r["证件号"] == ids[r["户名"]] for r in rows)
        assert (count, read) == (records, total) == (f["count"], Decimal(f["sum"]))


def test_a_template_record_cap_splits_the_batch_into_numbered_files(month, tmp_path, monkeypatch):
    """ICBC's template capped at 2 records a file: ICBC's three records go out in two numbered parts,
    in every rendering alike (the CSV's parts are the template's), the other banks in one."""
    payouts = _rewrite(month, tmp_path, monkeypatch, banks_template="ICBC_DF",
                       edit=lambda text: text.replace("_{批次}{文件序号}.txt,5000", "_{批次}{文件序号}.txt,2"),
                       DOUDI_PAYOUT_FORMATS="csv")
    files = _manifest(tmp_path)["files"]
    icbc = [(f["name"], f["count"]) for f in files if f["bank_code"] == "ICBC"]
    assert icbc == [("2020-01_ICBC_R_01.csv", 2), ("ICBC_DF_202001_R01.txt", 2),
                    ("2020-01_ICBC_R_02.csv", 1), ("ICBC_DF_202001_R02.txt", 1)]
    row = _template("ICBC_DF")
    parts = [_read_as_the_bank(payouts / name, row) for name, _ in icbc if name.endswith(".txt")]
    assert (sum(p[0] for p in parts), sum(p[1] for p in parts)) == _ledger_by_bank(month)["ICBC"]
    assert [r["序号"] for r in parts[1][2]] == ["1"]  # numbered within its file
    assert all(f["part"] == 1 for f in files if f["bank_code"] != "ICBC")


@pytest.mark.parametrize("env, sentence", [
    ({"DOUDI_DEBTOR_ACCOUNT": "6222000000000000001"},
     "DOUDI_DEBTOR_ACCOUNT is a known placeholder (6222000000000000001): set it to the bureau's paying account"),
    ({"DOUDI_DEBTOR_ACCOUNT": ""}, "DOUDI_DEBTOR_ACCOUNT is not set: set it to the bureau's paying account"),
    ({"DOUDI_DEBTOR_BIC": ""}, "DOUDI_DEBTOR_BIC is not set: set it to the paying bank's code"),
    ({"DOUDI_DEBTOR_BIC": "ICBKCNBJSYG"}, "DOUDI_DEBTOR_BIC is a known placeholder (ICBKCNBJSYG)"),
])
def test_a_placeholder_paying_account_or_bank_is_refused(month, tmp_path, monkeypatch, env, sentence):
    """pain.001 (the default formats) names the paying account and bank: unset or a known placeholder,
    no payout file is written, and the sentence names the setting."""
    with pytest.raises(RunError, match=sentence.replace("(", r"\(").replace(")", r"\)")) as caught:
        _rewrite(month, tmp_path, monkeypatch, banks_template=None, **env)
    assert str(caught.value).count(". ") == 0 and str(caught.value).endswith("nothing was written.")
    payouts = tmp_path / "out" / MONTH / "payouts"
    assert not payouts.exists() or not [p for p in payouts.iterdir() if p.suffix in (".csv", ".xml", ".txt")]


def test_a_template_naming_the_payer_needs_the_account_without_pain001(month, tmp_path, monkeypatch):
    """CSV only and ICBC's template, whose header names the paying account: refused without it; with
    no template naming the payer and no pain.001, no paying account is needed."""
    with pytest.raises(RunError, match="DOUDI_DEBTOR_ACCOUNT is not set"):
        _rewrite(month, tmp_path, monkeypatch, banks_template="ICBC_DF", DOUDI_PAYOUT_FORMATS="csv",
                 DOUDI_DEBTOR_ACCOUNT="")
    payouts = _rewrite(month, tmp_path, monkeypatch, banks_template="BOC_DF", DOUDI_PAYOUT_FORMATS="csv",
                       DOUDI_DEBTOR_ACCOUNT="", DOUDI_DEBTOR_BIC="")
    assert "debtor" not in _manifest(tmp_path)
    assert sorted(p.name for p in payouts.glob("BOC*"))


def test_a_banks_file_without_the_template_column_writes_todays_files(month, tmp_path, monkeypatch):
    """banks.csv as before this column: the CSV, XLSX and pain.001 of each batch, and nothing else."""
    _rewrite(month, tmp_path, monkeypatch, banks_template=None)
    assert {f["format"] for f in _manifest(tmp_path)["files"]} == {"csv", "xlsx", "pain001"}


def test_the_execution_date_is_a_setting_and_a_rerun_is_byte_identical(month, tmp_path, monkeypatch):
    """DOUDI_EXECUTION_DAY=11 (a Saturday in January 2020): pain.001 asks for Monday 13th, as do the
    templates' {执行日期}; the month written again gives the same bytes, manifest included."""
    payouts = _rewrite(month, tmp_path, monkeypatch, banks_template="ICBC_DF", DOUDI_EXECUTION_DAY="11")
    assert _manifest(tmp_path)["execution_date"] == "2020-01-13"
    first = {p.name: p.read_bytes() for p in payouts.iterdir() if p.is_file()}
    pain = [data for name, data in first.items() if name.endswith(".pain001.xml")]
    assert pain and all(ElementTree.fromstring(d).find(f".//{PAIN001}ReqdExctnDt/{PAIN001}Dt").text == "2020-01-13"
                        for d in pain)
    template_files = [data for name, data in first.items() if name.startswith("ICBC_DF_")]
    assert template_files and all(d.decode("gb18030").split("\r\n")[0].endswith("|20200113") for d in template_files)
    _rewrite(month, tmp_path, monkeypatch, banks_template="ICBC_DF")
    assert _manifest(tmp_path)["execution_date"] == "2020-01-13"
    assert {p.name: p.read_bytes() for p in payouts.iterdir() if p.is_file()} == first


@pytest.mark.unit
def test_execution_date_moves_off_weekends_and_refuses_impossible_days():
    from pipelines.payout import execution_date

    assert execution_date("2020-01", 10) == "2020-01-10"  # a Friday
    assert execution_date("2020-02", 29 - 1) == "2020-02-28"
    assert execution_date("2020-03", 28) == "2020-03-30"  # Saturday the 28th -> Monday
    assert datetime.date.fromisoformat(execution_date("2020-02", 1)).weekday() == 0  # Saturday 1st -> Monday 3rd
    with pytest.raises(RunError, match="DOUDI_EXECUTION_DAY is 31: set it to a day of the month from 1 to 28"):
        execution_date("2020-01", 31)


@pytest.mark.unit
@pytest.mark.parametrize("change, sentence", [
    ({"columns": "账号;户名;金额;身份证"}, "column '身份证' is not a record field"),
    ({"columns": "账号;金额"}, "columns must include 账号, 户名 and 金额"),
    ({"separator": ";;"}, "separator ';;' must be one character"),
    ({"encoding": "big5"}, "encoding 'big5' must be one of gb18030, gbk, utf-8"),
    ({"header": "{笔数}"}, "{笔数} is not a batch field"),
    ({"file_name": "ICBC_{发放月份}.txt"}, "file_name 'ICBC_{发放月份}.txt' must be a plain file name naming {银行代码}、{批次}、{文件序号}"),
    ({"max_records": "0"}, "max_records '0' must be a whole number above 0"),
    ({"format": "xlsx"}, "format 'xlsx' must be one of delimited, pain001"),
])
def test_a_broken_template_row_is_refused_in_one_sentence(change, sentence):
    from pipelines.bank_templates import parse

    row = {**_template("ICBC_DF"), **change}
    with pytest.raises(RunError, match="bank_templates.csv line 2 \\(template ICBC_DF\\): " + _escape(sentence)):
        parse(row, 2)


@pytest.mark.unit
def test_a_bank_naming_an_undefined_template_is_refused(tmp_path):
    from pipelines.bank_templates import load

    shutil.copytree(DEFAULT_REFERENCE, tmp_path / "reference")
    banks = tmp_path / "reference" / "banks.csv"
    banks.write_text(banks.read_text(encoding="utf-8").replace("ICBC_DF", "ICBC_NEW"), encoding="utf-8")
    with pytest.raises(RunError, match="names template ICBC_NEW, which bank_templates.csv does not define"):
        load(tmp_path / "reference")
    assert set(load(DEFAULT_REFERENCE)) == set(BANKS)


def _escape(text: str) -> str:
    import re

    return re.escape(text)


def test_a_month_written_with_a_placeholder_payer_is_not_released(tmp_path, monkeypatch):
    """A month whose pain.001 names the old default account (as every month written before the payout
    stage refused it did): `doudi release` refuses it, naming the setting; nothing is marked released."""
    from pipelines import payout
    from pipelines.cli import main as doudi

    monkeypatch.setattr(payout, "check_debtor", lambda *args: None)  # as the payout stage wrote before
    monkeypatch.setenv("DOUDI_DEBTOR_ACCOUNT", "6222000000000000001")
    write_csv(roster_path(tmp_path / "inbox", MONTH, "tekun", "210102_tekun_202001.csv"), TEKUN_HEAD, [tekun()])
    run(tmp_path, MONTH)
    with pytest.raises(RunError, match=r"2020-01_ICBC_R_01.pain001.xml: its paying side \(DOUDI_DEBTOR_ACCOUNT\) is "
                                       r"a known placeholder \(6222000000000000001\), so the month is not released; "
                                       "set DOUDI_DEBTOR_ACCOUNT"):
        payout.release(context(tmp_path, MONTH), "测试员")
    assert not payout.released_marker(context(tmp_path, MONTH)).exists()
    assert doudi(["release", "--month", MONTH, "--out", str(tmp_path / "out"), "--warehouse",
                  str(tmp_path / "warehouse.duckdb"), "--by", "测试员"]) == 1
