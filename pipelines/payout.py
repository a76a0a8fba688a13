"""Stage 5, payout: the month's payout files, one batch per bank (contract sections 4 and 5).

Each record carries a `payment_ref` unique across every batch ever written:
`<YYYYMM><bank code><batch><sequence>`, e.g. `202003ICBCR000123` (batch `R` is the month's regular
batch, `X` its reissue batch: payments a bank returned as failed, sent again to a corrected
account). The sequence runs per bank across both batches in a fixed order, so a rerun with the
same inputs gives the same references and byte-identical files. It has six digits; a bank with
more than 999,999 records in a run (a national month) gets a wider sequence for all of them.

Renderings of one batch: CSV (UTF-8, always), and as configured (DOUDI_PAYOUT_FORMATS): `csv_gbk`,
`xlsx`, `pain001` (ISO 20022 pain.001.001.09, validated against the official XSD before it is
kept), and the bank's own layout where banks.csv chooses a template (pipelines/bank_templates.py).
DuckDB composes every file (pipelines/payout_render.py): no record passes through Python.
A batch larger than DOUDI_MAX_RECORDS_PER_FILE, or than its bank template's max_records, is split
into parts. A file naming the paying account or bank is written only when DOUDI_DEBTOR_ACCOUNT and
DOUDI_DEBTOR_BIC are set to real values (check_debtor), and asks for execution on a fixed day of
the month (DOUDI_EXECUTION_DAY, execution_date), never the clock's. `manifest.json` names every
file with SHA-256, and the count and sum read back from the file itself, and the SHA-256 of the
previous month's manifest.

A month whose payouts were released to the bank (`payouts/released.json`, see `doudi release`) is
never rewritten.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from pipelines import artefacts, bank_templates
from pipelines.faults import checkpoint
from pipelines.io import atomic_path, ensure_dir, sha256_file, write_json_atomic
from pipelines.lifecycle import (  # noqa: F401  the release state is the lifecycle's; importable here as before
    NOT_PUBLISHED_MARKER,
    REGULAR_BATCH,
    REISSUE_BATCH,
    check_release_state,
    mark_not_published,
    read_manifest,
    record_transition,
    release_record,
    released_batches,
    released_marker,
    run_info,
    supplement_batch,
)
from pipelines.months import shift_month
from pipelines.payout_render import xsd_path
from pipelines.settings import RunContext, RunError, Settings, placeholder_problem
from pipelines.sqlrun import attach_warehouse, connect, copy_to_parquet, model_sql, register_vocabulary, sql_string

FORMATS = ("csv", "csv_gbk", "xlsx", "pain001")
SUFFIXES = {"csv": ".csv", "csv_gbk": ".gbk.csv", "xlsx": ".xlsx", "pain001": ".pain001.xml"}
PAYMENT_REF_FORMAT = "<YYYYMM><bank code><batch><sequence: 6 digits, more when a bank has over 999,999 records>"


def write_payouts(ctx: RunContext) -> dict:
    released = released_batches(ctx)
    check_release_state(ctx, released)
    ledger = artefacts.ledger(ctx)
    if not ledger.exists():
        raise RunError(f"compute output missing: run the compute stage first ({ledger})")
    formats = ["csv"] + [f for f in ctx.settings.payout_formats if f != "csv"]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise RunError(f"unknown payout format {unknown[0]!r} (DOUDI_PAYOUT_FORMATS takes csv_gbk, xlsx, pain001)")
    templates = bank_templates.load(ctx.reference)
    execution = execution_date(ctx.month, ctx.settings.execution_day)
    check_debtor(ctx.settings, formats, templates)
    # before any file: until publish commits, this folder says its files are not to be sent
    mark_not_published(ctx)
    con = connect(ctx)
    # lines already carried by a released batch keep their payment_ref; the rest go out now
    # views: the queries below read a few of the ledger's columns, and a whole line with its
    # explanation is wide (two copies of the month's lines as tables spilled 40 GB at 25M rows)
    con.execute(f"CREATE VIEW full_ledger AS SELECT * FROM read_parquet('{sql_string(str(ledger))}')")
    con.execute("CREATE VIEW month_ledger AS SELECT * FROM full_ledger WHERE payment_ref IS NULL")
    register_vocabulary(con)  # vocab_program_zh: the programs' names on the payout records
    build_records(con, ctx, {bank: t.max_records for bank, t in templates.items() if t.max_records})
    if released:  # the month's records the banks already have: never rewritten, their refs never reused
        attach_warehouse(con, ctx.warehouse)
        batches = ", ".join(f"'{sql_string(b)}'" for b in sorted(released))
        con.execute("CREATE VIEW released_records AS SELECT * EXCLUDE (payroll_month) FROM wh.payout_record "
                    f"WHERE payroll_month = '{sql_string(ctx.month)}' AND batch_id IN ({batches})")
    check_records(con, released=bool(released))
    if bank_templates.needs_payee_ids(templates):
        bank_templates.prepare_payee_ids(con)

    out_dir = ensure_dir(ctx.payouts_dir)
    groups = con.execute("SELECT DISTINCT bank_code, batch_id, part FROM payout_records ORDER BY ALL").fetchall()
    check_file_names(ctx, formats, templates, groups)
    record_count = con.execute("SELECT count(*) FROM payout_records").fetchone()[0]
    files = []
    for written in _write_batches(ctx, con, formats, out_dir, groups, record_count, templates, execution):
        for f in written:
            checkpoint("payout.after_first_file")
            files.append(f)
    if released:  # the released batches' files stay as they were sent
        files = [f for f in read_manifest(ctx)["files"] if f["batch_id"] in released] + files
    _remove_stale(out_dir, {f["name"] for f in files})
    all_payable, all_payable_sum = con.execute(
        "SELECT count(*), coalesce(sum(amount), 0) FROM full_ledger WHERE status = 'payable'").fetchall()[0]
    csv_files = [f for f in files if f["format"] == "csv"]
    totals = {"records": sum(f["count"] for f in csv_files),
              "sum": f"{sum((Decimal(f['sum']) for f in csv_files), Decimal('0.00')):.2f}",
              "payable_lines": int(all_payable), "payable_sum": f"{all_payable_sum:.2f}"}
    if totals["sum"] != totals["payable_sum"]:
        raise RunError(f"payout files carry {totals['sum']} but the month's payable lines sum to "
                       f"{totals['payable_sum']}: nothing released is rewritten, check the warehouse")
    manifest = build_manifest(ctx, files, totals)
    manifest["execution_date"] = execution
    if debtor_settings_needed(formats, templates):  # the paying side the files name, for release to check
        manifest["debtor"] = {"account": ctx.settings.debtor_account, "bic": ctx.settings.debtor_bic}
    checkpoint("payout.before_manifest")
    write_json_atomic(artefacts.manifest(ctx), manifest)
    refs_path = artefacts.payment_refs(ctx)
    copy_to_parquet(con, "SELECT unnest(line_ids) AS line_id, payment_ref, batch_id, bank_code FROM payout_records "
                         "ORDER BY payment_ref, line_id", refs_path)
    records_query = "SELECT * EXCLUDE (line_ids), len(line_ids) AS lines FROM payout_records"
    if released:  # the month's records in the warehouse: the released batches' stay
        records_query += " UNION ALL BY NAME SELECT * FROM released_records"
    copy_to_parquet(con, f"SELECT * FROM ({records_query}) ORDER BY payment_ref",
                    artefacts.payout_records(ctx))
    con.close()
    info = run_info(ctx)
    record_transition(ctx, ctx.month, "supplementary_computed" if ctx.supplementary else "computed", info["by"],
                      supplement=supplement_batch(ctx) if ctx.supplementary else None, run_id=info["run_id"],
                      manifest_sha256=sha256_file(artefacts.manifest(ctx)), note=info.get("note"))
    return {
        "manifest": str(artefacts.manifest(ctx)),
        "files": len(files),
        "records": manifest["totals"]["records"],
        "sum": manifest["totals"]["sum"],
        "refs_path": str(refs_path),
    }


def _write_batches(ctx: RunContext, con, formats: list[str], out_dir: Path, groups: list[tuple],
                   record_count: int, templates: dict, execution: str):
    """Write the month's files, one batch part after another, or a few side by side in threads
    (DOUDI_PAYOUT_PROCESSES, for months of at least DOUDI_PAYOUT_PARALLEL_MIN_RECORDS records), each
    on its own DuckDB cursor: DuckDB, zlib (the XLSX container) and libxml2 (the pain.001 check) work
    without Python's lock. Yields each part's file entries, in the order of `groups`."""
    from concurrent.futures import ThreadPoolExecutor

    def one(group):
        cur = con.cursor()
        try:
            return write_batch(ctx, cur, formats, out_dir, *group, template=templates.get(group[0]),
                               execution=execution)
        finally:
            cur.close()

    threads = ctx.settings.payout_processes if record_count >= ctx.settings.payout_parallel_min_records else 1
    if threads <= 1 or len(groups) <= 1:
        yield from map(one, groups)
        return
    pool = ThreadPoolExecutor(threads, thread_name_prefix="payout")
    try:
        yield from pool.map(one, groups)
    finally:  # on a failure, the parts not started are not written
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _errors_name(tmp: Path, name: str) -> Iterator[None]:
    """A file that fails its reading back is named as the banks would see it, not by the temporary
    name it was written under (which is gone once the error is raised)."""
    try:
        yield
    except RunError as exc:
        raise RunError(str(exc).replace(tmp.name, name)) from exc


def write_batch(ctx: RunContext, con, formats: list[str], out_dir: Path, bank_code: str, batch_id: str,
                part: int, template: bank_templates.Template | None = None, execution: str | None = None) -> list[dict]:
    """Every format of one batch part (pipelines/payout_render.py), and its bank's template file,
    each written under a temporary name, read back by a reader independent of the query that
    composed it, and renamed into place only if that reading gives the records' count and sum. The
    manifest's count and sum of a file are that reading's."""
    from pipelines import payout_render as render

    s = ctx.settings
    execution = execution or execution_date(ctx.month, s.execution_day)
    if template is not None and template.format == "pain001" and "pain001" not in formats:
        formats = [*formats, "pain001"]
    stem = f"{ctx.month}_{bank_code}_{batch_id}_{part:02d}"
    count, total = render.load_batch(con, bank_code, batch_id, part)
    entries = []
    for fmt in formats:
        name = stem + SUFFIXES[fmt]
        with atomic_path(out_dir / name) as tmp, _errors_name(tmp, name):
            if fmt in ("csv", "csv_gbk"):
                render.write_csv(con, tmp)
                if fmt == "csv_gbk":
                    render.transcode_gb18030(tmp, tmp)
                read = render.read_csv_totals(tmp, "utf-8" if fmt == "csv" else "gb18030")
            elif fmt == "xlsx":
                # the date a bank is asked to pay on: the pain.001's ReqdExctnDt
                tmp.write_bytes(render.xlsx_bytes(con, ctx.month, bank_code, batch_id, part, s.debtor_name,
                                                  s.debtor_account, f"{ctx.month}-01"))
                read = render.read_xlsx_totals(tmp)
            else:
                tmp.write_bytes(render.pain001_bytes(con, ctx.month, stem, s.debtor_name, s.debtor_account,
                                                     s.debtor_bic, execution))
                read = render.read_pain001_totals(tmp)
            if read != (count, total):
                raise RunError(f"{name} reads back as {read[0]} records / {read[1]:.2f}, but its batch has {count} / "
                               f"{total:.2f}: not written")
            digest = sha256_file(tmp)
        entries.append({"name": name, "sha256": digest, "count": read[0], "sum": f"{read[1]:.2f}",
                        "format": fmt, "bank_code": bank_code, "batch_id": batch_id, "part": part})
    if template is not None and template.format == "delimited":
        entries.append(_write_template_file(ctx, con, template, out_dir, bank_code, batch_id, part, count, total,
                                            execution))
    con.execute("DROP TABLE batch")
    return entries


def _write_template_file(ctx: RunContext, con, template: bank_templates.Template, out_dir: Path, bank_code: str,
                         batch_id: str, part: int, count: int, total: Decimal, execution: str) -> dict:
    """The batch part in its bank's own layout (bank_templates.csv), read back with the template's
    encoding before it takes its name."""
    s = ctx.settings
    name = bank_templates.file_name(template, ctx.month, bank_code, batch_id, part)
    values = bank_templates.batch_values(template, count, total, month=ctx.month, bank_code=bank_code,
                                         batch_id=batch_id, part=part, debtor_name=s.debtor_name,
                                         debtor_account=s.debtor_account, debtor_bic=s.debtor_bic,
                                         execution_date=execution)
    with atomic_path(out_dir / name) as tmp, _errors_name(tmp, name):
        tmp.write_bytes(bank_templates.render(con, template, values))
        read = bank_templates.read_totals(tmp, template, values)
        if read != (count, total):
            raise RunError(f"{name} reads back as {read[0]} records / {read[1]:.2f}, but its batch has {count} / "
                           f"{total:.2f}: not written")
        digest = sha256_file(tmp)
    return {"name": name, "sha256": digest, "count": read[0], "sum": f"{read[1]:.2f}",
            "format": f"template:{template.key}", "bank_code": bank_code, "batch_id": batch_id, "part": part}


def execution_date(month: str, day: int) -> str:
    """The date the banks are asked to execute the month's transfers: day `day` of the payroll
    month (DOUDI_EXECUTION_DAY), moved to the Monday after when it is a Saturday or Sunday. Public
    holidays are not known here: a bureau whose day falls on one sets another day for that month."""
    if not 1 <= day <= 28:
        raise RunError(f"DOUDI_EXECUTION_DAY is {day}: set it to a day of the month from 1 to 28 (every month has "
                       "it), the day the banks are asked to pay.")
    date = datetime.date(int(month[:4]), int(month[5:7]), day)
    while date.weekday() >= 5:
        date += datetime.timedelta(days=1)
    return date.isoformat()


def debtor_settings_needed(formats: list[str], templates: dict) -> set[str]:
    """The paying-side settings the month's files name: all of them for pain.001, those a bank
    template's header, footer or file name uses."""
    needed = {"DOUDI_DEBTOR_ACCOUNT", "DOUDI_DEBTOR_BIC"} if "pain001" in formats else set()
    for template in templates.values():
        needed |= template.debtor_settings()
    return needed


