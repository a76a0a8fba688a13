"""Every setting doudi reads, in one place, from environment variables with defaults.

Settings are operational (where files live, file-size limits, tolerances). Policy (amounts,
thresholds, dates) is never here: it lives in the reference tables under data/reference/.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_ROOT / "sql"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
DEFAULT_REFERENCE = PROJECT_ROOT / "data" / "reference"
PSEUDONYM_KEY_NAME = "pseudonym.key"  # beside the warehouse unless DOUDI_PSEUDONYM_KEY_FILE says where
PROGRAMS = ("dibao", "tekun", "orphan", "disability")  # the monthly programs
# temporary assistance (临时救助): one-off cases, not monthly; its folder may be absent (contract section 1)
ONE_OFF_PROGRAMS = ("temporary",)
ROSTER_PROGRAMS = PROGRAMS + ONE_OFF_PROGRAMS
MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


# Files and folders a doudi process creates are its owner's alone (0600 / 0700): see below.
OWNER_ONLY_UMASK = 0o077


def keep_new_files_owner_only() -> None:
    """From now on, every file and folder this process (and any process it starts) creates is
    owner-only: the warehouse's WAL, DuckDB's spill files, Parquet and workbooks under their
    temporary names, the analyst database while it is built, logs. Without it they are created with
    the operator's umask (0644 on most systems) and hold full ID numbers and accounts until, if ever,
    they are chmod-ed. Every entry point calls it first: the doudi command, the Airflow tasks
    (pipelines/tasks.py), bench/ and tools/; a script that calls doudi's stages should too."""
    os.umask(OWNER_ONLY_UMASK)


# Paying accounts and bank codes that are known stand-ins, never a bureau's own: doudi's old
# defaults and the shapes of a made-up number. A payout file naming one is refused.
KNOWN_PLACEHOLDERS = {
    "DOUDI_DEBTOR_ACCOUNT": ("6222000000000000001", "0", "000000", "123456789", "1234567890123456789"),
    "DOUDI_DEBTOR_BIC": ("ICBKCNBJSYG", "XXXXCNBJ", "XXXXXXXX", "AAAACNBJ"),
}


def placeholder_problem(setting: str, value: str) -> str | None:
    """Why `value` of a paying-side setting cannot go into a payout file, in a few words, or None."""
    if not value:
        return "is not set"
    if value.upper() in KNOWN_PLACEHOLDERS[setting] or len(set(value)) == 1:
        return f"is a known placeholder ({value})"
    return None


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


class RunError(RuntimeError):
    """A run cannot complete. The message is meant for the operator, in plain words."""


@dataclass(frozen=True)
class Settings:
    province_code: str = field(default_factory=lambda: _env("DOUDI_PROVINCE", "21"))
    # Largest roster file accepted, in bytes, and longest field, in characters.
    max_file_bytes: int = field(default_factory=lambda: int(_env("DOUDI_MAX_FILE_BYTES", str(2 << 30))))
    max_field_chars: int = field(default_factory=lambda: int(_env("DOUDI_MAX_FIELD_CHARS", "500")))
    # A county file whose row count swings more than this share from last month is rejected whole.
    max_row_swing: float = field(default_factory=lambda: float(_env("DOUDI_MAX_ROW_SWING", "0.5")))
    # Files smaller than this many rows last month are exempt from the swing check.
    row_swing_min_rows: int = field(default_factory=lambda: int(_env("DOUDI_ROW_SWING_MIN_ROWS", "50")))
    # Which amount is paid (computed or county-approved) and the tolerance of the comparison change
    # what is paid: they are policy_parameters.csv rows (pay_amount_source, approved_tolerance), not
    # settings; DOUDI_PAY_AMOUNT_SOURCE / DOUDI_APPROVED_TOLERANCE set stop the run (pipelines/reference.py).
    # Largest number of records in one payout file (banks cap batch sizes).
    max_records_per_file: int = field(
        default_factory=lambda: int(_env("DOUDI_MAX_RECORDS_PER_FILE", "100000"))
    )
    # Extra payout renderings besides the CSV that always exists: comma list of xlsx, pain001, csv_gbk.
    payout_formats: tuple[str, ...] = field(
        default_factory=lambda: tuple(
            f for f in _env("DOUDI_PAYOUT_FORMATS", "xlsx,pain001").split(",") if f.strip()
        )
    )
    # The paying finance bureau (debtor) of pain.001 files and of bank templates that name it. No
    # default for the account and the bank code: a file paying out of an account nobody chose is
    # refused (pipelines/payout.py check_debtor), and so is one of KNOWN_PLACEHOLDERS below.
    debtor_name: str = field(default_factory=lambda: _env("DOUDI_DEBTOR_NAME", "辽宁省财政厅社会保障资金专户"))
    debtor_account: str = field(default_factory=lambda: _env("DOUDI_DEBTOR_ACCOUNT", "").strip())
    debtor_bic: str = field(default_factory=lambda: _env("DOUDI_DEBTOR_BIC", "").strip())
    # The day of the payroll month the banks are asked to execute the transfers (pain.001
    # ReqdExctnDt, a template's {执行日期}); one on a Saturday or Sunday moves to the Monday after.
    # A fixed day, never the clock, so a rerun of the month writes the same bytes. 1 to 28.
    execution_day: int = field(default_factory=lambda: int(_env("DOUDI_EXECUTION_DAY", "10")))
    # Batch parts whose payout files are written side by side (threads, each on its own DuckDB
    # cursor; the name is from when they were processes), for months of at least this many records;
    # smaller months write one part after another. The files are the same bytes for any value.
    payout_processes: int = field(default_factory=lambda: int(_env("DOUDI_PAYOUT_PROCESSES", str(os.cpu_count() or 1))))
    payout_parallel_min_records: int = field(
        default_factory=lambda: int(_env("DOUDI_PAYOUT_PARALLEL_MIN_RECORDS", "50000"))
    )
    # Payable lines aggregated into payout records at a time (their aggregates cannot spill to disk);
    # a tuning knob, not policy: the files are the same bytes for any value.
    payout_chunk_lines: int = field(
        default_factory=lambda: int(_env("DOUDI_PAYOUT_CHUNK_LINES", "2000000"))
    )
    # A month with fewer roster rows than this runs each partitioned stage of the DAG as one task (the
    # partition `all`); a larger one is cut by city (pipelines/partitions.py). A task costs a process
    # and its imports whatever its size, so cutting pays only where the work outweighs that.
    # Operational only: the ledger and files are the same either way (tests/test_partitions.py).
    partition_min_rows: int = field(default_factory=lambda: int(_env("DOUDI_PARTITION_MIN_ROWS", "500000")))
    # DuckDB's memory limit. Unset (the default), it follows the machine and the stage: the process's
    # budget (DOUDI_MEMORY_BUDGET, 4GB, never more than half the machine's memory) less what the
    # process already holds when a stage connects, less a reserve for Python's own objects
    # (pipelines/sqlrun.duckdb_memory_limit_mb). Set, it is DuckDB's limit as given ("2GB").
    duckdb_memory_limit: str = field(default_factory=lambda: _env("DOUDI_DUCKDB_MEMORY_LIMIT", ""))
    memory_budget: str = field(default_factory=lambda: _env("DOUDI_MEMORY_BUDGET", "4GB"))
    duckdb_threads: int = field(default_factory=lambda: int(_env("DOUDI_DUCKDB_THREADS", "2")))


