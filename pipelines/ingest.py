"""Stage 1, ingest: pull one program's roster files of the month from the inbox.

For every file: its SHA-256, its format and encoding, the header row (title rows above it are
skipped), headers mapped to canonical columns (contract section 2). Every data row is kept, as
delivered (all values text), with its file and row number; nothing is judged here except whether
the file as a whole can be used. Whole-file outcomes:

- `loaded`: rows go on to validation;
- `rejected`: unreadable, empty, header not found, required column missing, a column twice,
  too large, a month in its name other than its folder's, or a row count far from the county's
  last month: readable rows are kept and quarantined with FILE_REJECTED, so the county sees them;
  a symbolic link or a special file (FIFO, device) is refused unread (FILE_NOT_REGULAR), and so is
  a program folder that is a link;
- `duplicate_delivery`: the same bytes as an earlier file: each row is a `duplicate` of the same
  row of that file;
- `superseded`: a later version of the county's roster (…_v2, …_v10, …_更正: correction_series)
  replaces it: rows of the same person point at the row that survives, the rest are quarantined
  FILE_SUPERSEDED. Two files of one county that are not versions of one roster are both loaded.

Writes `_work/ingest/<program>.parquet` (rows) and `_work/ingest/<program>.files.parquet`.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipelines import artefacts
from pipelines.faults import checkpoint
from pipelines.io import (
    ENTRY_KIND_ZH,
    FileRejected,
    NotARegularFile,
    atomic_path,
    decode_text,
    ensure_dir,
    entry_kind,
    inbox_path,
    list_entries,
    read_inbox_bytes,
    sha256_bytes,
)
from pipelines.settings import ONE_OFF_PROGRAMS, PROGRAMS, ROSTER_PROGRAMS, RunContext, RunError
from pipelines.vocabulary import (
    REASONS,
    columns_for,
    fold_fullwidth,
    header_aliases,
    normalise_header,
    required_for,
)

HEADER_SEARCH_ROWS = 10
MIN_HEADER_MATCHES = 3
ROSTER_SUFFIXES = (".csv", ".xlsx", ".parquet")
# An XLSX is a ZIP: refuse one that would inflate beyond this ratio or size (ZIP bombs).
MAX_XLSX_RATIO = 200
# a hidden <col min max> range may run to column XFD (16384): only the header's width matters
MAX_HIDDEN_COLUMN_SPAN = 1024


@dataclass
class FileResult:
    program: str
    source_file: str
    sha256: str = ""
    bytes: int = 0
    format: str = ""
    encoding: str = ""
    header_row: int = 0
    rows: int = 0
    status: str = "loaded"
    reason_code: str = ""
    reason_detail: str = ""
    duplicate_of: str = ""
    superseded_by: str = ""
    county: str = ""
    columns: dict = field(default_factory=dict)  # delivered header -> canonical (or "" if unknown)
    # the month whose accepted file this is, paid forward because the county's file of this month is
    # missing or was rejected whole (不断: carry_forward_* in policy_parameters.csv); "" if delivered
    carried_from: str = ""


def month_inbox(ctx: RunContext):
    """The month's inbox folder, or a RunError saying where it was looked for and how to point
    elsewhere. Called before a run writes anything (pipelines/monthly.check_run_inputs) and again
    by each ingest."""
    month_dir = inbox_path(ctx.inbox) / ctx.month
    if not month_dir.exists():
        raise RunError(f"no inbox for {ctx.month}: {month_dir} does not exist (expected "
                       f"<inbox>/{ctx.month}/rosters/<program>/...; point --inbox or DOUDI_INBOX at the inbox root)")
    if entry_kind(month_dir) in ("symlink", "special"):
        raise RunError(f"the inbox folder of {ctx.month} ({month_dir}) is a symbolic link or a special file: "
                       f"doudi reads only real folders and files in the inbox; put the month's files there and rerun")
    return month_dir


def ingest_program(ctx: RunContext, program: str, previous_counts: dict[str, int] | None = None) -> dict:
    if program not in ROSTER_PROGRAMS:
        raise RunError(f"unknown program {program!r}; expected one of {', '.join(ROSTER_PROGRAMS)}")
    month_dir = month_inbox(ctx)
    if program in ONE_OFF_PROGRAMS:
        previous_counts = {}  # cases come as events do: no county's count of them holds from month to month
    folder = month_dir / "rosters" / program
    tables: list[pa.Table] = []
    results: list[FileResult] = []
    seen_hashes: dict[str, str] = {}
    # a linked folder would bring in files from anywhere: refused, and nothing in it is read
    for linked in (month_dir / "rosters", folder):
        kind = entry_kind(linked)
        if kind in ("symlink", "special"):
            res = FileResult(program=program, source_file=f"rosters/{program}")
            _reject(res, "FILE_NOT_REGULAR", f"{linked.relative_to(month_dir)} 是{ENTRY_KIND_ZH[kind]}，"
                                             "其中的文件一律未读取")
            results.append(res)
            break
    for path in list_entries(folder) if not results else []:
        rel = f"rosters/{program}/{path.name}"
        kind = entry_kind(path)
        res = FileResult(program=program, source_file=rel)
        results.append(res)
        if kind == "folder":  # not a roster, and its files are not read: said, never skipped silently
            _reject(res, "FILE_NOT_REGULAR", f"{rel} 是文件夹，其中的文件未读取（名册文件应直接放在 "
                                             f"rosters/{program}/ 下）")
            continue
        if kind != "file":
            _reject(res, "FILE_NOT_REGULAR", f"{rel} 是{ENTRY_KIND_ZH[kind]}，未读取（收件箱只接受普通文件）")
            continue
        table = _ingest_one(ctx, program, path, res, seen_hashes)
        if table is not None:
            tables.append(table)
        checkpoint("ingest.after_first_file")
    # file-level decisions change only the rows of the files they concern: taken file by file, they
    # never turn a whole program's column into Python objects (17 million dibao rows at 25M)
    tables = _apply_supersession(tables, results)
    tables = _check_row_swing(ctx, tables, results, previous_counts or {})
    if program in PROGRAMS:
        tables += _carry_forward(ctx, program, results, seen_hashes)
    rows = _combine(program, tables)
    ensure_dir(artefacts.ingest_dir(ctx))
    rows_path, files_path = artefacts.ingested_rows(ctx, program), artefacts.ingested_files(ctx, program)
    with atomic_path(rows_path) as tmp:
        pq.write_table(rows, tmp)
    files_table = pa.Table.from_pylist(
        [{**asdict(r), "columns": json.dumps(r.columns, ensure_ascii=False)} for r in results],
        schema=FILES_SCHEMA,
    )
    with atomic_path(files_path) as tmp:
        pq.write_table(files_table, tmp)
    status = Counter(r.status for r in results)
    return {
        "program": program,
        "rows_path": str(rows_path),
        "files_path": str(files_path),
        "files": len(results),
        "rows": rows.num_rows,
        "files_by_status": dict(sorted(status.items())),
    }


# the columns of artefacts.ingested_files, with their pyarrow types
FILES_SCHEMA = pa.schema([(name, getattr(pa, kind)()) for name, kind in artefacts.INGESTED_FILES_COLUMNS.items()])
META_COLUMNS = [
    ("program", pa.string()),
    ("source_file", pa.string()),
    ("source_row", pa.int64()),
    ("file_sha256", pa.string()),
    ("file_status", pa.string()),
    ("file_reason", pa.string()),
    ("duplicate_of_file", pa.string()),
    ("duplicate_of_row", pa.int64()),
    ("row_malformed", pa.string()),  # the raw text of a row whose column count was wrong
    ("extra", pa.string()),  # JSON of unknown columns, kept for lineage
    ("row_hidden", pa.string()),  # ROW_HIDDEN / SHEET_HIDDEN: read from where a caseworker cannot see it
]


def row_schema(program: str) -> pa.Schema:
    return pa.schema(META_COLUMNS + [(c, pa.string()) for c in columns_for(program)])


def _carry_forward(ctx: RunContext, program: str, results: list[FileResult], seen_hashes: dict[str, str]) -> list:
    """不断: a county whose file for the program was loaded last month and is missing this month, or
    was rejected whole, is paid from its last accepted file, read again from the inbox (the bytes
    that were paid, checked by SHA-256): the rows go through every check of this month (deaths,
    exclusions, registries) and their lines are provisional (payment_ledger.provisional_from). At
    most carry_forward_max_months months in a row, for the programs of carry_forward_programs; past
    that, or when the earlier file is gone, the county is reported `not_delivered` and not paid.
    The county's late file is then paid by a supplementary run of the month (what is missing paid,
    what was overpaid reported, never recovered)."""
    from pipelines.months import months_between
    from pipelines.policy import policy_resolved

    policy = policy_resolved(ctx)
    max_months = int(Decimal(policy["carry_forward_max_months"]))
    programs = {p.strip() for p in policy["carry_forward_programs"].split(";") if p.strip()}
    # a county that delivered the header alone says it has nobody on the program: delivered, not late
    delivered = {r.county for r in results if r.county and (r.status == "loaded" or r.reason_code == "FILE_EMPTY")}
    tables = []
    for county, files in sorted(_last_month_files(ctx, program).items()):
        if county in delivered:
            continue
        origin = files[0][2]
        # months paid forward from the origin's file, this one included
        carried = program in programs and months_between(origin, ctx.month) - 1 <= max_months
        read = []
        for source_file, sha, _origin in files if carried else []:
            name = source_file.rsplit("/", 1)[-1]
            res = FileResult(program=program, source_file=f"carried/{origin}/rosters/{program}/{name}",
                             county=county, carried_from=origin)
            path = inbox_path(ctx.inbox) / origin / "rosters" / program / name
            table = _ingest_one(ctx, program, path, res, seen_hashes, file_month=origin) \
                if entry_kind(path) == "file" else None
            if table is None or res.status != "loaded" or res.sha256 != sha:
                read = None  # not the bytes that were paid: nothing of the county is carried
                break
            read.append((res, table))
        if read:
            for res, table in read:
                results.append(res)
                tables.append(table)
            continue
        if program not in programs:
            why = "policy_parameters.csv carry_forward_programs does not list the program"
        elif not carried:
            why = f"paid forward from {origin} for carry_forward_max_months ({max_months}) months already"
        else:
            why = f"its {origin} file is no longer in the inbox with the bytes that were paid"
        results.append(FileResult(program=program, source_file=f"rosters/{program}/{county} (未报送)", county=county,
                                  status="not_delivered", reason_code="FILE_NOT_DELIVERED",
                                  reason_detail=f"上月已报送，本月未报送或被整体退回，未按以往名册发放：{why}"))
    return tables


def _last_month_files(ctx: RunContext, program: str) -> dict[str, list[tuple[str, str, str]]]:
    """{county: [(source_file, sha256, origin month)]} of the files loaded for the program last
    month (a file carried then keeps its origin), from the warehouse; empty without history."""
    from pipelines.months import shift_month

    if not ctx.warehouse.exists():
        return {}
    from pipelines.sqlrun import open_database

    previous = shift_month(ctx.month, -1)
    con = open_database(ctx.warehouse, True, ctx.settings)
    try:
        columns = {r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = "
                                             "'source_file'").fetchall()}
        if not columns:
            return {}
        origin = "coalesce(nullif(carried_from, ''), payroll_month)" if "carried_from" in columns else "payroll_month"
        rows = con.execute(f"SELECT county, source_file, sha256, {origin} FROM source_file WHERE payroll_month = ? "
                           "AND program = ? AND status = 'loaded' AND county <> '' ORDER BY ALL",
                           [previous, program]).fetchall()
    finally:
        con.close()
    out: dict[str, list[tuple[str, str, str]]] = {}
    for county, source_file, sha, origin in rows:
        out.setdefault(county, []).append((source_file, sha, origin))
    return out


def _ingest_one(ctx: RunContext, program: str, path, res: FileResult, seen_hashes: dict[str, str],
                file_month: str | None = None):
    settings = ctx.settings
    name = path.name
    if "/" in name or "\\" in name or ".." in name or not name.lower().endswith(ROSTER_SUFFIXES):
        _reject(res, "FILE_NAME_INVALID", f"文件名不合规或类型不支持（仅限 .csv/.xlsx/.parquet）: {name}")
        return None
    try:
        size = path.stat().st_size
    except OSError as exc:
        _reject(res, "FILE_UNREADABLE", f"无法读取文件: {exc}")
        return None
    res.bytes = int(size)
    if size > settings.max_file_bytes:
        _reject(res, "FILE_TOO_LARGE", f"文件 {size} 字节，超过上限 {settings.max_file_bytes} 字节")
        return None
    try:
        data = read_inbox_bytes(path)
    except NotARegularFile as exc:  # replaced by a link or a FIFO since the folder was listed
        _reject(res, "FILE_NOT_REGULAR", f"{res.source_file} 是{ENTRY_KIND_ZH[exc.kind]}，未读取")
        return None
    res.sha256 = sha256_bytes(data)
    res.format = name.rsplit(".", 1)[-1].lower()
    res.county = name[:6] if name[:6].isdigit() else ""
    body, malformed = None, None
    try:
        grid_header, body, malformed, hidden, concealed = _read_grid(data, res, settings.max_file_bytes)
        mapping = _map_header(program, grid_header, res)
        table = _to_table(program, grid_header, body, malformed, mapping, res, settings.max_field_chars, hidden)
    except FileRejected as rej:
        _reject(res, rej.code, rej.detail)
        # keep what rows we could count, so the county sees them quarantined
        return _rejected_rows(program, res, body, malformed)
    if res.rows == 0:
        _reject(res, "FILE_EMPTY", "文件只有表头，没有数据行")
        return None
    county = Counter(table.column("region_code").to_pylist()).most_common(1)
    if county and county[0][0]:
        res.county = fold_fullwidth(county[0][0]).strip()
    other_months = sorted({m for m in months_in_name(name) if m != (file_month or ctx.month)})
    if other_months:
        # a December file left in January's folder would pay December's roster as January's
        _reject(res, "FILE_MONTH_MISMATCH", f"文件名中的月份 {'、'.join(other_months)} 与所在文件夹的月份 "
                                            f"{ctx.month} 不符，整个文件未采用")
    elif concealed := [_display_name(program, mapping[i]) for i, _label in concealed if i in mapping]:
        # a hidden column of the roster's own (an account nobody saw when signing) would be paid;
        # a hidden helper column that maps to nothing changes nothing
        _reject(res, "FILE_COLUMN_HIDDEN", "被隐藏的列: " + "、".join(concealed))
    if res.status == "rejected":  # its rows are kept with their values, quarantined, so the county sees them
        n = table.num_rows
        return _replace_columns(table, file_status=["rejected"] * n, file_reason=[res.reason_code] * n)
    if res.sha256 in seen_hashes:
        res.status = "duplicate_delivery"
        res.duplicate_of = seen_hashes[res.sha256]
        n = table.num_rows
        table = _replace_columns(table, file_status=["duplicate_delivery"] * n,
                                 duplicate_of_file=[res.duplicate_of] * n,
                                 duplicate_of_row=table.column("source_row"))
    else:
        seen_hashes[res.sha256] = res.source_file
    return table


# A month in a file name, as counties write it: 202001, 2020-01, 2020.1, 2020年1月. Years 19xx/20xx
# only, between non-digits, so the six-digit county code in front (210124, no province code starts
# with 19 or 20) and an eight-digit date (20200131) are not taken for a month.
_NAME_MONTHS = (re.compile(r"(?<!\d)((?:19|20)\d{2})(0[1-9]|1[0-2])(?!\d)"),
                re.compile(r"(?<!\d)((?:19|20)\d{2})[-.年](0?[1-9]|1[0-2])(?!\d)"))


def months_in_name(name: str) -> set[str]:
    """The months (YYYY-MM) a roster file's name states; empty when it states none."""
    stem = fold_fullwidth(name).rsplit(".", 1)[0]
    return {f"{m.group(1)}-{int(m.group(2)):02d}" for pattern in _NAME_MONTHS for m in pattern.finditer(stem)}


