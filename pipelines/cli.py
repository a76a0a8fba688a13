"""The `doudi` command: the same stage functions as the DAG, without Airflow.

    doudi generate --inbox DIR --months 2020-01..2020-04 --persons N --seed S
    doudi run      --month YYYY-MM --inbox DIR --reference DIR --out DIR --warehouse FILE [--supplementary]
    doudi run      ... [--first-month] [--by NAME]   (months run in order; --first-month starts a history)
    doudi verify   --month YYYY-MM --out DIR --warehouse FILE
    doudi release  --month YYYY-MM --out DIR --by NAME   (only a published month that verifies)
    doudi close    --month YYYY-MM --by NAME             (after its bank returns are loaded)
    doudi state    --month YYYY-MM                       (the month's recorded transitions)
    doudi explain  --month YYYY-MM --id ID --warehouse FILE
    doudi returns  --month YYYY-MM --inbox DIR --warehouse FILE --out DIR   (bank return files of that month)
    doudi withdraw-return --month YYYY-MM --file NAME --by NAME --reason TEXT [--sha256 HEX]
    doudi dictionary [--warehouse FILE] [--to docs/data_dictionary.md]
    doudi simulate --from-month YYYY-MM --urban 5% --rural 7% [--effective YYYY-MM] [--first-payroll YYYY-MM]
    doudi export   --month YYYY-MM [--to DIR]
    doudi clear    --month YYYY-MM (--id ID --program P --hold-reason R | --file CSV) --by NAME [--through YYYY-MM]

One vocabulary: --month the payroll month, --inbox the inbox root, --reference the reference folder,
--out the output root, --warehouse the warehouse file, --to the one file or folder a command writes,
--by who, --reason the recorded why (a letter, a voucher), --note an optional remark. Paths default to
DOUDI_INBOX, DOUDI_REFERENCE, DOUDI_OUT and DOUDI_WAREHOUSE.

Exit status: 0 done; 1 the run cannot complete (the message says why and what to do); 2 usage.
"""

from __future__ import annotations

import argparse
import sys
import time

from pipelines.settings import DEFAULT_REFERENCE, RunContext, RunError, keep_new_files_owner_only


# One vocabulary for every command (tests/test_cli_options.py holds the table): --month the payroll
# month, --inbox the inbox root, --reference the reference folder, --out the output root, --warehouse
# the warehouse file, --to the one file or folder a command writes, --by who, --reason the recorded
# why. A command takes only the paths it reads or writes.
def _run_args(p: argparse.ArgumentParser, *, inbox: bool = False, reference: bool = False, out: bool = True,
              month: bool = True) -> None:
    if month:
        p.add_argument("--month", required=True, help="payroll month, YYYY-MM")
    if inbox:
        p.add_argument("--inbox", help="inbox root holding <YYYY-MM>/rosters/... (default: DOUDI_INBOX)")
    if reference:
        p.add_argument("--reference", help=f"reference data folder (default: DOUDI_REFERENCE or {DEFAULT_REFERENCE})")
    if out:
        p.add_argument("--out", help="output root: <out>/<YYYY-MM>/payouts and reports (default: DOUDI_OUT)")
    p.add_argument("--warehouse", help="warehouse DuckDB file (default: DOUDI_WAREHOUSE)")
    command = p.prog.split()[-1]
    # spellings older scripts pass: still accepted, never silently (a line on stderr)
    for flag, used in (("--inbox", inbox), ("--reference", reference), ("--out", out)):
        if not used:
            _ignored(p, flag, f"{command} never reads it")
    if not month and command in ("recover", "dictionary"):  # they once required or hid one
        _ignored(p, "--month", f"{command} does not depend on a payroll month")


class _Deprecated(argparse.Action):
    """An old option: says so on stderr, then does what its replacement does (or nothing)."""

    def __init__(self, option_strings, dest, replacement: str | None = None, why: str = "", **kwargs):
        self.replacement, self.why = replacement, why
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if self.replacement:
            print(f"doudi {parser.prog.split()[-1]}: {option_string} is deprecated, use "
                  f"{self.replacement} ({self.why})", file=sys.stderr)
            setattr(namespace, self.dest, values)
        else:
            print(f"doudi {parser.prog.split()[-1]}: {option_string} is ignored ({self.why}); drop it",
                  file=sys.stderr)


