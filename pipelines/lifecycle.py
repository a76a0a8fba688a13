"""A payroll month's life as an explicit state machine, recorded in the warehouse (issue 17).

    computed → published → verified → released → returns_loaded → closed

A released month corrected by a supplementary run goes through the sub-states
`supplementary_computed → supplementary_published → supplementary_verified` back to `released`
(the row names its batch, S1, S2, ...). Every transition is one append-only row of `month_state`
(month, from, to, supplement, who, when, run id, the manifest's SHA-256 when files are concerned),
written only by `record_transition`, which refuses a transition the table below does not allow.

- `computed`: the month's payout files are on disk (recorded by the payout stage).
- `published`: the month is in the warehouse (recorded inside publish's transaction, so the two
  are one fact). A month whose publish failed stays `computed`: its payout folder carries
  NOT_PUBLISHED_MARKER, and nothing releases it (release needs `published` or `verified`, with the
  manifest that was published, verified against the warehouse).
- `verified`: `doudi verify` (or release, which verifies first) found the files equal to the ledger.
- `released`: `doudi release` (released.json is written first: a kill between the two leaves the
  files protected, and the next `doudi release` records what is missing).
- `returns_loaded`: bank returns naming the month's payment refs were loaded (record_returns_loaded).
- `closed`: `doudi close`; nothing changes the month after that.

Also here: the rule that months run in order (begin_run), and the lock that lets one run of a
month at a time (month_lock). Errors are one sentence for the operator (RunError).
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import errno
import fcntl
import getpass
import json
import os
import socket
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from pipelines import artefacts
from pipelines.catalog import lock_holder, tables_in
from pipelines.faults import checkpoint
from pipelines.io import (
    PRIVATE_FILE_MODE,
    ensure_dir,
    inbox_path,
    list_files,
    sha256_bytes,
    sha256_file,
    write_json_atomic,
)
from pipelines.months import shift_month
from pipelines.settings import ROSTER_PROGRAMS, RunContext, RunError

TRANSITIONS: dict[str | None, frozenset[str]] = {
    None: frozenset({"computed"}),
    # a month not yet released may be rerun (computed again) as often as needed
    "computed": frozenset({"computed", "published"}),
    "published": frozenset({"computed", "verified"}),
    "verified": frozenset({"computed", "verified", "released"}),
    "released": frozenset({"returns_loaded", "supplementary_computed"}),
    "returns_loaded": frozenset({"returns_loaded", "supplementary_computed", "closed"}),
    # returns may arrive while a supplement is prepared: the supplement is then run again
    "supplementary_computed": frozenset({"supplementary_computed", "supplementary_published", "returns_loaded"}),
    "supplementary_published": frozenset({"supplementary_computed", "supplementary_verified", "returns_loaded"}),
    "supplementary_verified": frozenset({"supplementary_computed", "supplementary_verified", "released",
                                         "returns_loaded"}),
    "closed": frozenset(),
}
STATES = tuple(s for s in TRANSITIONS if s is not None)
RELEASABLE = ("published", "verified", "supplementary_published", "supplementary_verified")
# states in which the month's payout files went to the banks
AFTER_RELEASE = ("released", "returns_loaded", "supplementary_computed", "supplementary_published",
                 "supplementary_verified", "closed")

NOT_PUBLISHED_MARKER = "NOT_PUBLISHED_DO_NOT_SEND.txt"
MONTH_STATE_COLUMNS = ("seq BIGINT, payroll_month VARCHAR, from_state VARCHAR, to_state VARCHAR, "
                       "supplement VARCHAR, who VARCHAR, recorded_at VARCHAR, run_id VARCHAR, manifest_sha256 VARCHAR, "
                       "note VARCHAR")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def operator(by: str | None = None) -> str:
    """Who acts: --by, else DOUDI_OPERATOR, else the OS user."""
    return by or os.environ.get("DOUDI_OPERATOR") or getpass.getuser()


# ---------------------------------------------------------------- the recorded state

def ensure_table(con) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS month_state ({MONTH_STATE_COLUMNS})")


def _has_table(con, name: str, database: str | None = None) -> bool:
    sql = "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?"
    params = [name]
    if database:
        sql += " AND database_name = ?"
        params.append(database)
    return bool(con.execute(sql, params).fetchone()[0])


def state_of(con, ctx: RunContext, month: str | None = None, database: str | None = None) -> dict:
    """The month's current state: {state, supplement, manifest_sha256 (as published)}.
    A warehouse from before month_state: a month in run_log is `published`; released.json, `released`."""
    month = month or ctx.month
    prefix = f"{database}." if database else ""
    state = {"state": None, "supplement": None, "manifest_sha256": None}
    if _has_table(con, "month_state", database):
        row = con.execute(f"SELECT to_state, supplement FROM {prefix}month_state WHERE payroll_month = ? "
                          "ORDER BY seq DESC LIMIT 1", [month]).fetchone()
        if row:
            state["state"], state["supplement"] = row
            published = con.execute(
                f"SELECT manifest_sha256 FROM {prefix}month_state WHERE payroll_month = ? AND to_state IN "
                "('published', 'supplementary_published') ORDER BY seq DESC LIMIT 1", [month]).fetchone()
            state["manifest_sha256"] = published[0] if published else None
            return state
    if _has_table(con, "run_log", database):
        row = con.execute(f"SELECT manifest_sha256 FROM {prefix}run_log WHERE payroll_month = ? "
                          "ORDER BY published_at DESC LIMIT 1", [month]).fetchone()
        if row:
            state.update(state="published", manifest_sha256=row[0])
    if artefacts.released_marker(ctx, month).exists():
        state["state"] = "released"
    return state


def published_months(con, database: str | None = None) -> set[str]:
    prefix = f"{database}." if database else ""
    months: set[str] = set()
    if _has_table(con, "run_log", database):
        months |= {r[0] for r in con.execute(f"SELECT DISTINCT payroll_month FROM {prefix}run_log").fetchall()}
    if _has_table(con, "month_state", database):
        months |= {r[0] for r in con.execute(f"SELECT DISTINCT payroll_month FROM {prefix}month_state "
                                             "WHERE to_state = 'published'").fetchall()}
    return months


def record_transition(target: RunContext | Path, month: str, to_state: str, by: str | None = None, *,
                      supplement: str | None = None, run_id: str | None = None,
                      manifest_sha256: str | None = None, note: str | None = None, con=None,
                      out: Path | None = None) -> dict:
    """Append one transition of `month` to `month_state`, after checking that the month's current
    state allows it. `target` is the RunContext (or the warehouse path); `con`, an open read-write
    connection to the warehouse (publish passes its transaction's), else one is opened for it.

    The hook for bank returns is record_returns_loaded below."""
    if to_state not in STATES:
        raise RunError(f"unknown month state {to_state!r}; the states are {', '.join(STATES)}")
    ctx = target if isinstance(target, RunContext) else RunContext.from_env(month, warehouse=str(target),
                                                                             out=str(out or ""))
    if month != ctx.month:
        ctx = RunContext.from_dict(dict(ctx.as_dict(), month=month))
    own = con is None
    if own:
        con = open_warehouse(ctx)
    try:
        ensure_table(con)
        current = state_of(con, ctx, month)
        allowed = TRANSITIONS.get(current["state"], frozenset())
        if to_state not in allowed:
            raise RunError(refusal(month, current["state"], to_state))
        checkpoint(f"lifecycle.before:{to_state}")
        if own:
            con.execute("BEGIN TRANSACTION")
        seq = con.execute("SELECT coalesce(max(seq), 0) + 1 FROM month_state").fetchone()[0]
        row = {"seq": seq, "payroll_month": month, "from_state": current["state"], "to_state": to_state,
               "supplement": supplement if supplement is not None else (
                   current["supplement"] if to_state.startswith("supplementary") else None),
               "who": operator(by), "recorded_at": _now(), "run_id": run_id, "manifest_sha256": manifest_sha256,
               "note": note}
        con.execute("INSERT INTO month_state BY NAME SELECT * FROM (SELECT " +
                    ", ".join(f"?::VARCHAR AS {k}" if k != "seq" else "?::BIGINT AS seq" for k in row) + ")",
                    list(row.values()))
        if own:
            con.execute("COMMIT")
        checkpoint(f"lifecycle.after:{to_state}")
    finally:
        if own:
            con.close()
    if own:  # publish's own transition reaches analysts with the rebuilt analyst database
        from pipelines.analyst import refresh_month_state

        if not refresh_month_state(ctx) and ctx.analyst_db.exists():
            print(f"note: {month} is {to_state}; the analyst database was busy and shows it at the next "
                  f"transition or publish", file=sys.stderr)
    return row


def refusal(month: str, current: str | None, to_state: str) -> str:
    """Why a transition is refused, and what to do instead, in one sentence."""
    now = current or "never run"
    if current == "closed":
        return f"{month} is closed: no run, supplement, release or return changes it any more"
    if to_state in ("released",):
        if current in AFTER_RELEASE and current != "supplementary_verified":
            return f"{month} was already released (its state is {now}); nothing is released twice"
        return (f"{month} cannot be released: its state is {now}, and only a month whose publish succeeded "
                f"(published or verified) is released; rerun it (doudi run --month {month}) and release it then")
    if to_state == "verified" and current in (None, "computed"):
        return (f"{month} was never published (its state is {now}: the last run stopped before the warehouse "
                f"had it), so its payout files are not to be sent; rerun it with doudi run --month {month}")
    if to_state in ("computed", "published") and current in AFTER_RELEASE:
        return (f"{month} was released to the banks (its state is {now}); its payout files are never rewritten: "
                f"pay corrections with doudi run --month {month} --supplementary")
    if to_state.startswith("supplementary") and current not in AFTER_RELEASE:
        return f"{month} has not been released (its state is {now}): rerun it normally (without --supplementary)"
    if to_state == "closed":
        return f"{month} cannot be closed: its state is {now}, and a month is closed once its bank returns are loaded"
    return f"{month} cannot go from {now} to {to_state}"


def record_returns_loaded(ctx: RunContext, months, by: str | None = None) -> list[str]:
    """The hook of bank-return loading: each payroll month whose refs the returns named, if it was
    released, moves to (or stays in) returns_loaded. Months never released are left as they are
    (refusing their returns is the loader's rule). Returns the months recorded."""
    recorded = []
    for month in sorted(set(months)):
        con = open_warehouse(ctx, read_only=True)
        try:
            state = state_of(con, ctx, month)["state"]
        finally:
            con.close()
        if "returns_loaded" in TRANSITIONS.get(state, frozenset()):
            record_transition(ctx, month, "returns_loaded", by, run_id=run_id_for(ctx, fresh=True))
            recorded.append(month)
    return recorded


# ---------------------------------------------------------------- the warehouse, with operator errors

def open_warehouse(ctx: RunContext, read_only: bool = False):
    """The warehouse, read-write (created owner-only if new) or read-only, with a one-sentence error
    when another process holds it."""
    from pipelines.sqlrun import connect, open_database

    if not read_only:
        ensure_dir(ctx.warehouse.parent)
    from pipelines.warehouse_months import point_views_here, repoint_views, views_elsewhere

    con = None
    try:
        # read-only: no macros (they are created in the database they run in), the memory share only
        con = open_database(ctx.warehouse, True, ctx.settings) if read_only else connect(ctx, path=ctx.warehouse)
        if read_only and views_elsewhere(con, ctx.warehouse):  # a warehouse copied or restored with its files
            con.close()
            point_views_here(ctx.warehouse)
            con = open_database(ctx.warehouse, True, ctx.settings)
        if not read_only:
            os.chmod(ctx.warehouse, PRIVATE_FILE_MODE)
            repoint_views(con, ctx.warehouse)  # a warehouse copied or restored with its month files
    except Exception as exc:  # duckdb.IOException: a conflicting lock, a full disk
        if con is not None:
            con.close()
        message = operational_message(exc, ctx)
        if message:
            raise RunError(message) from exc
        raise
    return con


def operational_message(exc: BaseException, ctx: RunContext | None, command: str = "run") -> str | None:
    """One sentence for a failure of the machine rather than of the data: the warehouse held by
    another process, a full disk, a read-only disk. None when the exception is none of these."""
    text = str(exc)
    month = ctx.month if ctx else "the month"
    if command == "run":
        after = (f"nothing of {month} was published and its payout files, if any, are marked "
                 f"{NOT_PUBLISHED_MARKER} and cannot be released; {{fix}}, then rerun doudi run --month {month}")
    else:
        after = f"nothing was changed; {{fix}}, then run doudi {command} --month {month} again"
    if "Could not set lock" in text or "Conflicting lock" in text:
        holder = lock_holder(text)
        where = ctx.warehouse if ctx else "the warehouse"
        fix = ("close that program or connection (analysts read the analyst database, not the warehouse) "
               "or wait for that run to end")
        return f"the warehouse {where} is held open by {holder}: " + after.format(fix=fix)
    no_space = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
    if no_space or "No space left on device" in text or "disk is full" in text.lower():
        return "the disk is full (No space left on device): " + after.format(
            fix="free space where the warehouse and the outputs are (df -h)")
    if (isinstance(exc, OSError) and exc.errno == errno.EROFS) or "Read-only file system" in text:
        return "the disk is read-only (Read-only file system): " + after.format(
            fix="make the warehouse's and the outputs' folders writable")
    return None


# ---------------------------------------------------------------- the start of a run: order and state

def begin_path(ctx: RunContext) -> Path:
    return artefacts.lifecycle_begin(ctx)


def run_id_for(ctx: RunContext, fresh: bool = False) -> str:
    """The run's id: Airflow's dag run id in a task, else the one begin_run chose for `doudi run`."""
    airflow = os.environ.get("AIRFLOW_CTX_DAG_RUN_ID")
    if airflow:
        return airflow
    if not fresh and begin_path(ctx).exists():
        return json.loads(begin_path(ctx).read_text(encoding="utf-8"))["run_id"]
    # in groups of four: sixteen hex digits now and then hold a run of 12+ decimal digits, which
    # every scan for account numbers in the reports and the analyst database rightly flags
    hex16 = uuid.uuid4().hex[:16]
    return "-".join(hex16[i:i + 4] for i in range(0, 16, 4))


def run_info(ctx: RunContext) -> dict:
    """What begin_run wrote for the stages that record transitions (run id, who)."""
    if begin_path(ctx).exists():
        return json.loads(begin_path(ctx).read_text(encoding="utf-8"))
    return {"run_id": run_id_for(ctx), "by": operator(), "first_month": False}


def has_rosters(ctx: RunContext, month: str) -> bool:
    root = inbox_path(ctx.inbox) / month / "rosters"
    return any(list_files(root / p) for p in ROSTER_PROGRAMS)


def begin_run(ctx: RunContext, first_month: bool = False, by: str | None = None) -> dict:
    """Before any stage: may this month be run now? It may not if it was released (only a
    supplementary run then), or if the months before it were not run: the month before has rosters
    in the inbox but was never published (its entitlements would be paid as arrears now, and
    again when it runs). The first run of an empty warehouse starts its history; if the month
    before has rosters, only with first_month (--first-month), which is recorded."""
    month, previous = ctx.month, shift_month(ctx.month, -1)
    state, published, publication, dependents = {"state": None}, set(), None, []
    if ctx.warehouse.exists():
        con = open_warehouse(ctx, read_only=True)
        try:
            state = state_of(con, ctx)
            published = published_months(con)
            publication = last_publication(con, month)
            dependents = built_on(con, month)
        finally:
            con.close()
    target = "supplementary_computed" if ctx.supplementary else "computed"
    if target not in TRANSITIONS.get(state["state"], frozenset()):
        raise RunError(refusal(month, state["state"], target))
    start = min(published) if published else None
    note = None
    if not ctx.supplementary and month not in published:
        if start and month < start:
            raise RunError(f"{month} comes before {start}, the first month of this warehouse's history; months "
                           f"run in order, so an earlier month needs a warehouse of its own")
        later = sorted(m for m in published if m > month)
        if later:
            # the later month paid this month's entitlements as arrears, from the ledger as it then was
            raise RunError(f"{later[0]}, a later month, is already published and paid {month}'s entitlements as "
                           f"arrears where its rosters listed them: {month} cannot be run after it (it would pay them "
                           f"again); a correction for {month} goes into the rosters of the next month to run, which "
                           "pay it as arrears")
        if first_month and start and start != month:
            raise RunError(f"this warehouse's history already starts at {start}: --first-month starts a history "
                           "only in an empty warehouse (run the months in order instead)")
        if previous not in published and has_rosters(ctx, previous):
            if start is None and first_month:
                note = f"first month of the history ({previous} is in the inbox but not paid here)"
            elif start is None:
                raise RunError(f"the inbox holds rosters for {previous} but this warehouse has no month yet: run "
                               f"{previous} first, or start the history at {month} with --first-month")
            else:
                raise RunError(f"{previous} has rosters in the inbox but was never published: run {previous} "
                               f"before {month} (months run in order; {month} would pay {previous}'s "
                               "entitlements as arrears, and again when it runs)")
        elif start is None:
            note = "first month of the history"
    if not ctx.supplementary and month in published and dependents:
        changed = changed_inputs(ctx, publication)
        if changed:
            raise RunError(f"{dependents[0]} was computed from {month}'s ledger as published: {month} may be rerun "
                           f"only on the inputs it was published with, and {changed}; a correction for {month} goes "
                           f"into the rosters of the next month to run (which pay it as arrears), or into a "
                           f"supplementary run once {month} is released")
    info = {"month": month, "run_id": run_id_for(ctx, fresh=True), "by": operator(by), "first_month": bool(note),
            "note": note, "started_at": _now(), "from_state": state["state"]}
    write_json_atomic(begin_path(ctx), info)
    return info


# ---------------------------------------------------------------- a rerun under later months

def last_publication(con, month: str) -> dict | None:
    """What the month's latest publish recorded in run_log: its roster files, reference files and
    ledger (SHA-256s), or None for a month never published (or published before run_log)."""
    if not _has_table(con, "run_log"):
        return None
    row = con.execute("SELECT input_files, reference_files, ledger_sha256 FROM run_log WHERE payroll_month = ? "
                      "ORDER BY published_at DESC, rowid DESC LIMIT 1", [month]).fetchone()
    if row is None:
        return None
    return {"input_files": json.loads(row[0] or "{}"), "reference_files": json.loads(row[1] or "{}"),
            "ledger_sha256": row[2]}


def roster_fingerprints(ctx: RunContext) -> dict[str, str]:
    """{rosters/<program>/<file>: SHA-256} of the month's roster files in the inbox, named as
    ingest names them (run_log.input_files)."""
    root = inbox_path(ctx.inbox) / ctx.month / "rosters"
    return {f"rosters/{program}/{f.name}": sha256_bytes(f.read_bytes())
            for program in ROSTER_PROGRAMS for f in list_files(root / program)}


def changed_inputs(ctx: RunContext, published: dict | None) -> str | None:
    """How the month's rosters and reference data differ from those of its last publish, in words
    (None: the same, so the rerun reproduces the published ledger)."""
    from pipelines.sqlrun import reference_fingerprints

    if published is None:
        return None
    words = []
    for what, then, now in (("roster file", published["input_files"], roster_fingerprints(ctx)),
                            ("reference file", published["reference_files"], reference_fingerprints(ctx))):
        for name in sorted(set(then) | set(now)):
            if name not in then:
                words.append(f"{what} {name} is new since")
            elif name not in now:
                words.append(f"{what} {name} is gone since")
            elif then[name] != now[name]:
                words.append(f"{what} {name} has changed since")
    if not words:
        return None
    return ", ".join(words[:3]) + (f" (and {len(words) - 3} more)" if len(words) > 3 else "")


def check_rerun_reproduces_ledger(ctx: RunContext, con) -> None:
    """At publish, the backstop of begin_run's check: a month rerun while a publish built on its
    ledger stands (built_on) must make the ledger it was published with (a registry extract, a
    setting or the code may change it too). Otherwise the later month's arrears and this month's
    new lines would pay the same months twice: nothing is published, and the month stays
    unreleasable."""
    if ctx.supplementary:
        return
    dependents = built_on(con, ctx.month)
    published = last_publication(con, ctx.month) if dependents else None
    if published is None or published["ledger_sha256"] == sha256_file(artefacts.ledger(ctx)):
        return
    raise RunError(f"{ctx.month}'s rerun changes the ledger it was published with, but {dependents[0]} was computed "
                   f"from that ledger: nothing was published, and {ctx.month} can be released only after a rerun on "
                   f"the inputs it was published with; a correction for {ctx.month} goes into the rosters of the "
                   "next month to run, which pay it as arrears")


def built_on(con, month: str) -> list[str]:
    """The publishes computed from this month's published ledger, in words: every later month (its
    arrears are due minus what this month paid), and a supplementary run of an earlier month that
    left a service month unpaid because this month had paid it (paid_by_later_payroll)."""
    words = [f"{m}, a later month," for m in sorted(m for m in published_months(con) if m > month)]
    if "finding" in tables_in(con):  # a view over the month files
        supplements = con.execute(
            "SELECT DISTINCT payroll_month FROM finding WHERE finding_type = 'paid_by_later_payroll' "
            "AND payroll_month < ? AND list_contains(CAST(json_extract(evidence, '$.paid_by') AS VARCHAR[]), ?) "
            "ORDER BY 1", [month, month]).fetchall()
        words += [f"the supplementary run of {m}" for (m,) in supplements]
    return words


# ---------------------------------------------------------------- one run of a month at a time

def lock_path(ctx: RunContext) -> Path:
    return ctx.warehouse.with_name(f".{ctx.warehouse.name}.{ctx.month}.lock")


def claim_path(ctx: RunContext) -> Path:
    return ctx.warehouse.with_name(f".{ctx.warehouse.name}.{ctx.month}.claim")


@contextlib.contextmanager
def month_lock(ctx: RunContext, claimant: str | None = None, claiming: bool = False) -> Iterator[dict]:
    """Hold the month's lock (an flock on a file beside the warehouse: the kernel drops it when the
    process dies, so a killed run never leaves a stale lock). Refused, with who holds it, and
    refused while another run has claimed the month (claim_month): `claimant` names the Airflow run
    whose tasks may go on; `doudi run` passes none."""
    path = lock_path(ctx)
    ensure_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            raise RunError(
                f"{ctx.month} is being run already, by {holder.get('user', 'an unknown user')} "
                f"(pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('since', '?')}): "
                f"one run of a month at a time; wait for it to finish, then run again") from None
        try:
            refuse_unless_claimed_by(ctx, claimant, or_unclaimed=claiming)
            me = {"user": operator(), "pid": os.getpid(), "host": socket.gethostname(), "since": _now(),
                  "month": ctx.month}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(me) + "\n").encode("utf-8"), 0)
            yield me
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# An Airflow run of a month is many processes, one per task, so the flock alone would let a
# `doudi run` of the same month slip in between two tasks and rewrite the work files under them.
# The DAG's first task therefore claims the month (a file beside the lock naming the DAG run), its
# tasks go on only while the claim is theirs, and its teardown (run by Airflow also when a task
# failed, or when the run is marked failed by hand) gives the claim back.

