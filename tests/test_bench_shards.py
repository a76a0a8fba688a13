"""The benchmark's sharded inbox (bench/shards.py): shards that share no identifier, merged into an
inbox that the pipeline reads exactly like a generated one."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.ingest import ingest_program
from pipelines.monthly import run_month
from pipelines.settings import PROGRAMS, RunContext
from pipelines.truth import exact_recall, read_truth

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from shards import VARIANT, generate_sharded  # noqa: E402

MONTH = "2020-01"


def _context(inbox: Path, out: Path) -> RunContext:
    return RunContext(month=MONTH, inbox=str(inbox), reference=Path(__file__).resolve().parents[1] / "data" / "reference",
                      out=out / "out", warehouse=out / "warehouse.duckdb")


def _ingested(ctx: RunContext, program: str) -> tuple[int, set[str], set[str], int]:
    """(rows of loaded files, their normalised ID numbers and household IDs, files superseded) of one
    program's ingest. A duplicate delivery or a superseded file is a copy: its rows are not counted."""
    result = ingest_program(ctx, program)
    table = pq.read_table(Path(result["rows_path"]), filters=[("file_status", "=", "loaded")])
    ids = {str(v).strip().upper() for v in table.column("id_number").to_pylist() if v}
    households = set(table.column("household_id").to_pylist()) - {None} if "household_id" in table.column_names else set()
    return table.num_rows, ids, households, result["files_by_status"].get("superseded", 0)


def test_shards_share_no_identifier_and_merge_into_one_inbox(tmp_path):
    inbox = tmp_path / "inbox"
    shards = generate_sharded(inbox, MONTH, rows=4500, rows_per_person=0.86, seed=11, shard_rows=1500,
                              keep_shards=True)
    assert len(shards) == 3

    def variants(root: Path) -> set[Path]:
        return {p.relative_to(root) for p in root.rglob("*") if p.is_file() and VARIANT.search(p.stem)}

    # a county delivers twice or corrects as often as in one generated inbox: as shard 0 drew it
    assert variants(inbox) == variants(shards[0])
    # a correction another shard drew is dropped: its withdrawn row comes back (one row each)
    dropped_corrections = dict.fromkeys(PROGRAMS, 0)
    for s in shards[1:]:
        for v in variants(s) - variants(shards[0]):
            if v.stem.endswith("_v2"):
                dropped_corrections[v.parent.name] += 1
    superseded = 0
    for program in PROGRAMS:
        per_shard = [_ingested(_context(s, tmp_path / f"ingest-{s.name}"), program) for s in shards]
        merged_rows, merged_ids, merged_households, merged_superseded = _ingested(
            _context(inbox, tmp_path / "ingest-merged"), program)
        superseded += merged_superseded
        # every row a shard delivers for payment arrives once in the merged inbox
        assert merged_rows == sum(rows for rows, *_ in per_shard) + dropped_corrections[program], program
        for i in range(len(shards)):
            for j in range(i + 1, len(shards)):
                assert not per_shard[i][1] & per_shard[j][1], f"{program}: shards {i} and {j} share an ID number"
                assert not per_shard[i][2] & per_shard[j][2], f"{program}: shards {i} and {j} share a household"
        shard_ids = set().union(*(shard[1] for shard in per_shard))
        assert merged_ids >= shard_ids and len(merged_ids - shard_ids) <= dropped_corrections[program]
        assert merged_households >= set().union(*(shard[2] for shard in per_shard))

    # a duplicate delivery stays byte-identical to the file it repeats
    for dup in inbox.glob(f"{MONTH}/rosters/*/*_重复报送.*"):
        original = dup.with_name(dup.stem.removesuffix("_重复报送") + dup.suffix)
        assert dup.read_bytes() == original.read_bytes()

    # one county, one file: only a corrected file supersedes another
    assert superseded == len(list(inbox.glob(f"{MONTH}/rosters/*/*_v2.*")))
    # and the merged ground truth is found like a generated inbox's
    ctx = _context(inbox, tmp_path / "run")
    run_month(ctx)
    recall = exact_recall(read_truth(inbox), ctx.warehouse)
    assert recall and all(r == 1.0 for r, _ in recall.values()), recall
