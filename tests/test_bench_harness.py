"""The benchmark harness (bench/run.py) keeps what a size measured when the size does not finish: a
25M-row run is hours long, and the stage it dies in is the figure the next engineer needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pipelines.stages import STAGES
from tests.conftest import PROJECT

sys.path.insert(0, str(PROJECT / "bench"))
import run as bench_run  # noqa: E402


def test_a_killed_size_leaves_its_finished_stages_and_how_it_ended(tmp_path):
    # SIGKILL inside integrity, as the OOM killer would: the child cannot report, the parent must
    env = dict(os.environ, DOUDI_BENCH_DIR=str(tmp_path), DOUDI_FAULT_AT="integrity.before_write")
    proc = subprocess.run([sys.executable, str(PROJECT / "bench" / "run.py"), "--rows", "3000", "--mode", "single"],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "the 3000-row run failed" in proc.stderr
    result = json.loads((tmp_path / "results" / "3000.json").read_text(encoding="utf-8"))
    assert result["finished"] is False and result["exit_code"] == -9
    assert result["error"] == "killed by signal 9" and result["failed_at"] == "after validate"
    assert result["stages_done"] == [s.name for s in STAGES[:3]]  # check_reference, ingest, validate
    assert all(result["stages_seconds"][s] > 0 for s in ("ingest", "validate"))
    assert result["stages_peak_rss_mb"]["validate"] > 50
    assert not (tmp_path / "results" / "latest.json").exists()  # no finished size to report


@pytest.mark.unit
def test_a_stage_that_raises_reports_its_error():
    stdout = "\n".join([
        "BENCH-STAGE " + json.dumps({"stage": "ingest", "seconds": 4.0, "peak_rss_mb": 900}),
        "BENCH-STAGE " + json.dumps({"stage": "validate", "seconds": 3.0, "peak_rss_mb": 700}),
        "BENCH-STAGE " + json.dumps({"stage": "validate", "seconds": 7.5, "peak_rss_mb": 800}),  # a 2nd partition
        "BENCH-FAILED " + json.dumps({"failed_at": "integrity", "error": "OutOfMemoryException: 4 GB",
                                      "seconds_until_failure": 20.0}),
    ])
    result = bench_run.failed_run(25_000_000, "partitioned", 1, stdout)
    assert result["failed_at"] == "integrity" and result["error"].startswith("OutOfMemoryException")
    assert result["stages_seconds"] == {"ingest": 4.0, "validate": 7.5}
    assert result["stages_peak_rss_mb"] == {"ingest": 900, "validate": 800}
    assert result["stages_done"] == ["ingest", "validate"]