def check_debtor(settings: Settings, formats: list[str], templates: dict) -> None:
    """No payout file names an unset or placeholder paying account or bank (settings.KNOWN_PLACEHOLDERS):
    refused before any file is written, naming the setting to set."""
    values = {"DOUDI_DEBTOR_ACCOUNT": settings.debtor_account, "DOUDI_DEBTOR_BIC": settings.debtor_bic}
    what = {"DOUDI_DEBTOR_ACCOUNT": "the bureau's paying account (付款账号)",
            "DOUDI_DEBTOR_BIC": "the paying bank's code (BIC, 付款行)"}
    for setting in sorted(debtor_settings_needed(formats, templates)):
        problem = placeholder_problem(setting, values[setting])
        if problem:
            raise RunError(f"{setting} {problem}: set it to {what[setting]} before writing payout files, which "
                           "name it (pain.001 and bank templates naming the payer); nothing was written.")


def check_file_names(ctx: RunContext, formats: list[str], templates: dict, groups: list[tuple]) -> None:
    """No two files of the month share a name (a bank template's file_name pattern could)."""
    seen: dict[str, tuple] = {}
    for bank_code, batch_id, part in groups:
        stem = f"{ctx.month}_{bank_code}_{batch_id}_{part:02d}"
        names = [stem + SUFFIXES[f] for f in (*formats, "pain001")]
        template = templates.get(bank_code)
        if template is not None and template.format == "delimited":
            names.append(bank_templates.file_name(template, ctx.month, bank_code, batch_id, part))
        for name in dict.fromkeys(names):
            if name in seen or name in (artefacts.MANIFEST, artefacts.RELEASED, NOT_PUBLISHED_MARKER):
                raise RunError(f"payout file name {name} would be written twice (bank {bank_code} batch {batch_id} "
                               f"part {part}): give bank template {template.key if template else ''} a file_name "
                               "naming {银行代码}, {批次} and {文件序号}.")
            seen[name] = (bank_code, batch_id, part)


