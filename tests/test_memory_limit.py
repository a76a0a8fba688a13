"""DuckDB's memory limit follows the machine and the stage (issue 22): a process's budget, at most half
of the machine, less what the process holds when the stage connects, less a reserve for Python."""

from __future__ import annotations

import pytest

from pipelines.settings import RunError
from pipelines.sqlrun import DUCKDB_FLOOR_MB, PYTHON_RESERVE_MB, connect, duckdb_memory_limit_mb, size_mb
from tests.helpers import context

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text,mb", [("4GB", 4096), ("512MB", 512), ("2.5 GiB", 2560), ("1T", 1048576),
                                     ("4gb", 4096)])
def test_sizes_are_read_as_people_write_them(text, mb):
    assert size_mb(text) == mb


def test_a_size_that_is_not_one_is_named():
    with pytest.raises(RunError, match="memory size 'lots' is not a size such as 4GB"):
        size_mb("lots")


def test_the_limit_is_the_budget_less_what_the_process_holds():
    assert duckdb_memory_limit_mb("4GB", machine_mb=24576, rss_mb=600) == 4096 - 600 - PYTHON_RESERVE_MB


def test_a_small_machine_gives_half_its_memory_and_a_full_process_the_floor():
    assert duckdb_memory_limit_mb("4GB", machine_mb=4096, rss_mb=300) == 2048 - 300 - PYTHON_RESERVE_MB
    assert duckdb_memory_limit_mb("4GB", machine_mb=24576, rss_mb=3900) == DUCKDB_FLOOR_MB


def test_a_run_connection_takes_the_computed_limit_unless_one_is_set(tmp_path, monkeypatch):
    monkeypatch.delenv("DOUDI_DUCKDB_MEMORY_LIMIT", raising=False)
    monkeypatch.setenv("DOUDI_MEMORY_BUDGET", "1GB")
    con = connect(context(tmp_path, "2020-01"))
    limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    con.close()
    # DuckDB reports the limit in its own units (e.g. "256.0 MiB"): at most the budget less the reserve
    assert size_mb(limit.replace(" ", "")) <= 1024 - PYTHON_RESERVE_MB
    monkeypatch.setenv("DOUDI_DUCKDB_MEMORY_LIMIT", "3GB")
    con = connect(context(tmp_path, "2020-01"))
    # "3GB" to DuckDB is 3 × 10⁹ bytes, shown as "2.7 GiB"
    assert 2700 <= size_mb(con.execute("SELECT current_setting('memory_limit')").fetchone()[0]) <= 3072
    con.close()
