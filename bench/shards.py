"""A benchmark inbox too large for one generator process, built from shards.

The generator holds its whole population in pandas (about 1.2 KB a person): 25 million roster rows
would need some 35 GB. So the harness generates `n` shards of at most SHARD_ROWS rows each, in
parallel processes, and merges them into one inbox with the same layout as a single generated one:
one file per county and program, as a county would deliver it.

Why the merge is sound:
- the shards never share an identifier: shard k draws ID sequence numbers, card numbers, household
  and institution numbers from its own block (GeneratorConfig.shard), so a person, account or
  household is in one shard only;
- a county's file has the same format, encoding, header aliases and column order in every shard
  (the generator derives them from the county and program, not from the seed), so the merged file
  is the shards' rows under one header;
- a county delivers its file twice (`_重复报送`) or corrects it (`_v2`) when shard 0 drew that
  defect for it: the variant then holds every shard's rows (each shard's own variant where it has
  one, else its ordinary file), so the merged duplicate is still byte-identical to the merged
  original. The other shards' variants are dropped, with their ground-truth entries: kept, any
  shard's draw would make a whole county's copy, and ten shards would deliver ten times as many
  copies as one generated inbox (the first 25M inbox had 28% of its rows in copies). A dropped
  correction's withdrawn row is delivered as in its shard's original file.
The ground truth, the registries and the death extract are the shards' rows concatenated.
"""

from __future__ import annotations

import csv
import datetime
import json
import re
import shutil
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

SHARD_ROWS = 2_500_000
VARIANT = re.compile(r"(_重复报送|_v2)$")


def shard_count(rows: int, shard_rows: int = SHARD_ROWS) -> int:
    return max(1, -(-rows // shard_rows))


def _generate_shard(out: str, month: str, persons: int, seed: int, shard: int, shards: int) -> str:
    from pipelines.generate import generate

    if not (Path(out) / "ground_truth.csv").exists():
        shutil.rmtree(out, ignore_errors=True)
        generate(Path(out), month, persons=persons, seed=seed, shard=shard, shards=shards)
    return out


def generate_sharded(inbox: Path, month: str, rows: int, rows_per_person: float, seed: int,
                     processes: int = 2, shard_rows: int = SHARD_ROWS, keep_shards: bool = False) -> list[Path]:
    """Generate the shards (kept until the merge succeeds, so an interrupted run resumes), merge them
    into `inbox` and return the shards' folders (deleted unless `keep_shards`)."""
    shards = shard_count(rows, shard_rows)
    persons = int(rows / rows_per_person) // shards
    work = inbox.with_name(inbox.name + "-shards")
    work.mkdir(parents=True, exist_ok=True)
    dirs = [str(work / f"shard-{k:02d}") for k in range(shards)]
    # spawned, never forked: a fork copies the parent's DuckDB and GX threads'
    # state half-made, and a forked shard once died in garbage collection (a segfault in the test run)
    with ProcessPoolExecutor(max_workers=processes, mp_context=get_context("spawn")) as pool:
        list(pool.map(_generate_shard, dirs, [month] * shards, [persons] * shards,
                      [seed * 1000 + k for k in range(shards)], range(shards), [shards] * shards))
    merge_shards([Path(d) for d in dirs], inbox)
    if not keep_shards:
        shutil.rmtree(work)
    return [Path(d) for d in dirs]


def _csv_rows(data: bytes) -> tuple[bytes, bytes]:
    """(header line, the rows after it) of a generated CSV (BOM kept on the header)."""
    cut = data.index(b"\n") + 1
    return data[:cut], data[cut:]


def _merge_csv(parts: list[Path], out: Path) -> None:
    header, _ = _csv_rows(parts[0].read_bytes())
    with open(out, "wb") as f:
        f.write(header)
        for p in parts:
            h, body = _csv_rows(p.read_bytes())
            if h != header:
                raise ValueError(f"{p}: header differs from {parts[0]}'s; the shards cannot be merged")
            f.write(body)


def _merge_xlsx(parts: list[Path], out: Path) -> None:
    import xlsxwriter
    from python_calamine import CalamineWorkbook

    grids = [CalamineWorkbook.from_path(str(p)).get_sheet_by_index(0).to_python() for p in parts]
    title, header = grids[0][0][0], grids[0][1]
    for p, g in zip(parts, grids, strict=True):
        if g[1] != header:
            raise ValueError(f"{p}: header differs from {parts[0]}'s; the shards cannot be merged")
    wb = xlsxwriter.Workbook(str(out), {"strings_to_numbers": False, "strings_to_formulas": False,
                                        "constant_memory": True})
    wb.set_properties({"created": datetime.datetime(2020, 1, 1)})
    ws = wb.add_worksheet("花名册")
    ws.merge_range(0, 0, 0, max(1, len(header) - 1), title)
    ws.write_row(1, 0, header)
    r = 2
    for g in grids:
        for row in g[2:]:
            ws.write_row(r, 0, ["" if v is None else str(v) for v in row])
            r += 1
    wb.close()


def _merge_parquet(parts: list[Path], out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.concat_tables([pq.read_table(p) for p in parts]), out)


def _merge_truth(shards: list[Path], dropped: set[str], out: Path) -> None:
    """The shards' ground truth, without the entries about variant files the merge dropped."""
    rows: list[dict] = []
    for s in shards:
        with open(s / "ground_truth.csv", encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames
            rows += [r for r in reader if f"{r['month']}/{r['file']}" not in dropped
                     and f"{r['month']}/{r['detail']}" not in dropped]
    with open(out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def merge_shards(shards: list[Path], inbox: Path) -> None:
    tmp = inbox.with_name(inbox.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    names: set[Path] = set()
    for s in shards:
        names |= {p.relative_to(s) for p in s.rglob("*") if p.is_file()}
    # a county's duplicate delivery or correction follows shard 0's draw (see the module's docstring)
    dropped = {rel for rel in names if VARIANT.search(rel.stem) and not (shards[0] / rel).exists()}
    for rel in sorted(names - dropped):
        out = tmp / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if rel.name == "ground_truth.csv":
            _merge_truth(shards, {d.as_posix() for d in dropped}, out)
            continue
        if rel.name == "generator.json":
            configs = [json.loads((s / rel).read_text(encoding="utf-8")) for s in shards]
            merged = dict(configs[0], seed=configs[0]["seed"] // 1000, persons=sum(c["persons"] for c in configs),
                          shards=[{"seed": c["seed"], "persons": c["persons"]} for c in configs])
            out.write_text(json.dumps(merged, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
            continue
        base = rel.with_name(VARIANT.sub("", rel.stem) + rel.suffix)
        parts = [s / rel if (s / rel).exists() else s / base for s in shards]
        parts = [p for p in parts if p.exists()]
        if rel.suffix == ".csv":
            _merge_csv(parts, out)
        elif rel.suffix == ".xlsx":
            _merge_xlsx(parts, out)
        elif rel.suffix == ".parquet":
            _merge_parquet(parts, out)
        else:
            raise ValueError(f"{rel}: no merge rule for this kind of file")
    shutil.rmtree(inbox, ignore_errors=True)
    tmp.rename(inbox)
