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
from pipelines.settings import RunContext, RunError
from pipelines.sqlrun import apply_resource_limits, attach_warehouse, load_macros, sql_string

KEY_LENGTH = 16  # hex digits of the HMAC kept as the key (64 bits), written as letters a-p

DICTIONARY: dict[str, tuple[str, dict[str, str]]] = {
    "a_dim_region": ("县级行政区划 County-level regions of the province (GB/T 2260)", {
        "region_code": "6-digit county code", "county_name": "county name", "city_code": "4-digit city code",
        "city_name": "city name", "province_code": "2-digit province code", "province_name": "province name"}),
    "a_dim_program": ("救助项目 Programs: the ledger's, the rosters' (disability) and the price subsidy "
                      "(价格临时补贴), which the ledger carries under the program of the person it is paid with", {
        "program": "program code (join a_fact_payment.benefit_program or ledger_program to it)",
        "program_zh": "Chinese name",
        "fund_program": "program whose fund shares (fund_shares.csv) pay it",
        "is_ledger_program": "a program of the ledger (a_fact_payment.ledger_program)",
        "is_benefit_program": "a program money is spent on (a_fact_payment.benefit_program): the ledger's and "
                              "price_subsidy"}),
    "a_dim_month": ("月份 Calendar of payroll and service months, first to last in the ledger", {
        "month": "YYYY-MM, as payroll_month and service_month", "month_start": "first day of the month (DATE)",
        "year": "calendar year", "quarter": "quarter 1-4", "month_of_year": "month 1-12",
        "half_year": "YYYY-H1 or YYYY-H2", "previous_month": "the month before, YYYY-MM",
        "next_month": "the month after, YYYY-MM", "month_zh": "e.g. 2020年1月", "quarter_zh": "e.g. 2020年第1季度"}),
    "a_dim_person": ("救助对象（历史版本）People accepted on a roster; a new version when name, county, "
                   "urban/rural, account or account holder changes", {
        "person_key": "pseudonym of the ID number (same across months)", "version": "version number, from 1",
        "valid_from": "first payroll month of this version", "valid_to": "last month of this version (NULL: current)",
        "is_latest_version": "true for the latest version",
        "last_seen": "last payroll month the person was on a roster",
        "on_roster_now": "on a program in the latest payroll month loaded (a present row in a_fact_enrolment)",
        "has_left": "not on any program now, and has left one (a_fact_person_exit)",
        "exit_month": "when has_left: the month of the latest exit", "exit_reason": "when has_left: its reason "
        "(a_label domain exit_reason)", "exits": "exits from a program, all months (rows of a_fact_person_exit)",
        "name_masked": "name, first character only", "sex": "男/女", "birth_year": "year of birth",
        "region_code": "managing county", "urban_rural": "城市/农村", "account_masked": "payee account, last 4 digits",
        "account_holder_masked": "name on the account, first character only"}),
    "a_dim_household": ("低保家庭 Dibao households", {
        "household_key": "pseudonym of the household ID", "region_code": "county as last delivered",
        "urban_rural": "城市/农村", "head_person_key": "person_key of the head (户主) as last delivered",
        "household_size": "covered members as last delivered", "first_month": "first payroll month on a roster",
        "last_month": "last payroll month on a roster", "months_on_roster": "number of payroll months on a roster",
        "is_current": "on the dibao roster in the latest payroll month loaded (a present row in a_fact_enrolment)",
        "has_left": "not current, and has left (a_fact_household_exit)",
        "exit_month": "when has_left: the month of the latest exit", "exit_reason": "when has_left: its reason "
        "(a_label domain exit_reason)", "exits": "exits from dibao, all months (rows of a_fact_household_exit)"}),
    "a_fact_payment": ("发放明细 Payment lines of the ledger, each with the program its money is for; a reissue that "
                       "sends a program payment and its price subsidy again as one line is two rows (is_split)", {
        "payroll_month": "payroll month that decided the line", "service_month": "month the money is for",
        "benefit_program": "program the money is for: the ledger program, or price_subsidy (价格临时补贴) for "
                           "price-subsidy lines, their back pay, top-ups and reissues (a_dim_program)",
        "ledger_program": "program the ledger carries the line under (the price subsidy goes with the program "
                          "of the person it is paid to)",
        "line_type": "regular / price_subsidy / arrears / reissue / one_off (a_label domain line_type)",
        "is_back_pay": "money for an earlier month paid now: arrears, a held price subsidy released, a reissue",
        "back_pay_cause": "why, when is_back_pay (a_label domain back_pay_cause); NULL otherwise",
        "is_split": "one of the two parts of a reissue line (program and price subsidy); amounts add up to the line",
        "status": "payable or held", "hold_reason": "why held (a_label domain hold_reason)",
        "payment_state": "sent / paid / failed (bank returns)",
        "person_key": "the person the line is for (a household's program lines stand on its head)",
        "household_key": "dibao household", "region_code": "county", "urban_rural": "城市/农村",
        "amount": "yuan, DECIMAL(18,2)", "fund_central": "central share, yuan", "fund_provincial": "provincial share",
        "fund_city": "city share", "fund_county": "county share", "fund_version": "fund_shares version used",
        "account_masked": "payee account, last 4 digits", "payee_bank_code": "bank code",
        "batch_id": "payout batch: R regular, X reissue, S1.. supplementary",
        "rule_versions": "versions of the reference rows that produced the amount",
        "approval_no": "temporary assistance: the case's approval number (one_off lines and their reissues)",
        "event_type": "temporary assistance: the event the case answers (a_dim_event)",
        "event_date": "temporary assistance: date of the event",
        "approval_level": "temporary assistance, one_off lines: 乡镇 (township) or 县级 (county)",
        "case_by_case_no": "temporary assistance, one_off lines: 一事一议 record number, if any"}),
    "a_dim_event": ("临时救助事由 Events temporary assistance answers (contract section 2)", {
        "event_type": "event as delivered and in fact_payment", "event_en": "meaning in English",
        "sort_order": "order of the contract's list", "cases_in_ledger": "approval numbers with a one_off line",
        "amount_payable": "yuan on payable one_off lines, all months"}),
    "a_fact_enrolment": ("名册行 Every delivered roster row and what became of it", {
        "payroll_month": "payroll month", "program": "roster", "source_file": "file, relative to the month's inbox",
        "source_row": "data row in the file, from 1", "person_key": "pseudonym of the ID (NULL if unreadable)",
        "household_key": "dibao household", "region_code": "county", "urban_rural": "城市/农村",
        "subsidy_type": "disability roster: 生活补贴 or 护理补贴", "disposition": "accepted / quarantined / duplicate",
        "reason_codes": "quarantine reasons (a_label domain reason_code)",
        "not_paid_reason": "accepted but not paid, why (a_label domain not_paid_reason)",
        "hold_reason": "accepted, owed, held, why (a_label domain hold_reason)",
        "is_present": "the row keeps its person (and a dibao row its household) on the program this month: "
                      "accepted, and neither it nor its household head refused payment"}),
    "a_fact_household_exit": ("低保家庭退出 Each time a dibao household leaves: present in one payroll month, not in "
                              "the next", {
        "exit_month": "first payroll month without the household", "last_month": "last payroll month with it",
        "household_key": "the household", "region_code": "county in its last month", "urban_rural": "城市/农村",
        "exit_reason": "why (a_label domain exit_reason): the refusal that month, else quarantined, duplicate, "
                       "county_file_missing, enrolment_ended, deceased, not_delivered",
        "exit_detail": "when quarantined: the first reason code of its rows (a_label domain reason_code)"}),
    "a_fact_person_exit": ("对象退出 Each time a person leaves a program's roster (dibao members one by one)", {
        "exit_month": "first payroll month without the person on the program",
        "last_month": "last payroll month with the person on it", "program": "roster program",
        "person_key": "the person", "household_key": "dibao household", "region_code": "county in the last month",
        "urban_rural": "城市/农村", "exit_reason": "why (a_label domain exit_reason), as for households",
        "exit_detail": "when quarantined: the first reason code (a_label domain reason_code)"}),
    "a_label": ("代码中文名称 The Chinese label of every code in the analyst tables, from pipelines/vocabulary.py", {
        "domain": "which code: program, line_type, back_pay_cause, status, payment_state, hold_reason, "
                  "not_paid_reason, finding_type, action, severity, reason_code, disposition, exit_reason, "
                  "watch_rule, visit_rule",
        "code": "the code as in the tables", "label_zh": "its Chinese label"}),
    "a_fact_finding": ("核查发现 Findings of the checks and the engine", {
        "payroll_month": "payroll month", "finding_type": "type (a_label domain finding_type)",
        "severity": "error / warning / info (a_label domain severity)", "program": "program",
        "person_key": "the person concerned", "region_code": "county",
        "action": "not_paid / held / paid_and_flagged / recorded / file_rejected (a_label domain action)",
        "detail": "what was found, masked", "source_file": "roster file", "source_row": "row in it"}),
    "a_policy_standards": ("保障标准（全部版本）Every version of standards.csv", {}),
    "a_policy_price_linkage": ("价格联动机制（全部版本）Every version of price_linkage.csv", {}),
    "a_policy_fund_shares": ("资金分担比例（全部版本）Every version of fund_shares.csv", {}),
    "a_policy_cpi": ("居民消费价格指数 CPI series used", {}),
    "a_policy_parameters": ("政策参数 Scalar policy parameters, every version", {}),
    "a_fact_watch": ("监测预警名单 The monthly watch list (pipelines/watch.py): one row per person (or household) "
                   "and rule, every payroll month", {
        "payroll_month": "payroll month of the list", "region_code": "county", "township": "乡镇/街道 as the roster "
        "gives it (optional roster column), else NULL", "rule": "rule code (vocabulary.WATCH_RULES)",
        "rule_zh": "rule in Chinese", "program": "program concerned (NULL: on no program)",
        "person_key": "the person (for a household rule: its head)", "household_key": "dibao household",
        "sex": "男/女", "birth_year": "year of birth",
        "evidence": "why, in words, with the figures the rule compared"}),
    "a_fact_visit": ("走访探视名单 The monthly visit list: one row per person and reason to visit, every payroll "
                     "month", {
        "payroll_month": "payroll month of the list", "region_code": "county", "township": "乡镇/街道 (optional "
        "roster column), else NULL", "rule": "reason code (vocabulary.VISIT_RULES)", "rule_zh": "reason in Chinese",
        "program": "roster the person is on", "person_key": "the person", "household_key": "dibao household",
        "sex": "男/女", "birth_year": "year of birth", "evidence": "placement, care level, grade or class, age",
        "last_paid_month": "last payroll month with a payable line not failed at the bank (NULL: never paid)",
        "last_paid_amount": "yuan paid in that payroll month for the unit", "payee_masked": "payee, first character",
        "account_masked": "payee account, last 4 digits", "payee_bank_name": "payee's bank"}),
    "a_month_state": ("月度状态 Each month's lifecycle transitions (computed → published → verified → released → "
                    "returns_loaded → closed; supplementary_* for a supplementary batch), as of the last publish", {
        "seq": "order of the transition in the warehouse", "payroll_month": "payroll month",
        "from_state": "state before (NULL: never run)", "to_state": "state after", "supplement":
        "supplementary batch (S1, S2, ...) the transition concerns", "who": "operator (--by, or the OS user)",
        "recorded_at": "when, UTC", "run_id": "the run (or Airflow dag run) that made it",
        "manifest_sha256": "SHA-256 of the payout manifest concerned", "note": "e.g. first month of the history"}),
}
POLICY_COLUMN = "as in the reference table of the same name (contract section 3)"

