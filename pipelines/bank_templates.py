"""Bank payout templates (批量代发 file layouts): `bank_templates.csv` in the reference folder, and the
column `payout_template` of `banks.csv` choosing one per bank (README, "Bank files").

A template is one row: which record fields go in which column order (RECORD_FIELDS), the header
and footer lines around the records (with the batch's count, sum, paying account and dates,
BATCH_FIELDS), the encoding, the separator, the file name, and the most records a file may hold.
`format=pain001` instead picks the ISO 20022 rendering (pipelines/payout_render.py) for that bank.
Both tables are optional: a folder without them, or a bank without a template, gets the files doudi
wrote before (the CSV and DOUDI_PAYOUT_FORMATS).

A template file is composed by DuckDB (one line per record, as the CSV is), encoded in Python,
written under a temporary name and read back by read_totals: decoded with the template's encoding,
its records counted and their amounts added up, its header and footer compared with the ones those
read totals give. Values that would break the layout (the separator, a line break, a character the
encoding lacks) stop the file with a sentence naming the record: banks' layouts have no quoting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from pipelines.settings import RunError
from pipelines.sqlrun import sql_string

# Record fields a template's `columns` may list (names as bank layouts print them), and the column
# of the batch table (pipelines/payout_render.py load_batch) each is read from.
RECORD_FIELDS = {
    "序号": "CAST(rn AS VARCHAR)",  # 1, 2, ... within the file
    "支付流水号": "payment_ref",  # what a bank return names (contract section 4)
    "账号": "payee_account",
    "户名": "payee_name",
    "金额": "CAST(amount AS VARCHAR)",  # yuan with two decimals: 1278.22
    "金额分": "CAST(CAST(amount * 100 AS BIGINT) AS VARCHAR)",  # integer fen: 127822
    "证件号": "payee_id_number",  # the account holder's ID when a line of the record is theirs, else empty
    "摘要": "memo",
    "附言": "memo",
    "开户行": "bank_name",
    "银行代码": "bank_code",
    "行政区划代码": "region_code",
}
AMOUNT_FIELDS = ("金额", "金额分")
REQUIRED_FIELDS = ("账号", "户名")
# Batch fields a header, footer or file name may name in braces: {总笔数}
BATCH_FIELDS = ("总笔数", "总金额", "总金额分", "付款账号", "付款户名", "付款行", "执行日期", "发放月份", "批次",
                "银行代码", "文件序号", "列名")
FILE_NAME_NEEDS = ("银行代码", "批次", "文件序号")  # so that no two files of a month share a name
# the paying-side settings a template needs when it names these fields
DEBTOR_FIELDS = {"付款账号": "DOUDI_DEBTOR_ACCOUNT", "付款行": "DOUDI_DEBTOR_BIC"}
FORMATS = ("delimited", "pain001")
ENCODINGS = {"gb18030": "gb18030", "gbk": "gbk", "utf-8": "utf-8", "utf8": "utf-8"}
SEPARATORS = {"tab": "\t"}
LINE_END = "\r\n"  # banks' systems read Windows text
TEMPLATE_KEY = re.compile(r"^[A-Za-z0-9_]+$")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
TEMPLATES_FILE = "bank_templates.csv"
BANK_TEMPLATE_COLUMN = "payout_template"


@dataclass(frozen=True)
class Template:
    key: str
    format: str
    encoding: str = "utf-8"
    separator: str = ","
    columns: tuple[str, ...] = ()
    header: tuple[str, ...] = ()
    footer: tuple[str, ...] = ()
    file_name: str = ""
    max_records: int | None = None

    def batch_fields(self) -> set[str]:
        """Every batch field its header, footer and file name name."""
        return {m for text in (*self.header, *self.footer, self.file_name) for m in PLACEHOLDER.findall(text)}

    def debtor_settings(self) -> set[str]:
        """The paying-side settings its files carry (all of them for pain.001)."""
        if self.format == "pain001":
            return set(DEBTOR_FIELDS.values())
        return {DEBTOR_FIELDS[f] for f in self.batch_fields() if f in DEBTOR_FIELDS}


def load(reference: Path) -> dict[str, Template]:
    """The bank code -> template of each bank whose `payout_template` names one; a sentence for any
    template or choice that cannot work, before any file is written."""
    from pipelines.sqlrun import read_reference_csv

    banks_path = Path(reference) / "banks.csv"
    banks = read_reference_csv(banks_path).to_pylist() if banks_path.exists() else []
    chosen = {(b.get("bank_code") or "").strip().upper(): (b.get(BANK_TEMPLATE_COLUMN) or "").strip()
              for b in banks}
    chosen = {bank: key for bank, key in chosen.items() if bank and key}
    templates_path = Path(reference) / TEMPLATES_FILE
    templates = {}
    if templates_path.exists():
        for line, row in enumerate(read_reference_csv(templates_path).to_pylist(), start=2):
            template = parse(row, line)
            if template.key in templates:
                raise RunError(f"{TEMPLATES_FILE} line {line}: template {template.key} is defined twice.")
            templates[template.key] = template
    unknown = sorted({key for key in chosen.values() if key not in templates})
    if unknown:
        raise RunError(f"banks.csv column {BANK_TEMPLATE_COLUMN} names template {unknown[0]}, which "
                       f"{TEMPLATES_FILE} does not define: add its row or correct the name.")
    return {bank: templates[key] for bank, key in chosen.items()}


def parse(row: dict, line: int) -> Template:
    """One row of bank_templates.csv as a Template, or a sentence saying what to correct."""
    where = f"{TEMPLATES_FILE} line {line}"
    text = {k: (v or "") for k, v in row.items()}
    key, fmt = text.get("template", "").strip(), text.get("format", "").strip().lower()
    if not TEMPLATE_KEY.match(key):
        raise RunError(f"{where}: template {key!r} must be a name of letters, digits and underscores.")
    where = f"{where} (template {key})"
    if fmt not in FORMATS:
        raise RunError(f"{where}: format {fmt!r} must be one of {', '.join(FORMATS)}.")
    cap_text = text.get("max_records", "").strip()
    if cap_text and not (cap_text.isdigit() and int(cap_text) > 0):
        raise RunError(f"{where}: max_records {cap_text!r} must be a whole number above 0, or blank for no cap.")
    cap = int(cap_text) if cap_text else None
    if fmt == "pain001":
        return Template(key=key, format=fmt, max_records=cap)
    encoding = ENCODINGS.get(text.get("encoding", "").strip().lower())
    if encoding is None:
        raise RunError(f"{where}: encoding {text.get('encoding')!r} must be one of gb18030, gbk, utf-8.")
    separator = text.get("separator", "")
    separator = SEPARATORS.get(separator.strip().lower(), separator)
    if len(separator) != 1 or separator in "\r\n\"{}":
        raise RunError(f"{where}: separator {text.get('separator')!r} must be one character (or the word tab).")
    columns = tuple(c.strip() for c in text.get("columns", "").split(";") if c.strip())
    wrong = [c for c in columns if c not in RECORD_FIELDS]
    if wrong:
        raise RunError(f"{where}: column {wrong[0]!r} is not a record field; the fields are "
                       f"{'、'.join(RECORD_FIELDS)}.")
    missing = [c for c in REQUIRED_FIELDS if c not in columns]
    if missing or not any(c in columns for c in AMOUNT_FIELDS):
        raise RunError(f"{where}: columns must include 账号, 户名 and 金额 (or 金额分).")
    header, footer = (tuple(text.get(k, "").replace("\r\n", "\n").split("\n")) if text.get(k, "").strip() else ()
                      for k in ("header", "footer"))
    file_name = text.get("file_name", "").strip()
    template = Template(key=key, format=fmt, encoding=encoding, separator=separator, columns=columns,
                        header=header, footer=footer, file_name=file_name, max_records=cap)
    named = template.batch_fields()
    unknown = sorted(named - set(BATCH_FIELDS))
    if unknown:
        raise RunError(f"{where}: {{{unknown[0]}}} is not a batch field; the fields are "
                       f"{'、'.join(BATCH_FIELDS)}.")
    needed = [f for f in FILE_NAME_NEEDS if f"{{{f}}}" not in file_name]
    if needed or "/" in file_name or "\\" in file_name or file_name.startswith("."):
        raise RunError(f"{where}: file_name {file_name!r} must be a plain file name naming "
                       f"{'、'.join('{' + f + '}' for f in FILE_NAME_NEEDS)}.")
    return template


def file_name(template: Template, month: str, bank_code: str, batch_id: str, part: int) -> str:
    return render_line(template.file_name, {"发放月份": month.replace("-", ""), "银行代码": bank_code,
                                           "批次": batch_id, "文件序号": f"{part:02d}"})


def render_line(text: str, values: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def batch_values(template: Template, count: int, total: Decimal, *, month: str, bank_code: str, batch_id: str,
                 part: int, debtor_name: str, debtor_account: str, debtor_bic: str, execution_date: str) -> dict:
    """The batch fields of one file, the totals as given (the query's when writing, the file's own
    records' when reading back)."""
    return {"总笔数": str(count), "总金额": f"{total:.2f}", "总金额分": str(int(total * 100)),
            "付款账号": debtor_account, "付款户名": debtor_name, "付款行": debtor_bic,
            "执行日期": execution_date.replace("-", ""), "发放月份": month.replace("-", ""), "批次": batch_id,
            "银行代码": bank_code, "文件序号": f"{part:02d}", "列名": template.separator.join(template.columns)}


def needs_payee_ids(templates: dict[str, Template]) -> bool:
    return any("证件号" in t.columns for t in templates.values())


def prepare_payee_ids(con) -> None:
    """Table `payee_ids`: for each of the month's records (`payout_records`), the ID number of the
    account holder where one of its ledger lines (`full_ledger`, pipelines/payout.py) is theirs
    (beneficiary named as the account), else NULL (an institution, a guardian). Once a month, before
    the batch parts are written side by side: joined per part, the ledger was read once a part (67 s
    of a 2.6M month's payout stage)."""
    con.execute("""
        CREATE OR REPLACE TABLE payee_ids AS
        SELECT r.payment_ref, min(l.id_number) FILTER (WHERE l.beneficiary_name = r.payee_name) AS id_number
        FROM (SELECT payment_ref, payee_name, unnest(line_ids) AS line_id FROM payout_records) r
        JOIN full_ledger l ON l.line_id = r.line_id
        GROUP BY r.payment_ref""")


def add_payee_ids(con) -> None:
    """`batch.payee_id_number`, from `payee_ids` (prepare_payee_ids)."""
    con.execute("ALTER TABLE batch ADD COLUMN payee_id_number VARCHAR")
    con.execute("UPDATE batch SET payee_id_number = p.id_number FROM payee_ids p "
                "WHERE p.payment_ref = batch.payment_ref")


def render(con, template: Template, values: dict[str, str]) -> bytes:
    """The batch (table `batch`, pipelines/payout_render.py load_batch) in the template's layout:
    header lines, one line per record in file order, footer lines, each ended by CRLF."""
    if "证件号" in template.columns:
        add_payee_ids(con)
    sep = template.separator
    fields = [f"coalesce({RECORD_FIELDS[c]}, '')" for c in template.columns]
    broken = con.execute(
        f"SELECT payment_ref, [{', '.join(fields)}] FROM batch WHERE "
        + " OR ".join(f"contains({f}, '{sql_string(sep)}') OR regexp_matches({f}, '[\\r\\n]')" for f in fields)
        + " ORDER BY rn LIMIT 1").fetchone()
    if broken:
        ref, row = broken
        column = next(c for c, v in zip(template.columns, row, strict=True) if sep in v or "\r" in v or "\n" in v)
        raise RunError(f"payout record {ref}: its {column} holds the separator {sep!r} or a line break, which "
                       f"bank template {template.key} cannot carry; correct the roster value.")
    body = con.execute(f"SELECT coalesce(string_agg(concat_ws('{sql_string(sep)}', {', '.join(fields)}) || "
                       f"'{LINE_END}', '' ORDER BY rn), '') FROM batch").fetchone()[0]
    head = "".join(render_line(h, values) + LINE_END for h in template.header)
    foot = "".join(render_line(f, values) + LINE_END for f in template.footer)
    text = head + body + foot
    try:
        return text.encode(template.encoding)
    except UnicodeEncodeError as exc:
        record = text[:exc.start].count("\n") - len(template.header) + 1
        ref = con.execute("SELECT payment_ref FROM batch WHERE rn = ?", [record]).fetchone()
        where = f"payout record {ref[0]}" if ref else "its header or footer"
        raise RunError(f"{where} holds {text[exc.start]!r}, which {template.encoding} cannot encode: bank "
                       f"template {template.key} needs another encoding (gb18030 takes every character), or "
                       "correct the value.") from exc


def read_totals(path: Path, template: Template, values: dict[str, str]) -> tuple[int, Decimal]:
    """Count and sum of a template file as the bank reads it: decoded with the template's encoding,
    the lines between its header and footer split at the separator, the amounts added up to the
    fen (金额 in yuan, or 金额分 in fen; both must agree where both are there), 序号 running 1, 2, ...
    The header and footer must be the ones these totals give (`values` the batch's other fields)."""
    try:
        text = path.read_bytes().decode(template.encoding)
    except UnicodeDecodeError as exc:
        raise RunError(f"{path.name} cannot be read back as {template.encoding}: {exc}") from exc
    if not text.endswith(LINE_END):
        raise RunError(f"{path.name}: its last line is cut short (no line end)")
    lines = text[:-len(LINE_END)].split(LINE_END) if text else []
    h, f = len(template.header), len(template.footer)
    if len(lines) < h + f:
        raise RunError(f"{path.name}: {len(lines)} lines, fewer than its header and footer")
    records = lines[h:len(lines) - f]
    count, total = 0, Decimal("0.00")
    for number, line in enumerate(records, start=1):
        fields = line.split(template.separator)
        if len(fields) != len(template.columns):
            raise RunError(f"{path.name}: record {number} has {len(fields)} fields, template {template.key} "
                           f"{len(template.columns)}")
        row = dict(zip(template.columns, fields, strict=True))
        try:
            amounts = [Decimal(row["金额"])] if "金额" in row else []
            if "金额分" in row:
                amounts.append(Decimal(int(row["金额分"])).scaleb(-2))
        except (ArithmeticError, ValueError) as exc:
            raise RunError(f"{path.name}: record {number} has no readable amount ({exc})") from exc
        if len(set(amounts)) != 1 or ("序号" in row and row["序号"] != str(number)):
            raise RunError(f"{path.name}: record {number} reads {row.get('序号')} / {amounts}")
        count += 1
        total += amounts[0]
    expected = {**values, "总笔数": str(count), "总金额": f"{total:.2f}", "总金额分": str(int(total * 100))}
    declared = lines[:h] + lines[len(lines) - f:]
    if declared != [render_line(t, expected) for t in (*template.header, *template.footer)]:
        raise RunError(f"{path.name}: its header or footer {declared} disagrees with its {count} records / "
                       f"{total:.2f}")
    return count, total.quantize(Decimal("0.01"))
