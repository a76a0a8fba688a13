"""Fault injection for the crash tests (issue 8): `DOUDI_FAULT_AT=<point>` kills the process with
SIGKILL when it reaches that point, as a power cut or the OOM killer would. Unset, it costs a
dictionary lookup. The points are listed in FAULT_POINTS so the tests cover every one."""

from __future__ import annotations

import os
import signal

FAULT_POINTS = (
    "ingest.after_first_file",     # inside ingest: one file read, nothing written
    "io.before_rename",            # inside an atomic write: the temporary file is complete, not renamed
    "validate.before_write",       # validation done, its Parquet not written
    "integrity.before_write",
    "compute.before_write",
    "payout.after_first_file",     # one payout file renamed into place, the others not yet written
    "payout.before_manifest",      # every payout file written, the manifest not
    "publish.before_commit",       # inside the warehouse transaction, everything inserted, not committed
    "publish.after_commit",        # committed, not checkpointed: the month is in the warehouse's WAL
    "report.after_xlsx",           # one report written, the others not
    "after:payout",                # between stages: payout done, publish not started
)
# Also, around every recorded transition of a month's lifecycle (pipelines/lifecycle.py), covered by
# tests/test_lifecycle.py: "lifecycle.before:<state>" and "lifecycle.after:<state>" (for published,
# both inside publish's transaction, before its commit)


def checkpoint(point: str) -> None:
    if os.environ.get("DOUDI_FAULT_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)