def _reject(res: FileResult, code: str, detail: str) -> None:
    res.status = "rejected"
    res.reason_code = code
    res.reason_detail = f"{REASONS[code].message_zh}：{detail}" if detail else REASONS[code].message_zh


def _read_grid(data: bytes, res: FileResult, max_bytes: int):
    """Return (header cells, body columns as lists of str, malformed rows {row_no: text},
    rows read from hidden places {row_no: reason code}, hidden columns [(index, header)])."""
    fmt = res.format
    if fmt == "csv":
        text, res.encoding = decode_text(data)
        return (*_read_csv(text, res), {}, [])
    if fmt == "xlsx":
        res.encoding = "xlsx"
        return _read_xlsx(data, res, max_bytes)
    res.encoding = "parquet"
    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - any parse failure means an unreadable file
        raise FileRejected("FILE_UNREADABLE", f"Parquet 无法解析: {exc}") from exc
    header = list(table.column_names)
    body = [[None if v is None else _cell_text(v) for v in col.to_pylist()] for col in table.columns]
    res.header_row = 0
    return header, body, {}, {}, []


def _find_header(rows: list[list[str]], res: FileResult) -> int:
    for i, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        known = sum(1 for c in row if c is not None and normalise_header(c) in _ALL_ALIASES)
        if known >= MIN_HEADER_MATCHES:
            return i
    raise FileRejected("FILE_HEADER_UNKNOWN", "前10行中没有可识别的表头")