ANALYST_TABLES = {
    "a_dim_region": "SELECT * FROM wh.dim_region",
    "a_dim_program": """
        SELECT program, program_zh, fund_program,
               program IN (SELECT unnest($ledger_programs)) AS is_ledger_program,
               program IN (SELECT unnest($ledger_programs)) OR program = 'price_subsidy' AS is_benefit_program
        FROM wh.dim_program""",
    "a_dim_month": """
        SELECT month, month_date(month) AS month_start, year, quarter, month_of_year, half_year,
               add_months(month, -1) AS previous_month, add_months(month, 1) AS next_month,
               CAST(year AS VARCHAR) || '年' || CAST(month_of_year AS VARCHAR) || '月' AS month_zh,
               CAST(year AS VARCHAR) || '年第' || CAST(quarter AS VARCHAR) || '季度' AS quarter_zh
        FROM wh.dim_month ORDER BY month""",
    "a_dim_event": "SELECT * FROM wh.dim_event",
    "a_dim_person": """
        SELECT k.person_key, p.version, p.valid_from, p.valid_to, p.is_current AS is_latest_version, p.last_seen,
               coalesce(s.on_roster_now, false) AS on_roster_now, coalesce(s.has_left, false) AS has_left,
               s.exit_month, s.exit_reason, coalesce(s.exits, 0) AS exits,
               mask_name(p.name) AS name_masked, p.sex, CAST(year(p.birth_date) AS INTEGER) AS birth_year,
               p.region_code, p.urban_rural, mask_account(p.bank_account) AS account_masked,
               mask_name(p.account_holder) AS account_holder_masked
        FROM wh.dim_person p JOIN person_keys k USING (id_number)
        LEFT JOIN person_status s USING (id_number)""",
    "a_dim_household": """
        SELECT hk.household_key, h.region_code, h.urban_rural, pk.person_key AS head_person_key, h.household_size,
               h.first_month, h.last_month, h.months_on_roster,
               coalesce(s.is_current, false) AS is_current, coalesce(s.has_left, false) AS has_left,
               s.exit_month, s.exit_reason, coalesce(s.exits, 0) AS exits
        FROM wh.dim_household h JOIN household_keys hk USING (household_id)
        LEFT JOIN person_keys pk ON pk.id_number = h.head_id_number
        LEFT JOIN household_status s USING (household_id)""",
    "a_fact_payment": """
        SELECT f.payroll_month, f.service_month, f.benefit_program, f.program AS ledger_program, f.line_type,
               f.is_back_pay, f.back_pay_cause, f.is_split, f.status, f.hold_reason, f.payment_state,
               pk.person_key, hk.household_key, f.region_code, f.urban_rural, f.amount, f.fund_central,
               f.fund_provincial, f.fund_city, f.fund_county, f.fund_version,
               mask_account(f.payee_account) AS account_masked, f.payee_bank_code, f.batch_id,
               f.rule_versions, mask_long_numbers(f.approval_no) AS approval_no, f.event_type, f.event_date,
               f.approval_level, mask_long_numbers(f.case_by_case_no) AS case_by_case_no
        FROM payment_parts f LEFT JOIN person_keys pk USING (id_number)
        LEFT JOIN household_keys hk USING (household_id)""",
    "a_fact_enrolment": """
        SELECT f.payroll_month, f.program, f.source_file, f.source_row, pk.person_key, hk.household_key,
               f.region_code, f.urban_rural, f.subsidy_type, f.disposition, f.reason_codes, f.not_paid_reason,
               f.hold_reason, coalesce(pr.is_present, false) AS is_present
        FROM wh.fact_enrolment f LEFT JOIN person_keys pk USING (id_number)
        LEFT JOIN household_keys hk USING (household_id)
        LEFT JOIN enrolment_present pr USING (payroll_month, source_file, source_row)""",
    "a_fact_household_exit": """
        SELECT e.exit_month, e.last_month, hk.household_key, e.region_code, e.urban_rural, e.exit_reason,
               e.exit_detail
        FROM exits e JOIN household_keys hk ON hk.household_id = e.unit_id
        WHERE e.unit_kind = 'household'""",
    "a_fact_person_exit": """
        SELECT e.exit_month, e.last_month, e.program, pk.person_key, hk.household_key, e.region_code,
               e.urban_rural, e.exit_reason, e.exit_detail
        FROM exits e JOIN person_keys pk ON pk.id_number = e.unit_id
        LEFT JOIN household_keys hk USING (household_id)
        WHERE e.unit_kind = 'person'""",
    "a_fact_finding": """
        SELECT f.payroll_month, f.finding_type, f.severity, f.program, pk.person_key, f.region_code, f.action,
               mask_long_numbers(f.detail) AS detail, f.source_file, f.source_row
        FROM wh.fact_finding f LEFT JOIN person_keys pk USING (id_number)""",
    "a_label": "SELECT domain, code, label_zh FROM labels ORDER BY domain, code",
    "a_policy_standards": "SELECT * FROM wh.policy_standards",
    "a_policy_price_linkage": "SELECT * FROM wh.policy_price_linkage",
    "a_policy_fund_shares": "SELECT * FROM wh.policy_fund_shares",
    "a_policy_cpi": "SELECT * FROM wh.policy_cpi",
    "a_policy_parameters": "SELECT * FROM wh.policy_parameters",
    "a_month_state": "SELECT * FROM wh.month_state",  # no personal data: months, states, operators
    "a_fact_watch": """
        SELECT w.payroll_month, w.region_code, w.township, w.rule, r.rule_zh, w.program, pk.person_key,
               hk.household_key, w.sex, CAST(year(w.birth_date) AS INTEGER) AS birth_year,
               mask_long_numbers(w.evidence) AS evidence
        FROM watch_arrow w LEFT JOIN rule_labels r USING (rule) LEFT JOIN person_keys pk USING (id_number)
        LEFT JOIN household_keys hk USING (household_id)
        ORDER BY w.payroll_month, w.region_code, w.rule, pk.person_key""",
    "a_fact_visit": """
        SELECT w.payroll_month, w.region_code, w.township, w.rule, r.rule_zh, w.program, pk.person_key,
               hk.household_key, w.sex, CAST(year(w.birth_date) AS INTEGER) AS birth_year,
               mask_long_numbers(w.evidence) AS evidence, w.last_paid_month, w.last_paid_amount,
               mask_name(w.payee_name) AS payee_masked, mask_account(w.payee_account) AS account_masked,
               w.payee_bank_name
        FROM visit_arrow w LEFT JOIN rule_labels r USING (rule) LEFT JOIN person_keys pk USING (id_number)
        LEFT JOIN household_keys hk USING (household_id)
        ORDER BY w.payroll_month, w.region_code, w.rule, pk.person_key""",
}

