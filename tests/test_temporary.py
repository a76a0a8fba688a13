"""Temporary assistance (临时救助, issue 19): a fifth program, one-off and event-driven.

Policy is data (data/reference/temporary_assistance.csv, contract section 3): its rows are checked at
load like the other tables, and the `temporary` fund key is required wherever the policy is.
"""

from __future__ import annotations

import pytest

from pipelines.reference import check_reference
from pipelines.settings import RunError
from tests.helpers import context, copy_reference

TEMP_HEADER = "region_code,event_type,standard_months,township_cap,county_cap,case_by_case_threshold," \
              "max_per_12_months,version,valid_from\n"


def _refused(tmp_path, ref, month="2020-01") -> str:
    with pytest.raises(RunError) as exc:
        check_reference(context(tmp_path, month, reference=ref))
    return str(exc.value)


def _append(ref, name, line):
    with open(ref / name, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


# --- step 1: the policy table ----------------------------------------------------------------------

def test_the_shipped_policy_is_accepted(tmp_path):
    assert check_reference(context(tmp_path, "2020-01"))["problems"] == 0


@pytest.mark.parametrize("line,words", [
    ("2101,因病,0,2000,5000,5000,2,v2,2020-02", "standard_months 0 is not a number above 0"),
    ("2101,因病,2,6000,5000,5000,2,v2,2020-02", "township_cap 6000.00 is above county_cap 5000.00"),
    ("2101,因病,2,2000,5000,,2,v2,2020-02", "case_by_case_threshold None is not an amount above 0"),
    ("2101,因病,2,2000,5000,5000,0,v2,2020-02", "max_per_12_months 0 is not a whole number of 1 or more"),
    ("2101,失火,2,2000,5000,5000,1,v2,2020-02", "event_type must be one of"),
    ("3101,因病,2,2000,5000,5000,1,v2,2020-02", "inside province 21"),
    ("21,因病,3,2000,5000,5000,2,v2,2020-01", "has 2 versions of 21/因病 with valid_from 2020-01"),
])
def test_a_broken_policy_row_is_refused_naming_it(tmp_path, line, words):
    ref = copy_reference(tmp_path)
    _append(ref, "temporary_assistance.csv", line)
    message = _refused(tmp_path, ref)
    assert "temporary_assistance.csv" in message and words in message, message


def test_the_policy_needs_its_own_fund_key(tmp_path):
    ref = copy_reference(tmp_path)
    path = ref / "fund_shares.csv"
    path.write_text("".join(ln for ln in path.read_text(encoding="utf-8").splitlines(keepends=True)
                            if not ln.startswith("temporary,")), encoding="utf-8")
    assert "fund_shares.csv has no temporary row in force for payroll 2020-01 covering county 210102" \
        in _refused(tmp_path, ref)
    # a folder without the policy table pays no temporary assistance, and needs no such key
    (ref / "temporary_assistance.csv").unlink()
    assert check_reference(context(tmp_path, "2020-01", reference=ref))["problems"] == 0
