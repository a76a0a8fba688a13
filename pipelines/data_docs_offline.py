"""GX's Data Docs pages, made to render offline (issue 21): for the data team, not for counties.

GX's page template links Bootstrap 4, bootstrap-table, bootstrap-datepicker, bootstrap-dark,
Font Awesome, jQuery, Popper and Vega from CDNs, shows its logo from S3 (with the render time in
its URL, so no two renders were the same bytes) and ends with a newsletter "Subscribe" banner. The
bureau's machines are offline, and none of those files is installed anywhere doudi runs (GX's
package ships only its own styles, fonts and images; none of Bootstrap, Font Awesome or jQuery).
So the page is post-processed here, with nothing fetched:

- every external <link> and every <script> is dropped (the scripts only drive jQuery widgets: the
  "Failed Only" toggle and the walkthrough modal); the page is static and complete without them;
- the logo bar, its links into a GX site that is not there, the favicon and the footer banner go;
  a plain header names the suite and says where the counties' pages are;
- OFFLINE_CSS stands in for the few Bootstrap classes the page uses (grid, cards, tables, badges,
  alerts) and draws the pass/fail icons Font Awesome drew.

`assert_offline` then refuses a page that still names an external URL in src, href or url(): a new
GX template would fail the run's tests, never reach an offline reader half-styled.
"""

from __future__ import annotations

import html
import re

from pipelines.settings import RunError

OFFLINE_CSS = """
body{font-family:"Noto Sans CJK SC","Source Han Sans SC",Helvetica,Arial,sans-serif;font-size:14px;color:#212529;
margin:0}
.doudi-header{padding:12px 24px;border-bottom:1px solid #ddd;background:#f6f8fa}
.doudi-header h1{font-size:20px;margin:0 0 4px}.doudi-header p{margin:0;color:#555}
.container-fluid{padding:16px 24px}.row{display:flex;flex-wrap:wrap}
.col-lg-2{flex:0 0 16%;max-width:16%}.col-lg-10{flex:0 0 82%;max-width:82%;padding-left:16px}
.col-6{flex:0 0 48%;max-width:48%}.col-12{flex:0 0 100%;max-width:100%}
@media (max-width:900px){.col-lg-2,.col-lg-10,.col-6{flex:0 0 100%;max-width:100%;padding-left:0}}
.card{border:1px solid #ddd;border-radius:4px;margin-bottom:12px}.card-header{background:#f3f3f3;padding:6px 8px}
.card-body{padding:8px}.nav{list-style:none;margin:0;padding:0}.nav-link{display:block;padding:2px 6px}
.table{border-collapse:collapse;width:100%;margin-bottom:12px}.table td,.table th{border:1px solid #dee2e6;
padding:4px 8px;text-align:left;vertical-align:top}.table-sm td,.table-sm th{padding:2px 6px}
.badge{display:inline-block;padding:1px 6px;margin:1px;border-radius:3px;background:#6c757d;color:#fff;
font-size:12px}.alert{padding:6px 10px;border-radius:4px;margin:12px 0 6px}.alert-secondary{background:#e2e3e5}
.text-success{color:#1a7f37}.text-danger{color:#c0392b}.h6{font-weight:bold}
.collapse{display:block}.d-none{display:none}.d-md-block{display:block}.sticky{position:sticky;top:0}
.fas{font-style:normal}.fa-check-circle::before{content:"\\2714"}.fa-times::before{content:"\\2718"}
.btn-group,.ge-walkthrough-modal{display:none}
@media print{.col-lg-2{display:none}.col-lg-10{flex:0 0 100%;max-width:100%;padding:0}}
"""

_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""", re.I)
_LINK = re.compile(r"<link\b[^>]*>", re.I)
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.I | re.S)
_NAVBAR = re.compile(r'<nav class="navbar[^"]*".*?</nav>\s*</div>\s*</nav>', re.S)
_FOOTER = re.compile(r"<footer\b.*?</footer>", re.I | re.S)
_ACTIONS_CARD = re.compile(r'<div class="card mb-3">\s*<div class="card-header p-2">\s*<strong>Actions</strong>'
                           r'.*?(?=<div class="card d-md-block)', re.S)
_CSS_URL = re.compile(r"url\(\s*['\"]?\s*(?:https?:)?//[^)]*\)", re.I)
# GX's links into the rest of its site (index, expectation suite pages), which doudi does not build
_SITE_HREF = re.compile(r'\s+href="\.\./[^"]*"')
_TITLES = re.compile(r"<title>.*?</title>", re.S)


def make_offline(page: str, title: str, note: str = "") -> str:
    """A GX Data Docs page that references nothing outside itself."""
    page = _SCRIPT.sub("", page)
    page = _LINK.sub(lambda m: "" if re.search(r"href\s*=", m.group(0), re.I) else m.group(0), page)
    header = (f'<header class="doudi-header"><h1>{html.escape(title)}</h1>'
              + (f"<p>{html.escape(note)}</p>" if note else "") + "</header>")
    page = _NAVBAR.sub(lambda _m: header, page, count=1)
    page = _FOOTER.sub("", page)
    page = _ACTIONS_CARD.sub("", page, count=1)
    page = _CSS_URL.sub("none", page)
    page = _SITE_HREF.sub("", page)
    page = _TITLES.sub("", page)
    page = page.replace("</head>", f"<title>{html.escape(title)}</title>\n<style>{OFFLINE_CSS}</style>\n</head>", 1)
    assert_offline(page, title)
    return page


def external_references(page: str) -> list[str]:
    """The places a page would fetch from or link to another host (src, href, CSS url())."""
    return [page[m.start():m.start() + 80] for m in _EXTERNAL.finditer(page)]


def assert_offline(page: str, name: str) -> None:
    found = external_references(page)
    if found:
        raise RunError(f"{name}: the page still references an external URL ({found[0]!r}): "
                       "pipelines/data_docs_offline.py must drop it")