# Working tables built first, from the warehouse with ID numbers in full (temporary: never in the file).
PREPARED = {
    # Each ledger line once, with its benefit program, or, for a reissue that sends a program payment
    # and its price subsidy again as one line, its two parts (is_split): the price subsidy's part is
    # what its original lines paid as price subsidy, found back through the reissue chain; its fund
    # parts are the line's in proportion, in whole fen, the county's share taking the remainder, so
    # that the parts add up to the line to the fen.
    "payment_parts": """
        WITH RECURSIVE edges AS (
            SELECT line_id, unnest(reissue_of) AS parent_id FROM wh.payment_ledger WHERE line_type = 'reissue'
        ),
        origin(line_id, ancestor_id) AS (
            SELECT line_id, parent_id FROM edges
            UNION
            SELECT o.line_id, e.parent_id FROM origin o JOIN edges e ON e.line_id = o.ancestor_id
        ),
        flagged AS (
            SELECT *,
                   -- a supplementary top-up of a price-subsidy line keeps that line's inputs (the CPI index month)
                   line_type = 'price_subsidy' OR (line_type = 'arrears' AND arrears_cause = 'supplementary_correction'
                                                   AND json_exists(inputs, '$.index_month')) AS is_price_line
            FROM wh.payment_ledger
        ),
        reissue_price AS (
            SELECT o.line_id, sum(a.amount) FILTER (WHERE a.is_price_line) AS price_part
            FROM origin o JOIN flagged a ON a.line_id = o.ancestor_id
            WHERE a.line_type <> 'reissue'
            GROUP BY o.line_id
        ),
        lines AS (
            SELECT l.*, coalesce(r.price_part, 0) AS price_part,
                   -- the price subsidy's share of each fund part of a mixed reissue, whole fen rounded down
                   CAST(CAST(l.fund_central * 100 AS BIGINT) * CAST(coalesce(r.price_part, 0) * 100 AS BIGINT)
                        // nullif(CAST(l.amount * 100 AS BIGINT), 0) AS DECIMAL(18, 2)) / 100 AS price_central,
                   CAST(CAST(l.fund_provincial * 100 AS BIGINT) * CAST(coalesce(r.price_part, 0) * 100 AS BIGINT)
                        // nullif(CAST(l.amount * 100 AS BIGINT), 0) AS DECIMAL(18, 2)) / 100 AS price_provincial,
                   CAST(CAST(l.fund_city * 100 AS BIGINT) * CAST(coalesce(r.price_part, 0) * 100 AS BIGINT)
                        // nullif(CAST(l.amount * 100 AS BIGINT), 0) AS DECIMAL(18, 2)) / 100 AS price_city
            FROM flagged l LEFT JOIN reissue_price r USING (line_id)
        ),
        parts AS (
            SELECT *, CASE WHEN is_price_line OR (line_type = 'reissue' AND price_part = amount)
                           THEN 'price_subsidy' ELSE program END AS benefit_program,
                   false AS is_split, amount AS part_amount, fund_central AS part_central,
                   fund_provincial AS part_provincial, fund_city AS part_city
            FROM lines WHERE line_type <> 'reissue' OR price_part = 0 OR price_part = amount
            UNION ALL
            SELECT *, 'price_subsidy', true, price_part, price_central, price_provincial, price_city
            FROM lines WHERE line_type = 'reissue' AND price_part > 0 AND price_part < amount
            UNION ALL
            SELECT *, program, true, amount - price_part, fund_central - price_central,
                   fund_provincial - price_provincial, fund_city - price_city
            FROM lines WHERE line_type = 'reissue' AND price_part > 0 AND price_part < amount
        )
        SELECT payroll_month, service_month, benefit_program, program, line_type,
               line_type IN ('arrears', 'reissue') OR (line_type = 'price_subsidy' AND arrears_cause = 'held_released')
                   AS is_back_pay,
               CASE WHEN line_type = 'arrears' THEN arrears_cause
                    WHEN line_type = 'reissue' THEN 'reissue'
                    WHEN line_type = 'price_subsidy' AND arrears_cause = 'held_released' THEN 'held_released'
               END AS back_pay_cause,
               is_split, status, hold_reason, payment_state, id_number, household_id, region_code, urban_rural,
               CAST(part_amount AS DECIMAL(18, 2)) AS amount,
               CAST(part_central AS DECIMAL(18, 2)) AS fund_central,
               CAST(part_provincial AS DECIMAL(18, 2)) AS fund_provincial,
               CAST(part_city AS DECIMAL(18, 2)) AS fund_city,
               CAST(part_amount - part_central - part_provincial - part_city AS DECIMAL(18, 2)) AS fund_county,
               fund_version, payee_account, payee_bank_code, batch_id, rule_versions, approval_no, event_type,
               event_date,
               CASE WHEN line_type = 'one_off' THEN json_extract_string(inputs, '$.approval_level') END
                   AS approval_level,
               CASE WHEN line_type = 'one_off' THEN json_extract_string(inputs, '$.case_by_case_no') END
                   AS case_by_case_no
        FROM parts""",
    # Every delivered roster row of the monthly programs, with why it is not paid, if so: its own
    # not-paid reason, a not_paid finding on its person, or (a dibao member) its household head's.
    "enrolment_rows": """
        WITH refusals AS (
            SELECT payroll_month, program, id_number, min(finding_type) AS refused_by
            FROM wh.fact_finding WHERE action = 'not_paid' AND id_number IS NOT NULL GROUP BY ALL
        ),
        rows AS (
            SELECT f.payroll_month, f.program, f.source_file, f.source_row, f.id_number, f.household_id,
                   f.region_code, f.urban_rural, f.disposition, f.reason_codes, r.relation,
                   r.enrolled_to IS NOT NULL AND r.enrolled_to <= f.payroll_month AS ended,
                   r.death_month IS NOT NULL AS deceased,
                   CASE WHEN f.disposition = 'accepted' THEN coalesce(f.not_paid_reason, rf.refused_by) END AS refusal
            FROM wh.fact_enrolment f
            LEFT JOIN wh.roster_row r USING (payroll_month, source_file, source_row)
            LEFT JOIN refusals rf ON rf.payroll_month = f.payroll_month AND rf.program = f.program
                                 AND rf.id_number = f.id_number
            WHERE f.program <> 'temporary'
        ),
        heads AS (
            SELECT payroll_month, household_id, min(refusal) AS head_refusal
            FROM rows WHERE program = 'dibao' AND relation = '户主' AND disposition = 'accepted' GROUP BY ALL
        )
        SELECT r.* EXCLUDE (refusal),
               CASE WHEN r.disposition = 'accepted' THEN coalesce(r.refusal, h.head_refusal) END AS refusal,
               r.disposition = 'accepted' AND coalesce(r.refusal, h.head_refusal) IS NULL AS is_present
        FROM rows r LEFT JOIN heads h ON r.program = 'dibao' AND h.payroll_month = r.payroll_month
                                     AND h.household_id = r.household_id""",
    "enrolment_present": "SELECT payroll_month, source_file, source_row, is_present FROM enrolment_rows",
    # A unit (a dibao household, or a person on a roster) leaves a program when it is on it (a
    # present row) in one payroll month and not in the next month loaded; the reason is the first
    # that applies, in the order of vocabulary.EXIT_REASON_ZH after a refusal.
    "exits": """
        WITH unit_rows AS (
            SELECT 'person' AS unit_kind, id_number AS unit_id, *, true AS speaks FROM enrolment_rows
            WHERE id_number IS NOT NULL
            UNION ALL
            SELECT 'household', household_id, *, relation = '户主' FROM enrolment_rows
            WHERE program = 'dibao' AND household_id IS NOT NULL
        ),
        unit_months AS (
            SELECT unit_kind, program, unit_id, payroll_month,
                   bool_or(is_present) AS present,
                   min(refusal) FILTER (WHERE speaks) AS refusal,
                   bool_or(disposition = 'quarantined') AS quarantined,
                   min(reason_codes[1]) FILTER (WHERE disposition = 'quarantined') AS quarantine_code,
                   bool_or(disposition = 'duplicate') AS duplicate,
                   bool_or(ended) FILTER (WHERE speaks AND disposition = 'accepted') AS ended,
                   bool_or(deceased) FILTER (WHERE speaks AND disposition = 'accepted') AS deceased,
                   arg_min(household_id, source_row) FILTER (WHERE disposition = 'accepted') AS household_id,
                   arg_min(region_code, source_row) FILTER (WHERE disposition = 'accepted') AS region_code,
                   arg_min(urban_rural, source_row) FILTER (WHERE disposition = 'accepted') AS urban_rural
            FROM unit_rows GROUP BY ALL
        ),
        months AS (
            SELECT payroll_month, lead(payroll_month) OVER (ORDER BY payroll_month) AS next_month
            FROM (SELECT DISTINCT payroll_month FROM wh.fact_enrolment)
        ),
        county_months AS (
            SELECT DISTINCT payroll_month, program, region_code FROM enrolment_rows WHERE disposition = 'accepted'
        )
        SELECT u.unit_kind, u.program, u.unit_id, u.household_id, u.region_code, u.urban_rural,
               m.next_month AS exit_month, u.payroll_month AS last_month,
               CASE WHEN n.refusal IS NOT NULL THEN n.refusal
                    WHEN n.quarantined THEN 'quarantined'
                    WHEN n.duplicate THEN 'duplicate'
                    WHEN c.region_code IS NULL THEN 'county_file_missing'
                    WHEN u.ended THEN 'enrolment_ended'
                    WHEN u.deceased THEN 'deceased'
                    ELSE 'not_delivered' END AS exit_reason,
               CASE WHEN n.refusal IS NULL AND n.quarantined THEN n.quarantine_code END AS exit_detail
        FROM unit_months u JOIN months m USING (payroll_month)
        LEFT JOIN unit_months n ON n.unit_kind = u.unit_kind AND n.program = u.program AND n.unit_id = u.unit_id
                               AND n.payroll_month = m.next_month
        LEFT JOIN county_months c ON c.payroll_month = m.next_month AND c.program = u.program
                                 AND c.region_code = u.region_code
        WHERE u.present AND m.next_month IS NOT NULL AND NOT coalesce(n.present, false)""",
    "household_status": """
        WITH latest AS (SELECT max(payroll_month) AS month FROM enrolment_rows),
        now AS (
            SELECT DISTINCT household_id FROM enrolment_rows, latest
            WHERE program = 'dibao' AND is_present AND payroll_month = latest.month
        ),
        left_ AS (
            SELECT unit_id AS household_id, count(*) AS exits, max(exit_month) AS exit_month,
                   arg_max(exit_reason, exit_month) AS exit_reason
            FROM exits WHERE unit_kind = 'household' GROUP BY ALL
        )
        SELECT household_id, n.household_id IS NOT NULL AS is_current,
               n.household_id IS NULL AND l.exits > 0 AS has_left,
               CASE WHEN n.household_id IS NULL THEN l.exit_month END AS exit_month,
               CASE WHEN n.household_id IS NULL THEN l.exit_reason END AS exit_reason, l.exits
        FROM now n FULL JOIN left_ l USING (household_id)""",
    "person_status": """
        WITH latest AS (SELECT max(payroll_month) AS month FROM enrolment_rows),
        now AS (
            SELECT DISTINCT id_number FROM enrolment_rows, latest
            WHERE is_present AND payroll_month = latest.month AND id_number IS NOT NULL
        ),
        left_ AS (
            SELECT unit_id AS id_number, count(*) AS exits, max(exit_month) AS exit_month,
                   arg_max(exit_reason, exit_month) AS exit_reason
            FROM exits WHERE unit_kind = 'person' GROUP BY ALL
        )
        SELECT id_number, n.id_number IS NOT NULL AS on_roster_now,
               n.id_number IS NULL AND coalesce(l.exits, 0) > 0 AS has_left,
               CASE WHEN n.id_number IS NULL THEN l.exit_month END AS exit_month,
               CASE WHEN n.id_number IS NULL THEN l.exit_reason END AS exit_reason, coalesce(l.exits, 0) AS exits
        FROM now n FULL JOIN left_ l USING (id_number)""",
}

