"""Helpers for tests: hand-written inboxes in the contract's format, and warehouse queries."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import duckdb
import numpy as np

from pipelines.idnumbers import check_digits
from pipelines.monthly import run_month
from pipelines.settings import DEFAULT_REFERENCE, RunContext

DIBAO_HEADER = ["行政区划代码", "姓名", "公民身份号码", "性别", "城乡类别", "开户银行", "银行账号", "户名", "纳入年月",
                "终止年月", "核定金额", "家庭编号", "与户主关系", "保障人口数", "家庭月总收入", "分类施保类别"]


def make_id(region: str, birth: str, seq: int, male: bool = True) -> str:
    """A valid 18-character ID number: region, birth date YYYYMMDD, sequence (odd = male), check digit."""
    s = seq * 2 + (1 if male else 0)
    body = f"{region}{birth}{s % 1000:03d}"
    return body + str(check_digits(np.array([body]))[0])


def write_csv(path: Path, header: list[str], rows: list[list], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding=encoding) as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def roster_path(inbox: Path, month: str, program: str, name: str) -> Path:
    return inbox / month / "rosters" / program / name


def context(tmp: Path, month: str, inbox: Path | None = None, reference: Path | None = None) -> RunContext:
    return RunContext(month=month, inbox=str(inbox or tmp / "inbox"), reference=reference or DEFAULT_REFERENCE,
                      out=tmp / "out", warehouse=tmp / "warehouse.duckdb")


def run(tmp: Path, month: str, **kw) -> dict:
    return run_month(context(tmp, month, **kw))


def query(warehouse: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def copy_reference(tmp: Path) -> Path:
    dest = tmp / "reference"
    shutil.copytree(DEFAULT_REFERENCE, dest)
    return dest

