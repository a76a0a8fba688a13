"""The analysts' database (issue 7): the warehouse's star schema with personal data removed.

Written after every publish, whole, to a temporary file renamed into place (DOUDI_ANALYST_DB,
default `<warehouse>_analyst.duckdb`):

- ID numbers become `person_key`, household IDs `household_key`: HMAC-SHA256 with a secret kept
  in a file outside both databases (DOUDI_PSEUDONYM_KEY_FILE, created owner-only on first use).
  The same person keeps the same key across months; without the secret the key cannot be turned
  back into an ID number.
- names and accounts are masked (first character / last four digits), birth dates reduced to the
  year, long digit runs in finding texts masked.

Every table and column carries its meaning (COMMENT ON, from DICTIONARY below), and
`write_dictionary` renders them as the data dictionary (docs/data_dictionary.md).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from pipelines.io import PRIVATE_FILE_MODE, atomic_path, ensure_dir
from pipelines.settings import RunContext
from pipelines.sqlrun import attach_warehouse, load_macros, sql_string

KEY_LENGTH = 16  # hex digits of the HMAC kept as the key (64 bits), written as letters a-p

DICTIONARY: dict[str, tuple[str, dict[str, str]]] = {
    "dim_region": ("县级行政区划 County-level regions of the province (GB/T 2260)", {
        "region_code": "6-digit county code", "county_name": "county name", "city_code": "4-digit city code",
        "city_name": "city name", "province_code": "2-digit province code", "province_name": "province name"}),
    "dim_program": ("救助项目 Programs of the ledger", {
        "program": "program code as in the ledger", "program_zh": "Chinese name",
        "fund_program": "program whose fund shares (fund_shares.csv) pay it"}),
    "dim_month": ("月份 Calendar of payroll and service months", {
        "month": "YYYY-MM", "year": "calendar year", "quarter": "quarter 1-4", "month_of_year": "month 1-12",
        "half_year": "YYYY-H1 or YYYY-H2"}),
    "dim_person": ("救助对象（历史版本）People accepted on a roster; a new version when name, county, "
                   "urban/rural, account or account holder changes", {
        "person_key": "pseudonym of the ID number (same across months)", "version": "version number, from 1",
        "valid_from": "first payroll month of this version", "valid_to": "last month of this version (NULL: current)",
        "is_current": "true for the latest version", "last_seen": "last payroll month the person was on a roster",
        "name_masked": "name, first character only", "sex": "男/女", "birth_year": "year of birth",
        "region_code": "managing county", "urban_rural": "城市/农村", "account_masked": "payee account, last 4 digits",
        "account_holder_masked": "name on the account, first character only"}),
    "dim_household": ("低保家庭 Dibao households", {
        "household_key": "pseudonym of the household ID", "region_code": "county as last delivered",
        "urban_rural": "城市/农村", "head_person_key": "person_key of the head (户主) as last delivered",
        "household_size": "covered members as last delivered", "first_month": "first payroll month on a roster",
        "last_month": "last payroll month on a roster", "months_on_roster": "number of payroll months on a roster"}),
    "fact_payment": ("发放明细 Payment lines of the ledger", {
        "payroll_month": "payroll month that decided the line", "service_month": "month the money is for",
        "program": "program (dim_program)",
        "line_type": "regular / price_subsidy / arrears / reissue / one_off",
        "status": "payable or held", "hold_reason": "why held", "payment_state": "sent / paid / failed (bank returns)",
        "person_key": "the person the line is for (a household's program lines stand on its head)",
        "household_key": "dibao household", "region_code": "county", "urban_rural": "城市/农村",
        "amount": "yuan, DECIMAL(18,2)", "fund_central": "central share, yuan", "fund_provincial": "provincial share",
        "fund_city": "city share", "fund_county": "county share", "fund_version": "fund_shares version used",
        "account_masked": "payee account, last 4 digits", "payee_bank_code": "bank code",
        "batch_id": "payout batch: R regular, X reissue, S1.. supplementary",
        "arrears_cause": "raise_back_pay / late_enrolment / held_released / supplementary_correction",
        "rule_versions": "versions of the reference rows that produced the amount",
        "approval_no": "temporary assistance: the case's approval number (one_off lines and their reissues)",
        "event_type": "temporary assistance: the event the case answers (dim_event)",
        "event_date": "temporary assistance: date of the event",
        "approval_level": "temporary assistance, one_off lines: 乡镇 (township) or 县级 (county)",
        "case_by_case_no": "temporary assistance, one_off lines: 一事一议 record number, if any"}),
    "dim_event": ("临时救助事由 Events temporary assistance answers (contract section 2)", {
        "event_type": "event as delivered and in fact_payment", "event_en": "meaning in English",
        "sort_order": "order of the contract's list", "cases_in_ledger": "approval numbers with a one_off line",
        "amount_payable": "yuan on payable one_off lines, all months"}),
    "fact_enrolment": ("名册行 Every delivered roster row and what became of it", {
        "payroll_month": "payroll month", "program": "roster", "source_file": "file, relative to the month's inbox",
        "source_row": "data row in the file, from 1", "person_key": "pseudonym of the ID (NULL if unreadable)",
        "household_key": "dibao household", "region_code": "county", "urban_rural": "城市/农村",
        "subsidy_type": "disability roster: 生活补贴 or 护理补贴", "disposition": "accepted / quarantined / duplicate",
        "reason_codes": "quarantine reasons", "not_paid_reason": "accepted but not paid, why",
        "hold_reason": "accepted, owed, held, why"}),
    "fact_finding": ("核查发现 Findings of the checks and the engine", {
        "payroll_month": "payroll month", "finding_type": "type (see pipelines/vocabulary.py FINDING_TYPES)",
        "severity": "error / warning / info", "program": "program", "person_key": "the person concerned",
        "region_code": "county", "action": "not_paid / held / paid_and_flagged / recorded / file_rejected",
        "detail": "what was found, masked", "source_file": "roster file", "source_row": "row in it"}),
    "policy_standards": ("保障标准（全部版本）Every version of standards.csv", {}),
    "policy_price_linkage": ("价格联动机制（全部版本）Every version of price_linkage.csv", {}),
    "policy_fund_shares": ("资金分担比例（全部版本）Every version of fund_shares.csv", {}),
    "policy_cpi": ("居民消费价格指数 CPI series used", {}),
    "policy_parameters": ("政策参数 Scalar policy parameters, every version", {}),
    "fact_watch": ("监测预警名单 The monthly watch list (pipelines/watch.py): one row per person (or household) "
                   "and rule, every payroll month", {
        "payroll_month": "payroll month of the list", "region_code": "county", "township": "乡镇/街道 as the roster "
        "gives it (optional roster column), else NULL", "rule": "rule code (vocabulary.WATCH_RULES)",
        "rule_zh": "rule in Chinese", "program": "program concerned (NULL: on no program)",
        "person_key": "the person (for a household rule: its head)", "household_key": "dibao household",
        "sex": "男/女", "birth_year": "year of birth",
        "evidence": "why, in words, with the figures the rule compared"}),
    "fact_visit": ("走访探视名单 The monthly visit list: one row per person and reason to visit, every payroll month", {
        "payroll_month": "payroll month of the list", "region_code": "county", "township": "乡镇/街道 (optional "
        "roster column), else NULL", "rule": "reason code (vocabulary.VISIT_RULES)", "rule_zh": "reason in Chinese",
        "program": "roster the person is on", "person_key": "the person", "household_key": "dibao household",
        "sex": "男/女", "birth_year": "year of birth", "evidence": "placement, care level, grade or class, age",
        "last_paid_month": "last payroll month with a payable line not failed at the bank (NULL: never paid)",
        "last_paid_amount": "yuan paid in that payroll month for the unit", "payee_masked": "payee, first character",
        "account_masked": "payee account, last 4 digits", "payee_bank_name": "payee's bank"}),
    "month_state": ("月度状态 Each month's lifecycle transitions (computed → published → verified → released → "
                    "returns_loaded → closed; supplementary_* for a supplementary batch), as of the last publish", {
        "seq": "order of the transition in the warehouse", "payroll_month": "payroll month",
        "from_state": "state before (NULL: never run)", "to_state": "state after", "supplement":
        "supplementary batch (S1, S2, ...) the transition concerns", "who": "operator (--by, or the OS user)",
        "recorded_at": "when, UTC", "run_id": "the run (or Airflow dag run) that made it",
        "manifest_sha256": "SHA-256 of the payout manifest concerned", "note": "e.g. first month of the history"}),
}
POLICY_COLUMN = "as in the reference table of the same name (contract section 3)"

ANALYST_TABLES = {
    "dim_region": "SELECT * FROM wh.dim_region",
    "dim_program": "SELECT * FROM wh.dim_program",
    "dim_month": "SELECT * FROM wh.dim_month",
    "dim_event": "SELECT * FROM wh.dim_event",
    "dim_person": """
        SELECT k.person_key, p.version, p.valid_from, p.valid_to, p.is_current, p.last_seen,
               mask_name(p.name) AS name_masked, p.sex, CAST(year(p.birth_date) AS INTEGER) AS birth_year,
               p.region_code, p.urban_rural, mask_account(p.bank_account) AS account_masked,
               mask_name(p.account_holder) AS account_holder_masked
        FROM wh.dim_person p JOIN person_keys k USING (id_number)""",
    "dim_household": """
        SELECT hk.household_key, h.region_code, h.urban_rural, pk.person_key AS head_person_key, h.household_size,
               h.first_month, h.last_month, h.months_on_roster
        FROM wh.dim_household h JOIN household_keys hk USING (household_id)
        LEFT JOIN person_keys pk ON pk.id_number = h.head_id_number""",
    "fact_payment": """
        SELECT f.payroll_month, f.service_month, f.program, f.line_type, f.status, f.hold_reason, f.payment_state,
               pk.person_key, hk.household_key, f.region_code, f.urban_rural, f.amount, f.fund_central,
               f.fund_provincial, f.fund_city, f.fund_county, f.fund_version,
               mask_account(f.payee_account) AS account_masked, f.payee_bank_code, f.batch_id, f.arrears_cause,
               f.rule_versions, mask_long_numbers(f.approval_no) AS approval_no, f.event_type, f.event_date,
               f.approval_level, mask_long_numbers(f.case_by_case_no) AS case_by_case_no
        FROM wh.fact_payment f LEFT JOIN person_keys pk USING (id_number)
        LEFT JOIN household_keys hk USING (household_id)""",
    "fact_enrolment": """
        SELECT f.payroll_month, f.program, f.source_file, f.source_row, pk.person_key, hk.household_key,
               f.region_code, f.urban_rural, f.subsidy_type, f.disposition, f.reason_codes, f.not_paid_reason,
               f.hold_reason
        FROM wh.fact_enrolment f LEFT JOIN person_keys pk USING (id_number)
        LEFT JOIN household_keys hk USING (household_id)""",
    "fact_finding": """
        SELECT f.payroll_month, f.finding_type, f.severity, f.program, pk.person_key, f.region_code, f.action,
               mask_long_numbers(f.detail) AS detail, f.source_file, f.source_row
        FROM wh.fact_finding f LEFT JOIN person_keys pk USING (id_number)""",
    "policy_standards": "SELECT * FROM wh.policy_standards",
    "policy_price_linkage": "SELECT * FROM wh.policy_price_linkage",
    "policy_fund_shares": "SELECT * FROM wh.policy_fund_shares",
    "policy_cpi": "SELECT * FROM wh.policy_cpi",
    "policy_parameters": "SELECT * FROM wh.policy_parameters",
    "month_state": "SELECT * FROM wh.month_state",  # no personal data: months, states, operators
    "fact_watch": """
        SELECT w.payroll_month, w.region_code, w.township, w.rule, r.rule_zh, w.program, pk.person_key,
               hk.household_key, w.sex, CAST(year(w.birth_date) AS INTEGER) AS birth_year,
               mask_long_numbers(w.evidence) AS evidence
        FROM watch_arrow w LEFT JOIN rule_labels r USING (rule) LEFT JOIN person_keys pk USING (id_number)
        LEFT JOIN household_keys hk USING (household_id)
        ORDER BY w.payroll_month, w.region_code, w.rule, pk.person_key""",
    "fact_visit": """
        SELECT w.payroll_month, w.region_code, w.township, w.rule, r.rule_zh, w.program, pk.person_key,
               hk.household_key, w.sex, CAST(year(w.birth_date) AS INTEGER) AS birth_year,
               mask_long_numbers(w.evidence) AS evidence, w.last_paid_month, w.last_paid_amount,
               mask_name(w.payee_name) AS payee_masked, mask_account(w.payee_account) AS account_masked,
               w.payee_bank_name
        FROM visit_arrow w LEFT JOIN rule_labels r USING (rule) LEFT JOIN person_keys pk USING (id_number)
        LEFT JOIN household_keys hk USING (household_id)
        ORDER BY w.payroll_month, w.region_code, w.rule, pk.person_key""",
}


def pseudonym_secret(ctx: RunContext) -> bytes:
    path = ctx.pseudonym_key_file
    if not path.exists():
        ensure_dir(path.parent)
        with atomic_path(path) as tmp:
            tmp.write_text(secrets.token_hex(32) + "\n", encoding="ascii")
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


# keys are written in letters only, so that no key can ever be mistaken for an ID number or an
# account (or trip a scan for them)
_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")


def pseudonym(secret: bytes, kind: str, value: str) -> str:
    return hmac.new(secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:KEY_LENGTH].translate(_LETTERS)


def _pseudonym_table(con, secret: bytes, kind: str, table: str, column: str, key_column: str, values_sql: str):
    """A temporary table of (value, pseudonym) computed in DuckDB: HMAC-SHA256 spelled out from its
    definition (RFC 2104) with DuckDB's sha256, the same keys as `pseudonym()` (tested), without a
    Python call per person (2.9 million at province scale)."""
    key = secret if len(secret) <= 64 else hashlib.sha256(secret).digest()
    key = key.ljust(64, b"\0")
    inner, outer = bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)
    con.execute(f"""
        CREATE TEMP TABLE {table} AS
        SELECT {column},
               translate(left(sha256($outer::BLOB || unhex(sha256($inner::BLOB || encode($kind || {column})))),
                              {KEY_LENGTH}), '0123456789abcdef', 'abcdefghijklmnop') AS {key_column}
        FROM ({values_sql}) WHERE {column} IS NOT NULL""", {"outer": outer, "inner": inner, "kind": f"{kind}:"})


def build_analyst_db(ctx: RunContext) -> dict:
    import duckdb

    from pipelines.vocabulary import VISIT_RULES, WATCH_RULES
    from pipelines.watch import lists_for_analysts

    secret = pseudonym_secret(ctx)
    watch, visit = lists_for_analysts(ctx)  # every published month's lists, IDs in full (not kept)
    target = ctx.analyst_db
    ensure_dir(target.parent)
    with atomic_path(target) as tmp:
        con = duckdb.connect(str(tmp))
        try:
            load_macros(con)
            con.execute(f"ATTACH '{sql_string(str(ctx.warehouse))}' AS wh (READ_ONLY)")
            con.register("watch_arrow", watch)
            con.register("visit_arrow", visit)
            con.execute("CREATE TEMP TABLE rule_labels (rule VARCHAR, rule_zh VARCHAR)")
            con.executemany("INSERT INTO rule_labels VALUES (?, ?)", list({**WATCH_RULES, **VISIT_RULES}.items()))
            _pseudonym_table(con, secret, "person", "person_keys", "id_number", "person_key", """
                SELECT id_number FROM wh.dim_person UNION SELECT id_number FROM wh.fact_payment
                UNION SELECT id_number FROM wh.fact_enrolment UNION SELECT id_number FROM wh.fact_finding
                UNION SELECT head_id_number FROM wh.dim_household
                UNION SELECT id_number FROM watch_arrow UNION SELECT id_number FROM visit_arrow""")
            _pseudonym_table(con, secret, "household", "household_keys", "household_id", "household_key", """
                SELECT household_id FROM wh.dim_household UNION SELECT household_id FROM wh.fact_payment
                UNION SELECT household_id FROM wh.fact_enrolment
                UNION SELECT household_id FROM watch_arrow UNION SELECT household_id FROM visit_arrow""")
            for table, query in ANALYST_TABLES.items():
                con.execute(f"CREATE TABLE {table} AS {query}")
                describe_table(con, table)
            con.execute("DROP TABLE person_keys")
            con.execute("DROP TABLE household_keys")
            con.execute("DROP TABLE rule_labels")
            con.unregister("watch_arrow")
            con.unregister("visit_arrow")
            con.execute("DETACH wh")
            for macro in ("mask_name", "mask_account", "mask_id", "mask_long_numbers", "mask_number_digits"):
                con.execute(f"DROP MACRO IF EXISTS {macro}")
            counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in ANALYST_TABLES}
            con.execute("CHECKPOINT")
        finally:
            con.close()
    os.chmod(target, PRIVATE_FILE_MODE)
    return {"analyst_db": str(target), "rows": counts}


def refresh_month_state(ctx: RunContext) -> bool:
    """Bring the analyst copy of month_state up to the warehouse's after a transition publish does
    not make (verify, release, returns loaded, close): without it analysts would see every month as
    `published` until the next month's publish. Written in place (no personal data: months, states,
    operators); when an analyst holds the file open, the copy stays as it was until the next
    transition or publish, and False says so. The warehouse must not be open in this process."""
    import duckdb

    if not ctx.analyst_db.exists():
        return False
    try:
        con = duckdb.connect(str(ctx.analyst_db))
    except duckdb.IOException:  # open elsewhere
        return False
    try:
        try:
            attach_warehouse(con, ctx.warehouse)
        except (duckdb.IOException, duckdb.ConnectionException):  # the warehouse is being written
            return False
        con.execute("BEGIN TRANSACTION")
        con.execute(f"CREATE OR REPLACE TABLE month_state AS {ANALYST_TABLES['month_state']}")
        describe_table(con, "month_state")
        con.execute("COMMIT")
        con.execute("DETACH wh")
        return True
    finally:
        con.close()


def describe_table(con, table: str) -> None:
    meaning, columns = DICTIONARY[table]
    con.execute(f"COMMENT ON TABLE {table} IS '{sql_string(meaning)}'")
    for (column,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                                 "AND database_name = current_database() ORDER BY column_index", [table]).fetchall():
        text = columns.get(column, POLICY_COLUMN if table.startswith("policy_") else "")
        con.execute(f'COMMENT ON COLUMN {table}."{column}" IS \'{sql_string(text)}\'')


def write_dictionary(analyst_db) -> str:
    """The data dictionary as Markdown, read back from the analyst database's schema and comments."""
    import duckdb

    con = duckdb.connect(str(analyst_db), read_only=True)
    try:
        tables = con.execute("SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'main' "
                             "ORDER BY table_name").fetchall()
        lines = ["# Data dictionary: the analysts' database", "",
                 "Generated from the schema of the analyst database (`doudi dictionary`); do not edit by hand.",
                 "ID numbers are replaced by keyed pseudonyms, names and accounts masked, birth dates reduced "
                 "to the year.", ""]
        for table, comment in tables:
            lines += [f"## {table}", "", comment or "", "", "| column | type | meaning |", "| --- | --- | --- |"]
            for column, dtype, text in con.execute(
                    "SELECT column_name, data_type, comment FROM duckdb_columns() WHERE table_name = ? "
                    "ORDER BY column_index", [table]).fetchall():
                lines.append(f"| `{column}` | {dtype} | {text or ''} |")
            lines.append("")
    finally:
        con.close()
    return "\n".join(lines)