def read_claim(ctx: RunContext) -> dict | None:
    try:
        return json.loads(claim_path(ctx).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:  # a torn write cannot happen (written atomically); an edited file can
        return {"claimant": "an unreadable claim file", "since": "?", "user": "?"}


def refuse_unless_claimed_by(ctx: RunContext, claimant: str | None, or_unclaimed: bool = False) -> None:
    """RunError unless the month's claim is `claimant`'s (or, with no claimant, nobody's; with
    `or_unclaimed`, either)."""
    claim = read_claim(ctx)
    if claim is None and (claimant is None or or_unclaimed):
        return
    if claim is not None and claim.get("claimant") == claimant:
        return
    if claim is None:
        raise RunError(f"{ctx.month}: this Airflow run ({claimant}) no longer holds the month's claim "
                       f"(it was released by hand, see `doudi state --month {ctx.month}`): it stops here; "
                       f"trigger the month again")
    raise RunError(
        f"{ctx.month} is being run already, by {claim.get('claimant')} (user {claim.get('user', '?')}, "
        f"since {claim.get('since', '?')}): one run of a month at a time; wait for it to finish, or, if "
        f"that run is dead, mark it failed in Airflow (its teardown gives the month back) or run "
        f"`doudi release-claim --month {ctx.month}`")


def claim_month(ctx: RunContext, claimant: str) -> dict:
    """Claim the month for one Airflow run (again by the same run on a retry: no error)."""
    from pipelines.io import write_bytes_atomic

    with month_lock(ctx, claimant, claiming=True):
        claim = {"claimant": claimant, "user": operator(), "host": socket.gethostname(), "since": _now(),
                 "month": ctx.month}
        write_bytes_atomic(claim_path(ctx), (json.dumps(claim, ensure_ascii=False) + "\n").encode("utf-8"))
        return claim


def release_claim(ctx: RunContext, claimant: str | None = None) -> dict | None:
    """Give the month's claim back: the teardown passes its own run (another run's claim is left
    alone); `doudi release-claim` passes none and releases whoever holds it. Returns the claim."""
    claim = read_claim(ctx)
    if claim is None or (claimant is not None and claim.get("claimant") != claimant):
        return None
    claim_path(ctx).unlink(missing_ok=True)
    return claim


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------- payout folder marker

def mark_not_published(ctx: RunContext) -> Path:
    """Written before the payout files, removed once publish commits: a folder with this file holds
    files the warehouse does not have, which nobody may send."""
    from pipelines.io import write_bytes_atomic

    path = ctx.payouts_dir / NOT_PUBLISHED_MARKER
    write_bytes_atomic(path, (
        f"{ctx.month}: these payout files are not published (the run that wrote them has not finished "
        f"publishing the month into the warehouse). Do not send them. Rerun the month "
        f"(doudi run --month {ctx.month}); doudi release refuses them until its publish succeeds.\n"
        f"{ctx.month}：本月支付文件尚未入库发布，请勿报送银行；请重新运行本月。\n").encode("utf-8"))
    return path


def clear_not_published(ctx: RunContext) -> None:
    with contextlib.suppress(FileNotFoundError):
        (ctx.payouts_dir / NOT_PUBLISHED_MARKER).unlink()


# ---------------------------------------------------------------- verify and release

def verify_month(ctx: RunContext, by: str | None = None, record: bool = True) -> dict:
    """The month's payout files against the manifest and the warehouse's ledger; the files must be
    the ones published. Records `verified` (or supplementary_verified) if the month was published."""
    import duckdb

    from pipelines.sqlrun import attach_warehouse
    from pipelines.warehouse_months import changed_month_files, months_dir

    manifest = read_manifest(ctx)
    con = duckdb.connect()
    try:
        try:
            attach_warehouse(con, ctx.warehouse)
        except RunError:
            raise
        except Exception as exc:
            message = operational_message(exc, ctx, "verify")
            if message:
                raise RunError(message) from exc
            raise
        state = state_of(con, ctx, database="wh")
        if state["state"] in (None, "computed", "supplementary_computed"):
            target = "supplementary_verified" if state["state"] == "supplementary_computed" else "verified"
            raise RunError(refusal(ctx.month, state["state"], target))
        changed = changed_month_files(con, ctx.warehouse, ctx.month)
        if changed:
            raise RunError(f"the warehouse's files of {ctx.month} are not the ones published ({'; '.join(changed)}, "
                           f"under {months_dir(ctx.warehouse)}): restore them from a backup or rerun the month")
        on_disk = sha256_file(artefacts.manifest(ctx))
        if state["manifest_sha256"] and on_disk != state["manifest_sha256"]:
            raise RunError(f"the payout files of {ctx.month} on disk are not the ones published (their manifest "
                           f"differs from the one the warehouse recorded): rerun the month, and do not send them")
        try:
            checks = reconcile(ctx, con, manifest)
        except RunError as exc:
            problems = "; ".join(str(exc).split("\n  - ")[1:]) or str(exc)
            raise RunError(f"the payout files of {ctx.month} do not agree with the warehouse ({problems}): do not "
                           "send them; rerun the month") from exc
    finally:
        con.close()
    target = {"published": "verified", "supplementary_published": "supplementary_verified"}.get(state["state"])
    if record and target:
        record_transition(ctx, ctx.month, target, by, run_id=run_id_for(ctx, fresh=True),
                          manifest_sha256=on_disk)
    return dict(checks, manifest=manifest, state=target or state["state"], manifest_sha256=on_disk,
                supplement=state["supplement"])


# ---------------------------------------------------------------- release state
# A released month's batches are never rewritten: check_reference, compute and payout all ask here.

REGULAR_BATCH = "R"  # the month's regular batch per bank
REISSUE_BATCH = "X"  # payments the bank returned as failed, reissued to a corrected account


def released_marker(ctx: RunContext) -> Path:
    return artefacts.released_marker(ctx)


def read_manifest(ctx: RunContext) -> dict:
    path = artefacts.manifest(ctx)
    if not path.exists():
        raise RunError(f"no manifest for {ctx.month} at {path}: run the month first (doudi run), or point --out "
                       "(or DOUDI_OUT) at the output root it was run with")
    return json.loads(path.read_text(encoding="utf-8"))


def release_record(ctx: RunContext) -> dict | None:
    marker = released_marker(ctx)
    return json.loads(marker.read_text(encoding="utf-8")) if marker.exists() else None


def released_batches(ctx: RunContext) -> set[str]:
    """Batches of the month already sent to the banks (never rewritten)."""
    record = release_record(ctx)
    if record is None:
        return set()
    batches = set(record.get("batches") or (REGULAR_BATCH, REISSUE_BATCH))
    for supplement in record.get("supplements", []):
        batches |= set(supplement["batches"])
    return batches


def supplement_batch(ctx: RunContext) -> str:
    """The batch a supplementary run of a released month writes: S1, then S2 once S1 is released."""
    record = release_record(ctx) or {}
    return f"S{len(record.get('supplements', [])) + 1}"


def check_release_state(ctx: RunContext, released: set[str] | None = None) -> None:
    """A released month is rerun only as a supplementary run, and only a released month is."""
    released = released_batches(ctx) if released is None else released
    if released and not ctx.supplementary:
        raise RunError(
            f"{ctx.month} was released to the banks ({released_marker(ctx)}); its payout files are never "
            "rewritten. To pay corrections for this month, rerun it as a supplementary run "
            f"(doudi run --month {ctx.month} --supplementary, or the DAG param supplementary=true): only the "
            "lines the released batches did not carry go out, in a new batch."
        )
    if ctx.supplementary and not released:
        raise RunError(f"{ctx.month} has not been released: rerun it normally (without --supplementary)")


def reconcile(ctx: RunContext, con, manifest: dict) -> dict:
    """Ledger ↔ payout records ↔ files on disk. A difference here is a defect: the run fails."""
    m = ctx.month
    ledger_sum, ledger_lines, ledger_refs = con.execute(
        "SELECT coalesce(sum(amount), 0), count(*), count(DISTINCT payment_ref) FROM wh.payment_ledger "
        "WHERE payroll_month = ? AND status = 'payable'", [m]).fetchone()
    rec_sum, rec_count = con.execute(
        "SELECT coalesce(sum(amount), 0), count(*) FROM wh.payout_record WHERE payroll_month = ?", [m]).fetchone()
    problems = []
    files = []
    csv_sum, csv_count = Decimal("0.00"), 0
    for f in manifest["files"]:
        path = ctx.payouts_dir / f["name"]
        if not path.exists():
            problems.append(f"{f['name']}: missing")
            continue
        digest = sha256_file(path)
        ok = digest == f["sha256"]
        if not ok:
            problems.append(f"{f['name']}: SHA-256 differs from the manifest")
        if f["format"] == "csv":
            count, total = read_payout_csv(path)
            csv_sum += total
            csv_count += count
            if count != f["count"] or f"{total:.2f}" != f["sum"]:
                problems.append(f"{f['name']}: {count} records / {total:.2f} on disk, manifest says "
                                f"{f['count']} / {f['sum']}")
        files.append((f["name"], f["format"], f["count"], Decimal(f["sum"]), "一致" if ok else "不一致"))
    # a bank is sent the folder: a file the manifest does not name was never published (put there by
    # hand, or left by a crash) and must not travel with the batch
    known = {f["name"] for f in manifest["files"]} | {artefacts.MANIFEST, artefacts.RELEASED, NOT_PUBLISHED_MARKER}
    for stray in sorted(p.name for p in ctx.payouts_dir.iterdir() if p.name not in known):
        problems.append(f"{stray}: in the payouts folder but not in the manifest (remove it: nothing published it)")
    if csv_sum != ledger_sum or csv_count != ledger_refs:
        problems.append(f"payout CSV files carry {csv_count} records / {csv_sum:.2f}; ledger has {ledger_refs} "
                        f"payment refs / {ledger_sum:.2f}")
    if rec_sum != ledger_sum or rec_count != ledger_refs:
        problems.append(f"payout records {rec_count} / {rec_sum}; ledger {ledger_refs} / {ledger_sum}")
    if problems:
        raise RunError(f"reconciliation of {m} failed:\n  - " + "\n  - ".join(problems))
    return {"status": "balanced", "ledger_sum": ledger_sum, "ledger_lines": ledger_lines, "records": ledger_refs,
            "csv_sum": csv_sum, "csv_records": csv_count, "files": files}


def read_payout_csv(path) -> tuple[int, Decimal]:
    """Read a payout CSV the way a bank does: count the records and add the amounts."""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return len(rows), sum((Decimal(r["amount"]) for r in rows), Decimal("0.00"))


def history(ctx: RunContext, month: str | None = None) -> list[dict]:
    """The recorded transitions of a month (all months if month is None), oldest first."""
    if not ctx.warehouse.exists():
        return []
    con = open_warehouse(ctx, read_only=True)
    try:
        if not _has_table(con, "month_state"):
            return []
        cur = con.execute("SELECT * FROM month_state WHERE ? IS NULL OR payroll_month = ? ORDER BY seq",
                          [month, month])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