def _read_csv(text: str, res: FileResult):
    import csv

    if not text.strip():
        raise FileRejected("FILE_EMPTY", "文件为空")
    head_lines = []
    for line in io.StringIO(text):
        if line.strip():
            head_lines.append(line)
        if len(head_lines) >= HEADER_SEARCH_ROWS:
            break
    try:
        head_rows = list(csv.reader(head_lines))
    except csv.Error as exc:
        raise FileRejected("FILE_UNREADABLE", f"CSV 格式错误: {exc}") from exc
    h = _find_header(head_rows, res)
    res.header_row = h
    header = head_rows[h]
    names = [f"c{i}" for i in range(len(header))]
    malformed: dict[int, str] = {}

    def on_invalid(row):
        malformed[row.number - (h + 1)] = row.text
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            read_options=pacsv.ReadOptions(skip_rows=h + 1, column_names=names, use_threads=False,
                                           block_size=1 << 24),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=True,
                null_values=[""], quoted_strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise FileRejected("FILE_UNREADABLE", f"CSV 无法解析: {exc}") from exc
    body = [table.column(n).to_pylist() for n in names]
    return header, body, malformed


def _read_xlsx(data: bytes, res: FileResult, max_bytes: int):
    """The first sheet (contract section 1), and the rows a caseworker cannot see: a hidden row of it,
    every row of it if it is hidden, and the rows of any hidden or very hidden sheet whose header is
    a roster's. Those are read, numbered after the first sheet's rows, and marked (ROW_HIDDEN,
    SHEET_HIDDEN) to be quarantined: a row nobody saw when the roster was signed is never paid."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            inflated = sum(i.file_size for i in zf.infolist())
            if inflated > max_bytes or inflated > MAX_XLSX_RATIO * max(len(data), 1):
                raise FileRejected("FILE_TOO_LARGE", f"XLSX 解压后 {inflated} 字节，疑似压缩炸弹")
            hidden_rows, hidden_columns = _first_sheet_hidden(zf)
    except zipfile.BadZipFile as exc:
        raise FileRejected("FILE_UNREADABLE", "不是有效的 XLSX 文件") from exc
    from python_calamine import CalamineWorkbook, SheetVisibleEnum

    try:
        wb = CalamineWorkbook.from_filelike(io.BytesIO(data))
        sheets = wb.sheets_metadata
        grid = wb.get_sheet_by_index(0).to_python(skip_empty_area=False)
        hidden_grids = [wb.get_sheet_by_index(i).to_python(skip_empty_area=False)
                        for i, m in enumerate(sheets) if i > 0 and m.visible != SheetVisibleEnum.Visible]
    except Exception as exc:  # noqa: BLE001
        raise FileRejected("FILE_UNREADABLE", f"XLSX 无法解析: {exc}") from exc
    rows = _nonempty_rows(grid)  # (sheet row number from 1, cells)
    if not rows:
        raise FileRejected("FILE_EMPTY", "工作表为空")
    h = _find_header([r for _, r in rows], res)
    res.header_row = h
    header = rows[h][1]
    width = len(header)
    concealed = [(i, str(header[i])) for i in sorted(hidden_columns) if i < width and header[i] not in (None, "")]
    first_hidden = bool(sheets) and sheets[0].visible != SheetVisibleEnum.Visible
    body_rows, hidden = [], {}
    for number, cells in rows[h + 1:]:
        body_rows.append(cells)
        if first_hidden or number in hidden_rows:
            hidden[len(body_rows)] = "SHEET_HIDDEN" if first_hidden else "ROW_HIDDEN"
    # a hidden sheet's columns are placed under the first sheet's header by their header text
    position = {normalise_header(c): i for i, c in enumerate(header) if c not in (None, "")}
    for sheet in hidden_grids:
        sheet_rows = [r for _, r in _nonempty_rows(sheet)]
        try:
            sh = _find_header(sheet_rows, res)
        except FileRejected:
            continue  # no roster header (a list behind a drop-down, notes): no row of it can be paid
        columns = {position[normalise_header(c)]: j for j, c in enumerate(sheet_rows[sh])
                   if c not in (None, "") and normalise_header(c) in position}
        for cells in sheet_rows[sh + 1:]:
            body_rows.append([cells[columns[i]] if i in columns and columns[i] < len(cells) else None
                              for i in range(width)])
            hidden[len(body_rows)] = "SHEET_HIDDEN"
    body = [[(r[i] if i < len(r) else None) for r in body_rows] for i in range(width)]
    return header, body, {}, hidden, concealed


def _nonempty_rows(grid) -> list[tuple[int, list]]:
    rows = [(n, [_cell_text(v) for v in row]) for n, row in enumerate(grid, start=1)]
    return [(n, r) for n, r in rows if any(v not in (None, "") for v in r)]


_XLSX_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_XLSX_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_ROW_OR_COL = re.compile(rb"<(?:\w+:)?(row|col)\b([^>]*)>")
_ATTRIBUTE = re.compile(rb'\b(r|hidden|ht|min|max|width)="([^"]*)"')


def _first_sheet_hidden(zf: zipfile.ZipFile) -> tuple[set[int], set[int]]:
    """The first sheet's hidden rows (numbers from 1) and hidden columns (indexes from 0): hidden="1",
    or a height or width of 0. calamine reads cell values only, so these come from the sheet's XML.
    The ZIP was size-checked before; ElementTree (for the two small parts) resolves no external entity."""
    import posixpath
    import xml.etree.ElementTree as ET

    try:
        workbook = ET.fromstring(zf.read("xl/workbook.xml"))
        rels = ET.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
    except (KeyError, ET.ParseError) as exc:
        raise FileRejected("FILE_UNREADABLE", f"XLSX 结构损坏: {exc}") from exc
    targets = {r.get("Id"): r.get("Target", "") for r in rels.iter(f"{_PKG_REL}Relationship")}
    first = next(iter(workbook.iter(f"{_XLSX_MAIN}sheet")), None)
    if first is None:
        return set(), set()
    target = targets.get(first.get(f"{_XLSX_REL}id"), "")
    part = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
    hidden: set[int] = set()
    columns: set[int] = set()
    try:
        with zf.open(part) as fh:
            # the start tags of <row> and <col> only, found by pattern as the XML streams: no
            # raw "<" can stand in XML text or attribute values, and a parser building every
            # cell spent 16 s on a 200,000-row sheet that this reads in well under one
            number, tail = 0, b""
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                buffer = tail + chunk
                cut = buffer.rfind(b"<")
                buffer, tail = buffer[:cut], buffer[cut:]
                for tag, attributes in _ROW_OR_COL.findall(buffer):
                    a = dict(_ATTRIBUTE.findall(attributes))
                    if tag == b"row":
                        number = int(a.get(b"r") or number + 1)  # r is optional: rows then follow one another
                        if a.get(b"hidden") in (b"1", b"true") or a.get(b"ht") in (b"0", b"0.0"):
                            hidden.add(number)
                    elif a.get(b"hidden") in (b"1", b"true") or a.get(b"width") in (b"0", b"0.0"):
                        low, high = int(a.get(b"min", b"0")), int(a.get(b"max", b"0"))
                        columns.update(range(low - 1, min(high, MAX_HIDDEN_COLUMN_SPAN + low - 1)))
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise FileRejected("FILE_UNREADABLE", f"XLSX 工作表无法解析: {exc}") from exc
    return hidden, columns


def _cell_text(v) -> str | None:
    """A spreadsheet cell as the text a caseworker sees."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()[:10]
    s = str(v)
    return s if s != "" else None