def labels() -> list[tuple[str, str, str]]:
    """(domain, code, Chinese label) of every code the analyst tables use, from pipelines/vocabulary.py."""
    from pipelines import vocabulary as v

    domains = {
        "program": v.PROGRAM_NAMES_ZH,
        "line_type": v.LINE_TYPE_ZH,
        "back_pay_cause": v.BACK_PAY_CAUSE_ZH,
        "status": v.LINE_STATUS_ZH,
        "payment_state": v.PAYMENT_STATE_ZH,
        "hold_reason": v.FINDING_TYPES,  # a hold names the finding that holds the line
        "not_paid_reason": v.FINDING_TYPES,
        "finding_type": v.FINDING_TYPES,
        "action": v.FINDING_ACTIONS_ZH,
        "severity": v.SEVERITY_ZH,
        "reason_code": {code: r.message_zh for code, r in v.REASONS.items()},
        "disposition": v.DISPOSITION_ZH,
        "exit_reason": {**v.EXIT_REASON_ZH, **v.FINDING_TYPES},  # a refusal names its finding
        "watch_rule": v.WATCH_RULES,
        "visit_rule": v.VISIT_RULES,
    }
    return [(domain, code, text) for domain, table in domains.items() for code, text in table.items()]


def pseudonym_secret(ctx: RunContext) -> bytes:
    path = ctx.pseudonym_key_file
    if not path.exists():
        ensure_dir(path.parent)
        with atomic_path(path) as tmp:
            tmp.write_text(secrets.token_hex(32) + "\n", encoding="ascii")
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