def build_records(con, ctx: RunContext, bank_caps: dict[str, int] | None = None) -> None:
    """`payout_records`: the month's transfers (sql/marts/payout_record.sql), numbered per bank,
    with their payment refs and file parts.

    A record gathers its payee's lines with ordered list and string aggregates, whose states DuckDB
    cannot spill: over a national month's lines they outgrow any memory limit. A record's lines
    share its payee account, so the payable lines are cut by a hash of the account into chunks of
    about DOUDI_PAYOUT_CHUNK_LINES lines, each aggregated on its own. The records are numbered
    afterwards over the whole bank, so the chunking changes no byte of any file."""
    payable = con.execute("SELECT count(*) FROM month_ledger WHERE status = 'payable'").fetchone()[0]
    chunks = max(1, -(-payable // ctx.settings.payout_chunk_lines))
    records_sql = model_sql("marts/payout_record.sql")
    for chunk in range(chunks):
        con.execute("CREATE OR REPLACE VIEW payable_lines AS SELECT * FROM month_ledger WHERE status = 'payable' "
                    f"AND hash(payee_account) % {chunks} = {chunk}")
        con.execute(f"CREATE TABLE payout_record AS {records_sql}" if chunk == 0
                    else f"INSERT INTO payout_record {records_sql}")
    number_records(con, ctx.month_compact, ctx.settings.max_records_per_file,
                   supplement_batch(ctx) if ctx.supplementary else None, bank_caps)


def number_records(con, month_compact: str, max_records_per_file: int, supplement: str | None,
                   bank_caps: dict[str, int] | None = None) -> None:
    """`payout_records` from `payout_record`: each record's batch, its sequence within the bank (in
    a fixed order: region, payee, account, name, so a rerun numbers alike), its payment ref and its
    file part. A part holds at most max_records_per_file records, or fewer where the bank's template
    caps its files lower (`bank_caps`). The numbering reads only the narrow sort keys, never the
    records' line lists."""
    con.execute("CREATE OR REPLACE TEMP TABLE payout_bank_caps (bank_code VARCHAR, max_records BIGINT)")
    if bank_caps:
        con.executemany("INSERT INTO payout_bank_caps VALUES (?, ?)", sorted(bank_caps.items()))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE payout_record_numbers AS "
        "SELECT record_rowid, seq, batch_id, payment_ref(?, n.bank_code, batch_id, seq, bank_records) AS payment_ref, "
        "CAST(ceil(row_number() OVER (PARTITION BY n.bank_code, batch_id ORDER BY seq) "
        "          / least(?, coalesce(c.max_records, ?))) AS INTEGER) AS part "
        "FROM (SELECT record_rowid, bank_code, batch_id, seq, max(seq) OVER (PARTITION BY bank_code) AS bank_records "
        "      FROM (SELECT rowid AS record_rowid, bank_code, "
        "            CASE WHEN ? THEN ? WHEN is_reissue THEN ? ELSE ? END AS batch_id, "
        "            row_number() OVER (PARTITION BY bank_code "
        "                               ORDER BY region_code, payee_group, payee_account, payee_name) AS seq "
        "            FROM payout_record)) n LEFT JOIN payout_bank_caps c ON c.bank_code = n.bank_code",
        [month_compact, max_records_per_file, max_records_per_file, supplement is not None, supplement,
         REISSUE_BATCH, REGULAR_BATCH],
    )
    con.execute("CREATE OR REPLACE TABLE payout_records AS SELECT r.*, n.seq, n.batch_id, n.payment_ref, n.part "
                "FROM payout_record r JOIN payout_record_numbers n ON r.rowid = n.record_rowid")
    con.execute("DROP TABLE payout_record")
    con.execute("DROP TABLE payout_record_numbers")
    con.execute("DROP TABLE payout_bank_caps")


def check_records(con, released: bool) -> None:
    """Every payable line going out now is carried by exactly one record, for the same sum, and no
    two records share a payment ref: the bank deduplicates transfers by it, and a return names it.
    With released batches (a supplementary run, view `released_records`), no ref of theirs is used
    again; an unreleased supplementary batch is rewritten by its rerun, refs and all."""
    payable_lines, carried, carried_distinct, payable_sum, records_sum, records, refs = con.execute(
        "SELECT (SELECT count(*) FROM month_ledger WHERE status = 'payable'), "
        "(SELECT count(*) FROM (SELECT unnest(line_ids) FROM payout_records)), "
        "(SELECT count(DISTINCT l) FROM (SELECT unnest(line_ids) AS l FROM payout_records)), "
        "(SELECT coalesce(sum(amount), 0) FROM month_ledger WHERE status = 'payable'), "
        "(SELECT coalesce(sum(amount), 0) FROM payout_records), "
        "(SELECT count(*) FROM payout_records), (SELECT count(DISTINCT payment_ref) FROM payout_records)"
    ).fetchone()
    if not (payable_lines == carried == carried_distinct and payable_sum == records_sum):
        raise RunError(f"payout records do not carry the payable lines exactly once: {payable_lines} payable "
                       f"lines / {payable_sum}, records carry {carried} ({carried_distinct} distinct) / {records_sum}")
    if refs != records:
        example = con.execute("SELECT payment_ref FROM payout_records GROUP BY ALL HAVING count(*) > 1 "
                              "ORDER BY ALL LIMIT 1").fetchone()[0]
        raise RunError(f"{records} payout records but {refs} distinct payment refs (for example {example} is used "
                       "twice): a bank would take them for one transfer. Nothing was written.")
    if released:
        reused = con.execute("SELECT min(payment_ref) FROM payout_records "
                             "WHERE payment_ref IN (SELECT payment_ref FROM released_records)").fetchone()[0]
        if reused is not None:
            raise RunError(f"payment ref {reused} was already sent in a released batch of this month. "
                           "Nothing was written.")


def _remove_stale(out_dir: Path, keep: set[str]) -> None:
    """A rerun that writes fewer files removes the ones an earlier run left (unreleased months only)."""
    for p in out_dir.iterdir():
        if p.is_file() and p.name not in keep and p.name not in (artefacts.MANIFEST, artefacts.RELEASED,
                                                                  NOT_PUBLISHED_MARKER) \
                and not p.name.startswith("."):
            p.unlink()


def build_manifest(ctx: RunContext, files: list[dict], totals: dict) -> dict:
    prev = artefacts.manifest(ctx, shift_month(ctx.month, -1))
    return {
        "payroll_month": ctx.month,
        "files": files,
        "previous_manifest_sha256": sha256_file(prev) if prev.exists() else None,
        "totals": totals,
        "payment_ref_format": PAYMENT_REF_FORMAT,
    }


def pain001_schema():
    """xmlschema's validator for the official XSD: thorough and independent of lxml; used by tests."""
    global _SCHEMA
    if _SCHEMA is None:
        import xmlschema

        _SCHEMA = xmlschema.XMLSchema(str(xsd_path()))
    return _SCHEMA


_SCHEMA = None


def release(ctx: RunContext, who: str) -> dict:
    """Mark the month's payout batches as released to the banks: from now on they are never rewritten.
    A month released before may release its supplementary batch the same way.

    Only a published month whose files verify against the warehouse is released (pipelines/lifecycle.py):
    files a failed or unfinished publish left are refused. released.json is written before the
    transition is recorded: a kill between the two leaves the files protected, and the next
    `doudi release` records the transition."""
    import datetime

    from pipelines.lifecycle import AFTER_RELEASE, clear_not_published, verify_month

    manifest_path = artefacts.manifest(ctx)
    if not manifest_path.exists():
        raise RunError(f"nothing to release: {manifest_path} does not exist")
    manifest = read_manifest(ctx)
    in_manifest = {f["batch_id"] for f in manifest["files"]} or {REGULAR_BATCH}
    record = release_record(ctx)
    pending = sorted(in_manifest - released_batches(ctx)) if record else sorted(in_manifest)
    checked = verify_month(ctx, who)
    check_released_payer(ctx, manifest, set(pending))
    if not pending:
        if checked["state"] in AFTER_RELEASE:
            raise RunError(f"{ctx.month} was already released: {released_marker(ctx)}")
        # released.json was written and the run stopped before the warehouse recorded it
        last = (record.get("supplements") or [record])[-1]
        _record_release(ctx, who, checked, last["manifest_sha256"])
        return {"payroll_month": ctx.month, **{k: last[k] for k in ("released_by", "released_at")},
                "batches": last.get("batches", sorted(in_manifest))}
    entry = {"released_by": who, "released_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
             "manifest_sha256": sha256_file(manifest_path)}
    if record is None:
        record = {"payroll_month": ctx.month, **entry, "batches": sorted(in_manifest)}
        write_json_atomic(released_marker(ctx), record)
        clear_not_published(ctx)
        _record_release(ctx, who, checked, entry["manifest_sha256"])
        return dict(record)
    record.setdefault("supplements", []).append({**entry, "batches": pending})
    write_json_atomic(released_marker(ctx), record)
    clear_not_published(ctx)
    _record_release(ctx, who, checked, entry["manifest_sha256"])
    return {"payroll_month": ctx.month, **entry, "batches": pending}


def check_released_payer(ctx: RunContext, manifest: dict, batches: set[str]) -> None:
    """No file about to go to the banks names an unset or placeholder paying account or bank: a
    month written before the payout stage refused them (its pain.001 named 6222000000000000001 by
    default) is rerun with DOUDI_DEBTOR_ACCOUNT and DOUDI_DEBTOR_BIC set, never released. The
    pain.001's own debtor is read from the file; a template's from the manifest."""
    from xml.etree import ElementTree

    from pipelines.payout_render import PAIN001_NS

    ns = f"{{{PAIN001_NS}}}"
    for f in manifest["files"]:
        if f["batch_id"] not in batches:
            continue
        if f["format"] == "pain001":
            pmt = ElementTree.parse(ctx.payouts_dir / f["name"]).getroot()
            named = {"DOUDI_DEBTOR_ACCOUNT": pmt.findtext(f".//{ns}DbtrAcct/{ns}Id/{ns}Othr/{ns}Id") or "",
                     "DOUDI_DEBTOR_BIC": pmt.findtext(f".//{ns}DbtrAgt/{ns}FinInstnId/{ns}BICFI") or ""}
        elif f["format"].startswith("template:") and "debtor" in manifest:
            named = {"DOUDI_DEBTOR_ACCOUNT": manifest["debtor"]["account"]}
        else:
            continue
        for setting, value in named.items():
            problem = placeholder_problem(setting, value)
            if problem:
                raise RunError(f"{f['name']}: its paying side ({setting}) {problem}, so the month is not released; "
                               f"set {setting} to the bureau's own, rerun the month, then release it.")


def _record_release(ctx: RunContext, who: str, checked: dict, manifest_sha256: str) -> None:
    from pipelines.lifecycle import record_transition, run_id_for

    supplement = checked["supplement"] if checked["state"] and checked["state"].startswith("supplementary") else None
    record_transition(ctx, ctx.month, "released", who, supplement=supplement, run_id=run_id_for(ctx, fresh=True),
                      manifest_sha256=manifest_sha256)