def _renamed(p: argparse.ArgumentParser, old: str, new: str, why: str) -> None:
    p.add_argument(old, dest=new.lstrip("-").replace("-", "_"), action=_Deprecated, replacement=new, why=why,
                   default=argparse.SUPPRESS)


def _ignored(p: argparse.ArgumentParser, old: str, why: str) -> None:
    p.add_argument(old, dest="_ignored_" + old.lstrip("-").replace("-", "_"), action=_Deprecated, why=why,
                   default=argparse.SUPPRESS)


def _ctx(args) -> RunContext:
    return RunContext.from_env(getattr(args, "month", None) or "2020-01",  # a command without a month
                               supplementary=getattr(args, "supplementary", False),
                               **{k: getattr(args, k, None) or "" for k in ("inbox", "reference", "out", "warehouse")})


def cmd_generate(args) -> int:
    from pipelines.generate import generate

    inbox = args.inbox or RunContext.from_env("2020-01").inbox
    result = generate(inbox, args.months, persons=args.persons, seed=args.seed, defect_scale=args.defect_scale)
    print(f"generated {len(result['months'])} months, {result['files']} roster files, "
          f"{result['defects']} planted defects under {result['out']}")
    return 0


def cmd_run(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from pipelines.faults import checkpoint
    from pipelines.lifecycle import begin_run, month_lock
    from pipelines.monthly import check_run_inputs, stages
    from pipelines.payout import supplement_batch
    from pipelines.summary import month_summary

    ctx = _ctx(args)
    check_run_inputs(ctx)  # a wrong path: one sentence, and nothing written
    console = Console(stderr=True)
    steps = stages(ctx)
    started = time.perf_counter()
    # a calm bar: rich's default is the red of an error
    columns = (TextColumn("[bold]{task.description}"),
               BarColumn(complete_style="green", finished_style="green", pulse_style="green"),
               TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn())
    with month_lock(ctx), Progress(*columns, console=console, transient=False) as progress:
        begin_run(ctx, args.first_month, args.by)  # refused if released, or if the month before was not run
        bar = progress.add_task(f"doudi {ctx.month}", total=len(steps))
        for name, call in steps:
            progress.update(bar, description=f"{ctx.month} {name}")
            call()
            checkpoint(f"after:{name}")
            progress.advance(bar)
    batch = supplement_batch(ctx) if ctx.supplementary else None
    print("\n".join(month_summary(ctx, time.perf_counter() - started, batch)))
    return 0


def _finish_interrupted_publish(ctx: RunContext) -> None:
    """Before a month is verified or released: what a publish killed after its commit still owes."""
    from pipelines.warehouse import finish_interrupted_publish

    for month in finish_interrupted_publish(ctx):
        print(f"note: the publish of {month} was interrupted after its commit; its dimensions, reconciliation and "
              "analyst database are built now")


def cmd_verify(args) -> int:
    from pipelines.lifecycle import verify_month

    ctx = _ctx(args)
    _finish_interrupted_publish(ctx)
    checks = verify_month(ctx, args.by)
    print(f"{ctx.month}: {len(checks['manifest']['files'])} files match the manifest; {checks['records']} records, "
          f"{checks['ledger_sum']:.2f} yuan, equal to the ledger (state {checks['state']})")
    return 0


def cmd_release(args) -> int:
    from pipelines.payout import release

    ctx = _ctx(args)
    _finish_interrupted_publish(ctx)
    record = release(ctx, args.by)
    print(f"{record['payroll_month']} released by {record['released_by']} at {record['released_at']}; "
          "its payout files will never be rewritten")
    return 0


def cmd_close(args) -> int:
    from pipelines.lifecycle import record_transition, run_id_for

    ctx = _ctx(args)
    record_transition(ctx, ctx.month, "closed", args.by, run_id=run_id_for(ctx, fresh=True), note=args.note)
    print(f"{ctx.month} closed by {args.by}: no run, supplement or release changes it any more")
    return 0


def cmd_state(args) -> int:
    from pipelines.audit_report import local_times
    from pipelines.lifecycle import history, read_claim

    ctx = _ctx(args)
    for row in history(ctx, ctx.month):  # times as the bureau's clock reads them (recorded in UTC)
        print("  ".join(local_times(str(row[k] or "")) for k in ("recorded_at", "payroll_month", "from_state",
                                                                  "to_state", "supplement", "who", "run_id",
                                                                  "note")))
    claim = read_claim(ctx)
    if claim:
        print(f"{ctx.month} is claimed by {claim.get('claimant')} (user {claim.get('user', '?')}, "
              f"since {local_times(str(claim.get('since', '?')))})")
    return 0


def cmd_release_claim(args) -> int:
    from pipelines.lifecycle import month_lock, read_claim, release_claim

    ctx = _ctx(args)
    claim = read_claim(ctx)
    if claim is None:
        print(f"{ctx.month} is not claimed by any Airflow run: nothing to release")
        return 0
    # under the claimant's name: refused while one of its tasks holds the lock (that run is alive)
    with month_lock(ctx, claim.get("claimant")):
        release_claim(ctx)
    print(f"{ctx.month}: the claim of {claim.get('claimant')} (user {claim.get('user', '?')}, since "
          f"{claim.get('since', '?')}) released by {args.by}; that run's remaining tasks will stop")
    return 0


def cmd_explain(args) -> int:
    from pipelines.explain import explain

    print(explain(_ctx(args), args.id))
    return 0


def cmd_returns(args) -> int:
    from pipelines.tasks import bank_returns_body

    result = bank_returns_body(_ctx(args), who=args.by)
    print("\n".join(returns_summary(result)))
    return 0


def returns_summary(result: dict) -> list[str]:
    """What loading the return files did, one sentence per fact."""
    out = [f"{result['files']} return file(s) in the folder: {len(result['loaded_files'])} loaded now, "
           f"{len(result['unchanged_files'])} loaded before with the same bytes; "
           f"{result['kept_loaded_files']} loaded earlier for this month stay loaded."]
    for name in result["loaded_files"]:
        out.append(f"  loaded: {name}")
    for name, original in result["duplicate_files"]:
        out.append(f"  not loaded again: {name} has the bytes of {original}")
    for name, why in result["rejected_files"]:
        out.append(f"  REJECTED, not loaded: {name}: {why}")
    out.append(f"Rows read: {_sentence(result['rows']) or 'none new'}; matched to payments: "
               f"{_sentence(result['matches']) or 'none new'}.")
    findings = _sentence(result["reconciliation_findings"])
    out.append(f"Reconciliation findings: {findings or 'none'}"
               + (" (see reports/exceptions.xlsx of each month)." if findings else "."))
    out.append(f"Reports refreshed for: {', '.join(result['reports_refreshed']) or 'no month'}.")
    return out


def _sentence(counts: dict) -> str:
    """{status: count} as words: `3 失败, 2 成功`."""
    return ", ".join(f"{n} {k}" for k, n in (counts or {}).items())


def cmd_withdraw_return(args) -> int:
    from pipelines.bank_returns import withdraw_return_file
    from pipelines.tasks import refresh_reports

    ctx = _ctx(args)
    w = withdraw_return_file(ctx, args.file, args.by, args.reason, args.sha256)
    refreshed = refresh_reports(ctx.as_dict(), w)
    print(f"withdrew {w['received_month']}/{w['source_file']} ({w['rows']} rows, SHA-256 {w['sha256'][:12]}…) "
          f"as {w['withdrawn_by']} at {w['withdrawn_at']}; payment states recomputed without it; reports refreshed "
          f"for {', '.join(refreshed) or 'no month'}")
    return 0


def cmd_dictionary(args) -> int:
    from pathlib import Path

    from pipelines.analyst import write_dictionary
    from pipelines.io import write_bytes_atomic

    ctx = _ctx(args)
    if not ctx.analyst_db.exists():
        raise RunError(f"no analyst database at {ctx.analyst_db}: publish a month first (doudi run)")
    text = write_dictionary(ctx.analyst_db)
    target = Path(args.to)
    write_bytes_atomic(target, text.encode("utf-8"))
    print(f"data dictionary of {ctx.analyst_db} written to {target}")
    return 0


def cmd_simulate(args) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from pipelines.simulate import parse_share, simulate, write_xlsx
    from pipelines.vocabulary import PROGRAM_NAMES_ZH

    ctx = _ctx(argparse.Namespace(**dict(vars(args), month=args.from_month)))
    result = simulate(ctx, args.from_month, parse_share(args.urban), parse_share(args.rural), args.effective,
                      args.first_payroll, args.round,
                      parse_share(args.target_urban) if args.target_urban else None,
                      parse_share(args.target_rural) if args.target_rural else None)
    console = Console()
    table = Table(title=f"提标测算 {result['effective']} 起执行，{result['first_payroll']} 首次发放")
    for col in ("county", "program", "monthly", "annual", f"arrears ({result['arrears_months']} months)"):
        table.add_column(col, justify="right" if col not in ("county", "program") else "left")
    for c in result["costs"]:
        table.add_row(f"{c['region_code']} {c['county']}", PROGRAM_NAMES_ZH.get(c["program"], c["program"]),
                      f"{c['monthly']:,.2f}", f"{c['annual']:,.2f}", f"{c['arrears']:,.2f}")
    t = result["totals"]
    table.add_row("合计", "", f"{t['monthly']:,.2f}", f"{t['annual']:,.2f}", f"{t['arrears']:,.2f}")
    console.print(table)
    misses = [s for s in result["standards"] if not (s["urban_meets_target"] and s["rural_meets_target"]
                                                       and s["rural_above_poverty_line"])]
    console.print(f"{len(result['standards'])} counties; {len(misses)} miss a target or the poverty line"
                  + (": " + ", ".join(f"{s['region_code']} {s['county']}" for s in misses[:10]) if misses else ""))
    for s in result["standards"]:
        for k in ("urban_rounding", "rural_rounding"):
            if s[k]:
                console.print(f"  {s['region_code']} {s['county']}: {s[k]}")
    for a in result["provincial"]:
        if a["raise"] is None:
            console.print(f"全省{a['urban_rural']}平均标准（{a['label']}）：{a['note']}")
            continue
        console.print(f"全省{a['urban_rural']}平均标准（{a['label']}）：{a['before']} → {a['after']}，"
                      f"提高 {a['raise'] * 100:.2f}%，目标 {a['target'] * 100:.2f}%，"
                      f"{'达标' if a['meets'] else '未达标'}"
                      + (f"（{a['note']}）" if a["note"] else ""))
    path = Path(args.to or ctx.out / "simulations" /
                f"simulate_{result['from_month']}_{result['effective']}_{args.urban.strip('%')}_{args.rural.strip('%')}.xlsx")
    write_xlsx(result, path)
    console.print(f"workbook: {path}")
    return 0


def cmd_export(args) -> int:
    from pipelines.export import export_month

    result = export_month(_ctx(args), args.to)
    print(f"{result['tables']} tables of {args.month} written as Parquet under {result['root']} "
          f"(partitioned by payroll_month and region_code)")
    return 0


def cmd_clear(args) -> int:
    from pathlib import Path

    from pipelines.clearance import read_clearance_file, record_clearances

    ctx = _ctx(args)
    if args.file:
        items = read_clearance_file(Path(args.file))
    elif args.id and args.program and args.hold_reason:
        items = [{"program": args.program, "id_number": args.id, "hold_reason": args.hold_reason, "note": args.note,
                  "through_payroll": args.through}]
    else:
        raise RunError("name the hold to clear: --id, --program and --hold-reason, or --file CSV")
    records = record_clearances(ctx.warehouse, ctx.month, items, args.by)
    print(f"recorded {len(records)} clearance(s) in {ctx.warehouse}; they apply from the {ctx.month} payroll: "
          f"run (or rerun) that month to pay what was held")
    return 0


def cmd_withdraw(args) -> int:
    from pipelines.idnumbers import mask_id
    from pipelines.receivables import record_withdrawal

    ctx = _ctx(args)
    w = record_withdrawal(ctx.warehouse, ctx.month, args.registry, args.id, args.reported_month, args.by, args.reason)
    print(f"withdrew the {w['registry']} entry reported in {w['reported_month']} for "
          f"{mask_id(w['id_number'])} from the {ctx.month} payroll on; run (or rerun) "
          f"that month to pay what it withheld")
    return 0


def cmd_recover(args) -> int:
    from pipelines.receivables import record_recovery

    ctx = _ctx(args)
    r = record_recovery(ctx.warehouse, args.receivable, args.kind, args.amount, args.by, args.reason)
    print(f"recorded {r['kind']} of {r['amount']} yuan against receivable {r['receivable_id']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from pipelines.clearance import CLEARABLE_PROGRAMS
    from pipelines.receivables import RECOVERY_KINDS, REGISTRIES

    parser = argparse.ArgumentParser(prog="doudi", description="兜底: monthly social-assistance disbursement")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write a sample inbox that follows the contract")
    g.add_argument("--inbox", help="inbox root to write the sample into, <inbox>/<YYYY-MM>/... (default: DOUDI_INBOX)")
    _renamed(g, "--out", "--inbox", "what generate writes is an inbox; --out is the output root of a run")
    g.add_argument("--months", required=True, help="YYYY-MM or YYYY-MM..YYYY-MM")
    g.add_argument("--persons", type=int, default=2000, help="people in the sample province (default 2000)")
    g.add_argument("--seed", type=int, default=20200101, help="random seed: the same seed writes the same bytes")
    g.add_argument("--defect-scale", type=float, default=1.0,
                   help="multiply every planted-defect rate (default 1.0; 0 plants none)")
    g.set_defaults(fn=cmd_generate)
    r = sub.add_parser("run", help="run one payroll month without Airflow")
    _run_args(r, inbox=True, reference=True)
    r.add_argument("--supplementary", action="store_true",
                   help="rerun a month already released: pay only what its released batches lack, in a new batch")
    r.add_argument("--first-month", action="store_true",
                   help="start this warehouse's history at --month although the inbox holds the month before")
    r.add_argument("--by", help="who runs (recorded; default DOUDI_OPERATOR or the OS user)")
    r.set_defaults(fn=cmd_run)
    v = sub.add_parser("verify", help="check a month's payout files against its manifest and the ledger")
    _run_args(v)
    v.add_argument("--by", help="who verifies (recorded; default DOUDI_OPERATOR or the OS user)")
    v.set_defaults(fn=cmd_verify)
    cl = sub.add_parser("close", help="close a month whose bank returns are loaded (recorded; final)")
    _run_args(cl)
    cl.add_argument("--by", required=True, help="who closes (recorded)")
    cl.add_argument("--note", help="a remark recorded with the transition")
    cl.set_defaults(fn=cmd_close)
    st = sub.add_parser("state", help="the recorded transitions of a month (table month_state)")
    _run_args(st)
    st.set_defaults(fn=cmd_state)
    rc_ = sub.add_parser("release-claim", help="give back the month an Airflow run claimed and can no longer release")
    _run_args(rc_)
    rc_.add_argument("--by", required=True, help="who releases the claim")
    rc_.set_defaults(fn=cmd_release_claim)
    rel = sub.add_parser("release", help="mark a month's payout files as sent to the banks (never rewritten)")
    _run_args(rel)
    rel.add_argument("--by", required=True, help="who releases (recorded)")
    rel.set_defaults(fn=cmd_release)
    e = sub.add_parser("explain", help="the story of one person's payments in a month")
    _run_args(e, out=False)
    e.add_argument("--id", required=True, help="ID number (or dibao household ID)")
    e.set_defaults(fn=cmd_explain)
    b = sub.add_parser("returns", help="load the bank return files of a month and reconcile three ways")
    _run_args(b, inbox=True, reference=True)
    b.add_argument("--by", help="who loads (recorded; default: DOUDI_OPERATOR or the login name)")
    b.set_defaults(fn=cmd_returns)
    wr = sub.add_parser("withdraw-return", help="withdraw a loaded bank return file (recorded with who, when, why)")
    _run_args(wr, inbox=True, reference=True)
    wr.add_argument("--file", required=True, help="the return file's name in <inbox>/<month>/bank_returns/")
    wr.add_argument("--sha256", help="its SHA-256 (or a prefix), when that name was loaded with different contents")
    wr.add_argument("--by", required=True, help="who withdraws (recorded)")
    wr.add_argument("--reason", required=True, help="why (recorded), e.g. the bank's letter withdrawing the file")
    wr.set_defaults(fn=cmd_withdraw_return)
    d = sub.add_parser("dictionary", help="write the data dictionary of the analyst database (Markdown)")
    _run_args(d, out=False, month=False)
    d.add_argument("--to", default="docs/data_dictionary.md",
                   help="Markdown file to write (default docs/data_dictionary.md); the analyst database read is "
                        "DOUDI_ANALYST_DB or <warehouse>_analyst.duckdb")
    _renamed(d, "--output", "--to", "--out is the output root of every command; --to the file this one writes")
    d.set_defaults(fn=cmd_dictionary)
    sim = sub.add_parser("simulate", help="what a raise of the dibao standards would cost (提标测算)")
    sim.add_argument("--from-month", required=True, help="the payroll month whose rosters are the basis, YYYY-MM")
    sim.add_argument("--urban", required=True, help="raise of the urban standards, e.g. 5%%")
    sim.add_argument("--rural", required=True, help="raise of the rural standards, e.g. 7%%")
    sim.add_argument("--effective", help="first month the raise applies to (default: the month after --from-month)")
    sim.add_argument("--first-payroll", help="first payroll that pays it (default: --effective); earlier "
                                             "months are paid as arrears then")
    sim.add_argument("--round", choices=["yuan", "fen"], default="yuan",
                     help="rounding of the new standards (default yuan)")
    sim.add_argument("--target-urban", help="target average raise per county (default: --urban)")
    sim.add_argument("--target-rural", help="target average raise per county (default: --rural)")
    sim.add_argument("--to", help="XLSX file to write (default: <out>/simulations/...)")
    _renamed(sim, "--output", "--to", "--out is the output root of every command; --to the file this one writes")
    _run_args(sim, inbox=True, reference=True, month=False)
    sim.set_defaults(fn=cmd_simulate)
    ex = sub.add_parser("export", help="write the analyst tables of a month as Parquet, by month and county")
    _run_args(ex)
    ex.add_argument("--to", help="folder to write (default: <out>/export)")
    _renamed(ex, "--output", "--to", "--out is the output root of every command; --to the folder this one writes")
    ex.set_defaults(fn=cmd_export)
    c = sub.add_parser("clear", help="clear a held payment after review (recorded with who and when)")
    _run_args(c, out=False)
    c.add_argument("--by", required=True, help="who clears (recorded)")
    c.add_argument("--id", help="ID number of the person (a dibao household: any member, usually the head)")
    c.add_argument("--program", choices=CLEARABLE_PROGRAMS,
                   help="the program of the held payment, as the roster or the ledger names it "
                        "(disability_living and disability_nursing clear the person's disability row)")
    c.add_argument("--hold-reason", help="the hold reason to clear, e.g. account_holder_mismatch")
    _renamed(c, "--reason", "--hold-reason", "--reason is the recorded why of the other commands; "
                                             "clear records its remark with --note")
    c.add_argument("--through", help="last payroll month the clearance covers, YYYY-MM (default: --month)")
    c.add_argument("--note", help="a remark recorded with the clearance, e.g. what the home visit found")
    c.add_argument("--file", help="CSV of clearances: program, id_number, hold_reason[, note, through_payroll]")
    c.set_defaults(fn=cmd_clear)
    w = sub.add_parser("withdraw", help="withdraw a registry entry reported in error (recorded with who, when, why)")
    _run_args(w, out=False)
    w.add_argument("--registry", required=True, choices=REGISTRIES, help="the registry whose entry is withdrawn")
    w.add_argument("--id", required=True, help="ID number the entry names")
    w.add_argument("--reported-month", required=True, help="month whose extract reported it (YYYY-MM)")
    w.add_argument("--by", required=True, help="who withdraws (recorded)")
    w.add_argument("--reason", required=True, help="why (recorded), e.g. the registry office's correction number")
    w.set_defaults(fn=cmd_withdraw)
    rc = sub.add_parser("recover", help="record a refund or a write-off against a receivable (应追缴)")
    _run_args(rc, out=False, month=False)
    rc.add_argument("--receivable", required=True, help="receivable_id (table receivable_status)")
    rc.add_argument("--kind", required=True, choices=RECOVERY_KINDS, help="a refund received or an amount written off")
    rc.add_argument("--amount", required=True, help="yuan, e.g. 300.00")
    rc.add_argument("--by", required=True, help="who records it")
    rc.add_argument("--reason", required=True, help="why (recorded): the refund voucher, the write-off decision")
    rc.set_defaults(fn=cmd_recover)
    return parser


def main(argv: list[str] | None = None) -> int:
    keep_new_files_owner_only()
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv:  # `doudi` alone: what it can do, not an error
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except RunError as exc:
        print(f"doudi: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a failure of the machine (locked warehouse, full disk): one sentence too
        if isinstance(exc.__cause__, RunError):  # a task body (pipelines.tasks) wraps a RunError for Airflow
            print(f"doudi: {exc.__cause__}", file=sys.stderr)
            return 1
        from pipelines.lifecycle import operational_message

        try:
            ctx = _ctx(args)
        except Exception:  # the month itself may be what is wrong
            ctx = None
        message = operational_message(exc, ctx, args.command)
        if message is None:
            raise
        print(f"doudi: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