_ALL_ALIASES = {a for p in ROSTER_PROGRAMS for a in header_aliases(p)}


def _map_header(program: str, header: list, res: FileResult) -> dict[int, str]:
    aliases = header_aliases(program)
    mapping: dict[int, str] = {}
    seen: dict[str, str] = {}
    for i, cell in enumerate(header):
        label = "" if cell is None else str(cell)
        canonical = aliases.get(normalise_header(label), "")
        res.columns[label or f"(第{i + 1}列)"] = canonical
        if not canonical:
            continue
        if canonical in seen:
            raise FileRejected("FILE_COLUMN_DUPLICATE", f"“{seen[canonical]}”与“{label}”都表示 {canonical}")
        seen[canonical] = label
        mapping[i] = canonical
    missing = [c for c in required_for(program) if c not in seen]
    if missing:
        raise FileRejected("FILE_COLUMN_MISSING", "缺少列: " + "、".join(_display_name(program, c) for c in missing))
    return mapping


def _display_name(program: str, canonical: str) -> str:
    from pipelines.vocabulary import COMMON_COLUMNS, PROGRAM_COLUMNS

    table = {**COMMON_COLUMNS, **PROGRAM_COLUMNS[program]}
    return f"{table[canonical][0]}({canonical})"


def _to_table(program, header, body, malformed, mapping, res: FileResult, max_field_chars: int,
              hidden: dict[int, str] | None = None) -> pa.Table:
    n_valid = len(body[0]) if body else 0
    n = n_valid + len(malformed)
    res.rows = n
    # positions of valid rows among all data rows (malformed rows keep their own numbers)
    bad_numbers = sorted(malformed)
    if bad_numbers:
        valid_numbers = [i for i in range(1, n + 1) if i not in malformed]
    else:
        valid_numbers = list(range(1, n + 1))
    order = sorted(valid_numbers + bad_numbers)
    cols: dict[str, list] = {c: [None] * n for c in columns_for(program)}
    slot = {num: k for k, num in enumerate(order)}
    valid_slots = [slot[num] for num in valid_numbers]
    for i, canonical in mapping.items():
        col = cols[canonical]
        values = body[i]
        for k, v in zip(valid_slots, values, strict=True):
            if v is not None and len(v) > max_field_chars:
                raise FileRejected("FILE_TOO_LARGE", f"第{order[k]}行“{header[i]}”超过 {max_field_chars} 个字符")
            col[k] = v
    extra_idx = [i for i in range(len(header)) if i not in mapping and header[i] not in (None, "")]
    extra = [None] * n
    if extra_idx:
        for j, k in enumerate(valid_slots):
            d = {str(header[i]): body[i][j] for i in extra_idx if body[i][j] is not None}
            extra[k] = json.dumps(d, ensure_ascii=False) if d else None
    row_malformed = [None] * n
    for num in bad_numbers:
        row_malformed[slot[num]] = malformed[num][:max_field_chars * 4]
    row_hidden = [(hidden or {}).get(num) for num in order]
    return _rows_table(program, res, order, "loaded", cols, row_malformed=row_malformed, extra=extra,
                       row_hidden=row_hidden)