def record_pseudonym_key(ctx: RunContext, con) -> None:
    """In the publish transaction, on the warehouse: the key the analysts' pseudonyms are made with
    is the one they were made with before (its fingerprint is kept in `pseudonym_key`). A missing
    key file would otherwise be created anew, silently changing every person_key analysts know: a
    warehouse copied or restored without it is refused in one sentence."""
    con.execute("CREATE TABLE IF NOT EXISTS pseudonym_key (fingerprint VARCHAR)")
    recorded = con.execute("SELECT fingerprint FROM pseudonym_key").fetchall()
    path = ctx.pseudonym_key_file
    if recorded and not path.exists():
        raise RunError(f"the pseudonym key {path} is missing, but this warehouse's analyst keys were made with one: "
                       "restore the key file kept with the warehouse (or point DOUDI_PSEUDONYM_KEY_FILE at it), "
                       "since a new key would change every person_key the analysts know")
    fingerprint = key_fingerprint(pseudonym_secret(ctx))
    if recorded and recorded[0][0] != fingerprint:
        raise RunError(f"the pseudonym key {path} is not the one this warehouse's analyst keys were made with: restore "
                       "the key file kept with the warehouse (or point DOUDI_PSEUDONYM_KEY_FILE at it)")
    if not recorded:
        con.execute("INSERT INTO pseudonym_key VALUES (?)", [fingerprint])