@dataclass(frozen=True)
class RunContext:
    """Where one payroll month's run reads and writes."""

    month: str
    inbox: str
    reference: Path
    out: Path
    warehouse: Path
    # a rerun of a month already released to the banks: corrections go out as a supplementary batch
    supplementary: bool = False
    settings: Settings = field(default_factory=Settings)

    def __post_init__(self) -> None:
        if not MONTH_RE.match(self.month or ""):
            raise RunError(f"payroll month must be YYYY-MM, got {self.month!r}")

    @classmethod
    def from_env(cls, month: str, supplementary: bool = False, **overrides: str) -> RunContext:
        values = {
            "inbox": _env("DOUDI_INBOX", str(PROJECT_ROOT / "var" / "inbox")),
            "reference": _env("DOUDI_REFERENCE", str(DEFAULT_REFERENCE)),
            "out": _env("DOUDI_OUT", str(PROJECT_ROOT / "var" / "out")),
            "warehouse": _env("DOUDI_WAREHOUSE", str(PROJECT_ROOT / "var" / "warehouse.duckdb")),
        }
        values.update({k: v for k, v in overrides.items() if v})
        return cls(
            month=month,
            inbox=values["inbox"],
            reference=Path(values["reference"]),
            out=Path(values["out"]),
            warehouse=Path(values["warehouse"]),
            supplementary=bool(supplementary),
        )

    @property
    def month_compact(self) -> str:
        return self.month.replace("-", "")

    @property
    def month_out(self) -> Path:
        return self.out / self.month

    @property
    def work_dir(self) -> Path:
        """Intermediate Parquet files passed between tasks; rebuilt by every run."""
        return self.month_out / "_work"

    @property
    def payouts_dir(self) -> Path:
        return self.month_out / "payouts"

    @property
    def reports_dir(self) -> Path:
        return self.month_out / "reports"

    @property
    def analyst_db(self) -> Path:
        """The analysts' database: the marts with pseudonyms and masks (DOUDI_ANALYST_DB)."""
        return Path(_env("DOUDI_ANALYST_DB", str(self.warehouse.with_name(self.warehouse.stem + "_analyst.duckdb"))))

    @property
    def pseudonym_key_file(self) -> Path:
        """The secret of the analysts' pseudonyms, kept outside both databases (DOUDI_PSEUDONYM_KEY_FILE)."""
        return Path(_env("DOUDI_PSEUDONYM_KEY_FILE", str(self.warehouse.with_name(PSEUDONYM_KEY_NAME))))

    def as_dict(self) -> dict[str, str]:
        return {
            "month": self.month,
            "inbox": str(self.inbox),
            "reference": str(self.reference),
            "out": str(self.out),
            "warehouse": str(self.warehouse),
            "supplementary": "1" if self.supplementary else "",
        }

    @classmethod
    def from_dict(cls, d: dict[str, str]) -> RunContext:
        return cls(
            month=d["month"],
            inbox=d["inbox"],
            reference=Path(d["reference"]),
            out=Path(d["out"]),
            warehouse=Path(d["warehouse"]),
            supplementary=bool(d.get("supplementary")),
        )