def _rejected_rows(program: str, res: FileResult, body, malformed) -> pa.Table | None:
    """Rows of a rejected file that we could count: kept, so conservation holds and the county sees them."""
    n = (len(body[0]) if body else 0) + len(malformed or {})
    res.rows = n
    if n == 0:
        return None
    return _rows_table(program, res, list(range(1, n + 1)), "rejected", {}, file_reason=res.reason_code)


def _rows_table(program: str, res: FileResult, source_rows: list[int], file_status: str, values: dict,
                file_reason: str | None = None, row_malformed: list | None = None,
                extra: list | None = None, row_hidden: list | None = None) -> pa.Table:
    """One file's rows with their lineage columns; canonical columns not in `values` are empty."""
    n = len(source_rows)
    empty = [None] * n
    meta = {
        "program": [program] * n,
        "source_file": [res.source_file] * n,
        "source_row": source_rows,
        "file_sha256": [res.sha256] * n,
        "file_status": [file_status] * n,
        "file_reason": [file_reason] * n,
        "duplicate_of_file": empty,
        "duplicate_of_row": empty,
        "row_malformed": row_malformed or empty,
        "extra": extra or empty,
        "row_hidden": row_hidden or empty,
    }
    columns = {c: values.get(c, empty) for c in columns_for(program)}
    return pa.table({**meta, **columns}, schema=row_schema(program))


