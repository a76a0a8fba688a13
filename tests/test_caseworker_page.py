"""The caseworkers' validation pages and the data team's Data Docs (issue 21): a county reads, in
Chinese, each rule its rows broke and the rows to fix, printed by Chromium; neither kind of page
fetches anything from another host."""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.helpers import context, query

MONTH = "2020-03"
ID_RE = re.compile(r"(?<![0-9])[1-9][0-9]{16}[0-9X](?![0-9])")
# a src or href naming another host (a CDN, GX's site), absolute or scheme-relative
EXTERNAL_RE = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def _pages(reports):
    return sorted(list((reports / "data_docs").rglob("*.html")) + list((reports / "validation").rglob("*.html")))


@pytest.mark.unit
def test_every_rule_of_the_suites_reads_in_chinese_with_the_rosters_headers():
    from pipelines.caseworker_page import rule_sentence
    from pipelines.validate import load_suite_dicts
    from pipelines.vocabulary import REASON_COLUMNS, REASONS, columns_for

    for program in ("dibao", "tekun", "orphan", "disability", "temporary"):
        for code in {e["meta"]["reason_code"] for e in load_suite_dicts(program)}:
            assert code in REASONS and code in REASON_COLUMNS, code
            assert set(REASON_COLUMNS[code]) <= set(columns_for(program)), (program, code)
            sentence = rule_sentence(program, code)
            assert not re.search(r"[A-Za-z_]", sentence), sentence  # no internal column name
    assert rule_sentence("tekun", "PLACEMENT_INVALID").startswith("【供养方式】")
    assert rule_sentence("orphan", "PLACEMENT_INVALID").startswith("【养育方式】")
    assert rule_sentence("temporary", "TEMPORARY_AMOUNT_INVALID").startswith("【救助金额】")


@pytest.mark.unit
def test_a_county_without_failures_gets_a_page_that_says_so():
    from pipelines.caseworker_page import render_county_page

    page = render_county_page(MONTH, "210102", "和平区", (6, 0), {}, {})
    assert f"<h1>{MONTH} 名册校验结果　210102 和平区</h1>" in page
    assert 'id="nothing-to-fix">本月报送 6 行，全部通过校验，没有需要更正的行。' in page
    assert "<table" not in page and not EXTERNAL_RE.search(page)
    assert "没有收到本县区的名册行" in render_county_page(MONTH, "210103", "沈河区", (0, 0), {}, {})


@pytest.mark.stage
def test_gx_data_docs_render_with_nothing_fetched_from_another_host(tmp_path):
    """A real GX render of the dibao suite's result (some rules failing), as validate writes it."""
    from pipelines.expectations_sql import Outcome, gx_result, translate
    from pipelines.validate import load_suite_dicts, write_data_docs

    suite = load_suite_dicts("dibao")
    outcomes = [Outcome(translate(e, {"county_codes": ["210102"]}), 10, 0, int(i % 3 == 0)) for i, e in enumerate(suite)]
    page = write_data_docs(context(tmp_path, MONTH), "dibao", gx_result("roster_dibao", outcomes, "roster_dibao"))
    text = page.read_text(encoding="utf-8")
    assert "Evaluated Expectations" in text and "roster_dibao" in text
    assert not EXTERNAL_RE.search(text) and not re.search(r"url\(\s*['\"]?(https?:)?//", text)
    assert "<script" not in text and "Subscribe" not in text and "logo" not in text.lower()
    assert "<style>" in text and ".fa-times::before" in text  # the local stand-in for Bootstrap and Font Awesome
    # the logo's URL carried the render time: two renders now give the same bytes
    again = write_data_docs(context(tmp_path, MONTH), "dibao", gx_result("roster_dibao", outcomes, "roster_dibao"))
    assert again.read_text(encoding="utf-8") == text


def test_validation_pages_cover_every_county_offline_and_rerun_identically(four_months):
    from pipelines.report import reconcile_and_report
    from pipelines.validate import validate_program

    reports = four_months["out"] / MONTH / "reports"
    pages = _pages(reports)
    assert len([p for p in pages if p.parent.name == "data_docs"]) >= 4
    for path in pages:
        assert not EXTERNAL_RE.search(path.read_text(encoding="utf-8")), path
        assert path.stat().st_mode & 0o077 == 0, path  # owner-only
    validation = reports / "validation"
    counties = {r[0] for r in query(four_months["warehouse"], "SELECT region_code FROM row_disposition "
                                                              "WHERE payroll_month = ? AND region_code IS NOT NULL",
                                    [MONTH])}
    assert counties <= {p.stem for p in validation.glob("*.html")}
    to_fix = dict(query(four_months["warehouse"], """SELECT coalesce(region_code, 'unknown'), count(*)
        FROM row_disposition WHERE payroll_month = ? AND disposition = 'quarantined' GROUP BY 1""", [MONTH]))
    index = (validation / "index.html").read_text(encoding="utf-8")
    assert f"{len(to_fix)} 个县区有需要更正的行（共 {sum(to_fix.values())} 行）" in index
    clean = sorted(counties - set(to_fix))[0]
    assert 'id="nothing-to-fix"' in (validation / f"{clean}.html").read_text(encoding="utf-8")
    for county, n in to_fix.items():
        page = (validation / f"{county}.html").read_text(encoding="utf-8")
        assert f'其中 <span class="count">{n}</span> 行未通过校验' in page and not ID_RE.search(page)

    def digest():
        return {p.relative_to(reports): hashlib.sha256(p.read_bytes()).hexdigest() for p in _pages(reports)}

    before = digest()
    ctx = context(four_months["tmp"], MONTH, inbox=four_months["inbox"])
    validate_program(ctx, "dibao")
    reconcile_and_report(ctx)
    assert digest() == before


def test_a_countys_page_prints_its_rules_and_rows_in_chromium(four_months, tmp_path):
    from pipelines.caseworker_page import rule_sentence
    from pipelines.settings import DEFAULT_REFERENCE
    from tests.test_print import html_to_pdf, printed_pages, squeeze

    county, name, program, code, masked = query(four_months["warehouse"], """
        WITH q AS (SELECT region_code, program, source_file, source_row, id_number, unnest(reason_codes) AS code
                   FROM row_disposition WHERE payroll_month = ? AND disposition = 'quarantined'
                   AND region_code IS NOT NULL AND id_number IS NOT NULL)
        SELECT q.region_code, r.county_name, q.program, q.code, left(q.id_number, 6) || '********' || right(q.id_number, 4)
        FROM q JOIN read_csv(?, all_varchar = true) r USING (region_code)
        WHERE q.code IN ('SEX_MISMATCH', 'ID_CHECK_DIGIT', 'BANK_ACCOUNT_INVALID', 'MONTH_INVALID')
        ORDER BY q.region_code, q.source_file, q.source_row LIMIT 1""", [MONTH, str(DEFAULT_REFERENCE / "regions.csv")])[0]
    pdf = tmp_path / "page.pdf"
    html_to_pdf(four_months["out"] / MONTH / "reports" / "validation" / f"{county}.html", pdf, tmp_path / "profile")
    pages = printed_pages(pdf)
    first, text = pages[0][0], "".join(p[0] for p in pages)
    assert squeeze(f"{MONTH} 名册校验结果") in first and squeeze(f"{county} {name}") in first
    assert squeeze(rule_sentence(program, code)) in text
    assert masked in text  # the row to fix, by its masked ID number
    assert not ID_RE.search(text)
    assert all(right <= width for _text, width, right in pages)  # nothing cut on the right
