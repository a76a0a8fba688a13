"""Rerunning a month gives the same bytes, so no query may let DuckDB choose a row. doudi's
connections run with preserve_insertion_order off (pipelines/sqlrun.connect) and two threads:
rows reach an aggregate in whatever order the threads read them, so `any_value`, or a `list`,
`string_agg`, `array_agg`, `first` or `last` without ORDER BY, gives a different answer under a
different load. CI saw it: a reissue's rule versions came out in another order on a rerun, the
ledger's hash changed, and the rerun was refused. (A window's ORDER BY that leaves ties open is
the same fault; tests/modeltest.py catches those by running every model on reversed inputs.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PROJECT = Path(__file__).resolve().parent.parent
ORDER_SENSITIVE = re.compile(r"\b(any_value|list|string_agg|array_agg|group_concat|first|last)\s*\(", re.IGNORECASE)
# files whose SQL builds outputs: the models, and the Python that queries DuckDB directly (the
# sample generator is tooling, seeded, and writes no output of a month)
SOURCES = sorted([*(PROJECT / "sql").rglob("*.sql"), *(p for p in (PROJECT / "pipelines").glob("*.py")
                                                       if p.name != "generate.py")])


def _argument(text: str, open_paren: int) -> str:
    """The text between the parenthesis at `open_paren` and the one that closes it."""
    depth = 0
    for i in range(open_paren, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_paren + 1:i]
    return text[open_paren + 1:]


def order_sensitive_calls(text: str) -> list[str]:
    """The calls in `text` whose result depends on the order rows arrive in."""
    found = []
    for match in ORDER_SENSITIVE.finditer(text):
        name = match.group(1).lower()
        argument = _argument(text, match.end() - 1)
        after = text[match.end() + len(argument) + 1:].lstrip().lower()
        if after.startswith("over"):
            continue  # a window aggregate: its window's ORDER BY orders it (ties: tests/modeltest.py)
        before = text[max(0, match.start() - 40):match.start()].lower()
        if name == "any_value" or ("order by" not in argument.lower() and "list_sort(" not in before):
            found.append(f"{name}({argument[:60]})")
    return found


def _sql_of(path: Path) -> list[str]:
    """The SQL of a file: all of a .sql file (comments dropped); the string constants of a .py file
    that look like a query (an f-string's expressions stand as {})."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".sql":
        return [re.sub(r"--[^\n]*", "", text)]
    strings, parts = [], set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.JoinedStr):
            strings.append("".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values))
            parts.update(id(v) for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in parts:
            strings.append(node.value)
    return [s for s in strings if re.search(r"\bselect\b", s, re.I) and re.search(r"\bfrom\b", s, re.I)]


def test_the_order_sensitive_call_finder_finds_what_it_must():
    assert order_sensitive_calls("select any_value(x) from t") == ["any_value(x)"]
    assert order_sensitive_calls("select list(a) from t group by b") == ["list(a)"]
    assert order_sensitive_calls("select string_agg(a, ',') from t") == ["string_agg(a, ',')"]
    assert order_sensitive_calls("select first(a order by b) , list(a order by a), string_agg(a, ',' ORDER BY a)") == []
    assert order_sensitive_calls("select list_sort(list_distinct(list(a))) from t") == []


def test_no_query_lets_duckdb_choose_a_row():
    offenders = [f"{path.relative_to(PROJECT)}: {call}" for path in SOURCES for sql in _sql_of(path)
                 for call in order_sensitive_calls(sql)]
    assert offenders == [], ("these give a different answer when rows arrive in another order (use min/max, "
                             "arg_max with a total order, or ORDER BY inside the aggregate):\n" + "\n".join(offenders))