def _replace_columns(table: pa.Table, **values) -> pa.Table:
    """The table with the named columns replaced, each keeping its type in the row schema."""
    for name, column in values.items():
        idx = table.schema.get_field_index(name)
        field = table.schema.field(idx)
        if not isinstance(column, (pa.Array, pa.ChunkedArray)):
            column = pa.array(column, type=field.type)
        table = table.set_column(idx, field, column)
    return table


def _combine(program: str, tables: list[pa.Table]) -> pa.Table:
    if not tables:
        return row_schema(program).empty_table()
    return pa.concat_tables(tables)


def _file_of(table: pa.Table) -> str:
    """The source file of one file's table (every file's rows are read into a table of their own)."""
    return table.column("source_file")[0].as_py() if table.num_rows else ""


def _rewrite_files(tables: list[pa.Table], files, rewrite) -> list[pa.Table]:
    """Each table whose file is in `files` replaced by `rewrite(table, file)`; the others as they are."""
    return [rewrite(t, f) if (f := _file_of(t)) in files else t for t in tables]


# A correction is named after the file it corrects, with a version mark at the end of the name:
# 210102_dibao_202003_v2.csv, …_v10.csv, …_第3版.csv, …_更正.csv, …_更正2.csv. Versions compare as
# numbers (v10 after v2); an unmarked name is version 1, and 更正 without a number is version 2.
_CORRECTION_MARK = re.compile(r"(?:[_\-\s]+[vV](\d+)|[_\-\s]*第(\d+)版|[_\-\s]*(?:更正|修正)(\d*))$")