def key_fingerprint(secret: bytes) -> str:
    """Names a key without revealing it (an HMAC of a fixed text)."""
    return hmac.new(secret, b"doudi pseudonym key fingerprint", hashlib.sha256).hexdigest()[:16]


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

    from pipelines.vocabulary import LEDGER_PROGRAMS, VISIT_RULES, WATCH_RULES
    from pipelines.watch import lists_for_analysts

    secret = pseudonym_secret(ctx)
    watch, visit = lists_for_analysts(ctx)  # every published month's lists, IDs in full (not kept)
    target = ctx.analyst_db
    ensure_dir(target.parent)
    with atomic_path(target) as tmp:
        con = duckdb.connect(str(tmp))
        try:
            apply_resource_limits(con, ctx)  # the month's whole history passes through this database
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
            for table, query in PREPARED.items():
                con.execute(f"CREATE TEMP TABLE {table} AS {query}")
            con.execute("CREATE TEMP TABLE labels (domain VARCHAR, code VARCHAR, label_zh VARCHAR)")
            con.executemany("INSERT INTO labels VALUES (?, ?, ?)", labels())
            for table, query in ANALYST_TABLES.items():
                params = {"ledger_programs": list(LEDGER_PROGRAMS)} if "$ledger_programs" in query else None
                con.execute(f"CREATE TABLE {table} AS {query}", params)
                describe_table(con, table)
            for table in (*PREPARED, "person_keys", "household_keys", "rule_labels", "labels"):
                con.execute(f"DROP TABLE {table}")
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
        con.execute(f"CREATE OR REPLACE TABLE a_month_state AS {ANALYST_TABLES['a_month_state']}")
        describe_table(con, "a_month_state")
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
        text = columns.get(column, POLICY_COLUMN if table.startswith("a_policy_") else "")
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
                 "to the year.", "",
                 "Every table of the analyst database starts with `a_`; no table of the warehouse (which keeps ID "
                 "numbers and accounts for auditors and the payment engine) does. Every code in these tables has "
                 "its Chinese label in `a_label` (`domain`, `code`, `label_zh`), e.g. `JOIN a_label l ON "
                 "l.domain = 'finding_type' AND l.code = f.finding_type`. Money for the price subsidy "
                 "(价格临时补贴) is `a_fact_payment.benefit_program = 'price_subsidy'`; `ledger_program` is the "
                 "program the ledger carries it under.", ""]
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
