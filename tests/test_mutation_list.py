"""The mutation list of `make mutation` (tools/mutation.py) stays applicable: every mutation's old
text occurs exactly once in its SQL file, and the mutated file still parses (a mutation is a
plausible wrong rule, not a syntax error). Fast: no pipeline run."""

from __future__ import annotations

import pytest

from tools.mutation import MUTATIONS, ROOT, parses

pytestmark = pytest.mark.unit


def test_at_least_25_named_mutations_with_distinct_names():
    assert len(MUTATIONS) >= 25
    assert len({m.name for m in MUTATIONS}) == len(MUTATIONS)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_the_old_text_occurs_exactly_once_and_the_mutant_parses(mutation):
    path = ROOT / "sql" / mutation.file
    assert path.exists(), f"{mutation.name}: sql/{mutation.file} is gone"
    text = path.read_text(encoding="utf-8")
    assert text.count(mutation.old) == 1, (
        f"{mutation.name} is stale: its old text occurs {text.count(mutation.old)} times in sql/{mutation.file}")
    assert mutation.new != mutation.old
    assert parses(text.replace(mutation.old, mutation.new)) is None
