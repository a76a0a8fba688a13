"""DuckDB's memory limit follows the machine and the stage (issue 22): a process's budget, at most half
of the machine, less what the process holds when the stage connects, less a reserve for Python."""

from __future__ import annotations

import pytest

from pipelines.settings import RunError
from pipelines.sqlrun import DUCKDB_FLOOR_MB, PYTHON_RESERVE_MB, connect, duckdb_memory_limit_mb, size_mb
from tests.helpers import context

pytestmark = pytest.mark.unit


def memory_limit_mb(con) -> int:
    """The connection's DuckDB memory limit, which DuckDB reports in its own units ("256.0 MiB")."""
    return size_mb(con.execute("SELECT current_setting('memory_limit')").fetchone()[0].replace(" ", ""))


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
    limit = memory_limit_mb(con)
    con.close()
    # at most the budget less the reserve
    assert limit <= 1024 - PYTHON_RESERVE_MB
    monkeypatch.setenv("DOUDI_DUCKDB_MEMORY_LIMIT", "3GB")
    con = connect(context(tmp_path, "2020-01"))
    # "3GB" to DuckDB is 3 × 10⁹ bytes, shown as "2.7 GiB"
    assert 2700 <= memory_limit_mb(con) <= 3072
    con.close()


def test_every_open_of_the_warehouse_outside_a_stage_takes_the_limit_too(tmp_path, monkeypatch):
    """A read-only open (verify, status, the inbox checks) and a clearance's or a receivable's write
    go through sqlrun.open_database: without it DuckDB would take 80 % of the machine."""
    import duckdb

    from pipelines.clearance import record_clearances
    from pipelines.lifecycle import open_warehouse

    monkeypatch.delenv("DOUDI_DUCKDB_MEMORY_LIMIT", raising=False)
    monkeypatch.setenv("DOUDI_MEMORY_BUDGET", "1GB")
    ctx = context(tmp_path, "2020-01")
    duckdb.connect(str(ctx.warehouse)).close()
    con = open_warehouse(ctx, read_only=True)
    limit = memory_limit_mb(con)
    con.close()
    assert limit <= 1024 - PYTHON_RESERVE_MB
    # a clearance opens the warehouse to write: the connection it gets has the limit when it gets it
    import pipelines.sqlrun as sqlrun

    limits, real_open = [], sqlrun.open_database

    def spy(*args, **kwargs):
        con = real_open(*args, **kwargs)
        limits.append(memory_limit_mb(con))
        return con

    monkeypatch.setattr(sqlrun, "open_database", spy)
    with pytest.raises(RunError):  # nothing was held: the clearance is refused, after the open
        record_clearances(ctx.warehouse, "2020-01", [{"program": "dibao", "id_number": "x", "hold_reason": "y"}],
                          "张三")
    assert limits and all(mb <= 1024 - PYTHON_RESERVE_MB for mb in limits)