def correction_series(file_name: str) -> tuple[str, tuple[int, ...]]:
    """(the name without its version marks, the versions from the first mark on): files of one
    county in one series are versions of one roster; files in two series are two rosters."""
    stem = file_name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    versions: list[int] = []
    while (m := _CORRECTION_MARK.search(stem)) and m.start() > 0:
        number = m.group(1) or m.group(2) or m.group(3)
        versions.insert(0, int(number) if number else 2)
        stem = stem[:m.start()]
    return stem, tuple(versions)


def _apply_supersession(tables: list[pa.Table], results: list[FileResult]) -> list[pa.Table]:
    """The latest version of a county's roster replaces its earlier versions (correction_series).
    Two files of one county that are not versions of one roster (one per street office: …_街道A,
    …_街道B) are both read; integrity reports them (county_files_read_together)."""
    series = {r.source_file: correction_series(r.source_file) for r in results if r.status == "loaded" and r.county}
    by_series: dict[tuple[str, str], list[FileResult]] = {}
    for r in results:
        if r.source_file in series:
            by_series.setdefault((r.county, series[r.source_file][0]), []).append(r)
    superseded: dict[str, FileResult] = {}
    for files in by_series.values():
        if len(files) < 2:
            continue
        files = sorted(files, key=lambda r: (series[r.source_file][1], r.source_file))
        survivor = files[-1]
        for old in files[:-1]:
            old.status = "superseded"
            old.superseded_by = survivor.source_file
            superseded[old.source_file] = survivor
    if not superseded:
        return tables
    survivors = {s.source_file for s in superseded.values()}
    index: dict[tuple[str, str], int] = {}  # (survivor file, person) -> the row that survives
    for table in tables:
        f = _file_of(table)
        if f in survivors:
            ids = [_id_key(v) for v in table.column("id_number").to_pylist()]
            for k, src_row in enumerate(table.column("source_row").to_pylist()):
                if ids[k] and (f, ids[k]) not in index:
                    index[(f, ids[k])] = src_row

    def supersede(table: pa.Table, f: str) -> pa.Table:
        target = superseded[f].source_file
        hits = [index.get((target, _id_key(v))) for v in table.column("id_number").to_pylist()]
        return _replace_columns(
            table, file_status=["superseded"] * table.num_rows,
            duplicate_of_file=[target if h is not None else d
                               for h, d in zip(hits, table.column("duplicate_of_file").to_pylist(), strict=True)],
            duplicate_of_row=[h if h is not None else d
                              for h, d in zip(hits, table.column("duplicate_of_row").to_pylist(), strict=True)],
            file_reason=[r if h is not None else "FILE_SUPERSEDED"
                         for h, r in zip(hits, table.column("file_reason").to_pylist(), strict=True)])

    return _rewrite_files(tables, superseded, supersede)


def _id_key(v: str | None) -> str:
    return fold_fullwidth(v).strip().upper() if v else ""


def _check_row_swing(ctx: RunContext, tables: list[pa.Table], results: list[FileResult],
                     previous: dict[str, int]) -> list[pa.Table]:
    """Reject a county file whose row count swings too far from the same county's last month."""
    s = ctx.settings
    for r in results:
        if r.status != "loaded" or r.county not in previous:
            continue
        before = previous[r.county]
        if before < s.row_swing_min_rows:
            continue
        if abs(r.rows - before) / before > s.max_row_swing:
            _reject(r, "FILE_ROW_SWING", f"上月 {before} 行，本月 {r.rows} 行，变化超过 {s.max_row_swing:.0%}")
    rejected = {r.source_file: r.reason_code for r in results if r.status == "rejected"}
    if not rejected:
        return tables

    def reject(table: pa.Table, f: str) -> pa.Table:
        status = table.column("file_status").to_pylist()
        reason = table.column("file_reason").to_pylist()
        loaded = [was == "loaded" for was in status]
        return _replace_columns(
            table, file_status=["rejected" if ld else was for ld, was in zip(loaded, status, strict=True)],
            file_reason=[rejected[f] if ld else r for ld, r in zip(loaded, reason, strict=True)])

    return _rewrite_files(tables, rejected, reject)
