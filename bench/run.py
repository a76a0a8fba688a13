"""Benchmark the monthly run: `make bench ROWS=250000`, `make bench ROWS="250000 2500000"`, or
`python bench/run.py --rows 250000 [--rows 2500000]`.

For each size, in a fresh process (so peak memory is that size's own): generate (once, cached under
bench/work/; above 2.5M rows in shards, bench/shards.py) an inbox of about that many roster rows,
run one payroll month stage by stage (up to 5M rows as `doudi run` does, above that partitioned as
the DAG does; --mode), and report wall time, rows per second and peak memory (RSS of the process
and its children) per stage, with these baselines:
- the I/O floor: a bare read of the same roster files into Parquet (pyarrow for CSV, calamine for
  XLSX, no checks);
- the pandas pipeline (bench/pandas_pipeline.py): the month from the inbox to the ledger, written
  the straightforward way in pandas, and its payment engine alone (bench/pandas_baseline.py, from
  the same input as doudi's compute stage);
- the Polars pipeline (bench/polars_pipeline.py): the same month, from the inbox, written for speed
  in Polars.
Each one's ledger totals must equal doudi's to the fen, or the harness says so and reports no
ratio. None is run above 5M rows: they hold the whole month in memory.
Writes bench/results/latest.json (the last size, with every size under `runs`) and
bench/results/<rows>.json for each size (so a 25M run, hours long, keeps its own), and prints a table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# where inboxes, runs and results go: bench/ itself unless DOUDI_BENCH_DIR says elsewhere (the tests)
BENCH_DIR = Path(os.environ.get("DOUDI_BENCH_DIR", HERE))
WORK = BENCH_DIR / "work"
RESULTS = BENCH_DIR / "results"
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from pipelines import artefacts  # noqa: E402
from pipelines.settings import keep_new_files_owner_only  # noqa: E402

# The pandas and Polars baselines hold the whole month in memory (the engine alone: 5.5 GB at 2.6M rows, so
# about 53 GB at 25M, more than this machine has). Above this size they are not run, and the
# result says so.
PANDAS_MAX_ROWS = 5_000_000

# Above this size the bench runs the stages partitioned, as the DAG does: one program's whole
# roster in one validation frame or one engine run would not fit in memory. Below it, partitioning
# in one process only adds each partition's fixed cost (a GX context, the reference models).
SINGLE_MAX_ROWS = 5_000_000

# roster rows per generated person, measured on the generator's output at 250k (dibao members, both
# disability subsidies, tekun, orphans)
ROWS_PER_PERSON = 0.86


class MemoryWatch:
    """Peak resident memory per stage, of this process *and its children* (any process a
    stage starts): a thread samples the process tree's RSS every 0.2 s, and this process's own
    high-water mark (VmHWM, reset at each stage through /proc/self/clear_refs) catches a spike
    between samples."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.stage_peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def _status_kb(pid: int | str, key: str) -> int:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:  # the process ended between listing and reading
            return 0
        return next((int(ln.split()[1]) for ln in status.splitlines() if ln.startswith(key + ":")), 0)

    @staticmethod
    def _tree(pid: int) -> list[int]:
        out, todo = [], [pid]
        while todo:
            p = todo.pop()
            out.append(p)
            for children in Path(f"/proc/{p}/task").glob("*/children"):
                try:
                    todo += [int(c) for c in children.read_text().split()]
                except OSError:
                    pass
        return out

    def _sample(self) -> None:
        me = os.getpid()
        while not self._stop.wait(self.interval):
            self.stage_peak_kb = max(self.stage_peak_kb, sum(self._status_kb(p, "VmRSS") for p in self._tree(me)))

    def start_stage(self) -> None:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        self.stage_peak_kb = 0

    def stage_peak_mb(self) -> float:
        return max(self.stage_peak_kb, self._status_kb("self", "VmHWM")) / 1024

    def stop(self) -> None:
        self._stop.set()


def inbox_for(rows: int, seed: int) -> Path:
    """The cached inbox of about `rows` roster rows; above one shard's size, generated in shards
    (bench/shards.py: the generator holds its population in memory)."""
    from shards import generate_sharded, shard_count

    from pipelines.generate import generate

    inbox = WORK / f"inbox-{rows}-{seed}"
    if not (inbox / "ground_truth.csv").exists():
        shutil.rmtree(inbox, ignore_errors=True)
        started = time.perf_counter()
        if shard_count(rows) > 1:
            generate_sharded(inbox, "2020-01", rows, ROWS_PER_PERSON, seed)
        else:
            generate(inbox, "2020-01", persons=int(rows / ROWS_PER_PERSON), seed=seed)
        print(f"generated {inbox} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return inbox


def io_floor(inbox: Path, month: str, out: Path) -> float:
    """Read every roster file as bare bytes into Arrow and write Parquet: no mapping, no checks."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from python_calamine import CalamineWorkbook

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    for program_dir in sorted((inbox / month / "rosters").iterdir()):
        tables = []
        for f in sorted(program_dir.iterdir()):
            data = f.read_bytes()
            if f.suffix == ".csv":
                try:
                    text = data.decode("utf-8-sig")
                except UnicodeDecodeError:
                    text = data.decode("gb18030")
                t = pacsv.read_csv(io.BytesIO(text.encode()), convert_options=pacsv.ConvertOptions(
                    strings_can_be_null=True))
            elif f.suffix == ".xlsx":
                grid = CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0).to_python()
                header = [str(h) for h in grid[1]]
                t = pa.table({h: [str(r[i]) for r in grid[2:]] for i, h in enumerate(header)})
            else:
                t = pq.read_table(io.BytesIO(data))
            tables.append(t.cast(pa.schema([(n, pa.string()) for n in t.column_names])))
        for i, t in enumerate(tables):
            pq.write_table(t, out / f"{program_dir.name}-{i}.parquet")
    return time.perf_counter() - started


def _pandas(script: str, *args) -> dict:
    proc = subprocess.run([sys.executable, str(HERE / script), *map(str, args)],
                          stdout=subprocess.PIPE, text=True, check=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("PANDAS-RESULT ")][-1]
    return json.loads(line.split(" ", 1)[1])


def _not_run() -> dict:
    return {"seconds": None, "totals_match": False, "peak_rss_mb": None,
            "differences": [f"not run above {PANDAS_MAX_ROWS} rows: it holds the whole month in memory"]}


def run_pandas_baselines(ctx, rows: int) -> tuple[dict, dict]:
    """bench/pandas_pipeline.py (the month from the inbox) and bench/pandas_baseline.py (the engine
    alone, from doudi's integrity roster), each in its own process, both checked against doudi's ledger."""
    ledger = artefacts.ledger(ctx)
    if rows > PANDAS_MAX_ROWS:
        return _not_run(), _not_run()
    pipeline = _pandas("pandas_pipeline.py", ctx.inbox, ctx.reference, ctx.month, ledger)
    engine = _pandas("pandas_baseline.py", artefacts.integrity_roster(ctx), ctx.reference,
                     ctx.month, ledger)
    return pipeline, engine


def run_polars_pipeline(ctx, rows: int) -> dict:
    """bench/polars_pipeline.py (the month from the inbox, in Polars) in its own process, checked
    against doudi's ledger like the pandas pipeline."""
    if rows > PANDAS_MAX_ROWS:
        return _not_run()
    return _pandas("polars_pipeline.py", ctx.inbox, ctx.reference, ctx.month,
                   artefacts.ledger(ctx))


def _same_stages() -> tuple[str, ...]:
    """What the pandas and Polars pipelines do: the registry's stages from ingest to compute."""
    from pipelines.stages import BY_NAME, STAGES

    return tuple(s.name for s in STAGES[STAGES.index(BY_NAME["ingest"]):STAGES.index(BY_NAME["compute"]) + 1])


SAME_STAGES = _same_stages()


def shown(seconds, matched: bool, peak) -> str:
    """A baseline's seconds for the table, or why there are none."""
    return seconds if matched else "not run" if peak is None else "totals differ"


def run_size(rows: int, seed: int, mode: str) -> dict:
    from pipelines.monthly import partitioned_stages, stages
    from pipelines.settings import RunContext
    from pipelines.truth import exact_recall, near_duplicate_scores, read_truth

    month = "2020-01"
    inbox = inbox_for(rows, seed)
    work = WORK / f"run-{rows}"
    shutil.rmtree(work, ignore_errors=True)
    ctx = RunContext(month=month, inbox=str(inbox), reference=HERE.parent / "data" / "reference",
                     out=work / "out", warehouse=work / "warehouse.duckdb")
    per_stage: dict[str, float] = {}
    stage_peak: dict[str, float] = {}
    watch = MemoryWatch()
    started = time.perf_counter()
    results = {}
    name = "before the first stage"  # what a failure is reported at until a stage has started
    try:
        for name, call in (partitioned_stages(ctx) if mode == "partitioned" else stages(ctx)):
            t = time.perf_counter()
            watch.start_stage()
            key = name.split("[")[0]
            results[name] = call()
            per_stage[key] = per_stage.get(key, 0.0) + time.perf_counter() - t
            stage_peak[key] = max(stage_peak.get(key, 0.0), watch.stage_peak_mb())
            # one line per finished stage, so a run killed by the OOM killer still tells how far it got
            print("BENCH-STAGE " + json.dumps({"stage": key, "seconds": round(per_stage[key], 2),
                                               "peak_rss_mb": round(stage_peak[key])}), flush=True)
            print(f"{time.perf_counter() - started:8.1f} s  {name}: {time.perf_counter() - t:.1f} s, "
                  f"peak {stage_peak[key]:.0f} MB", file=sys.stderr, flush=True)
    except Exception as exc:
        # an hours-long size that fails still tells where and after how long: its JSON says so
        print("BENCH-FAILED " + json.dumps({"failed_at": name, "error": f"{type(exc).__name__}: {exc}"[:2000],
                                            "seconds_until_failure": round(time.perf_counter() - started, 2)}),
              flush=True)
        raise
    doudi_seconds = time.perf_counter() - started
    watch.stop()
    delivered = sum(results[f"ingest[{p}]"]["rows"] for p in ("dibao", "tekun", "orphan", "disability"))
    doudi_peak = max(stage_peak.values())  # before the baselines run
    compute_result = results["compute" if mode == "single" else "compute[combine]"]
    floor = io_floor(inbox, month, work / "floor")
    pandas, engine = run_pandas_baselines(ctx, rows)
    polars = run_polars_pipeline(ctx, rows)
    same_stages = sum(v for k, v in per_stage.items() if k in SAME_STAGES)
    truth = read_truth(inbox)
    recall = exact_recall(truth, ctx.warehouse)
    return {
        "rows": delivered,
        "target_rows": rows,
        "doudi_seconds": round(doudi_seconds, 2),
        "doudi_rows_per_second": round(delivered / doudi_seconds),
        "doudi_peak_rss_mb": round(doudi_peak),
        "mode": mode,
        "stages_peak_rss_mb": {k: round(v) for k, v in stage_peak.items()},
        "floor_seconds": round(floor, 2),
        # the pandas pipeline: the month from the inbox to the ledger's totals (no payout files,
        # warehouse or reports, which doudi's time includes)
        "pandas_seconds": pandas["seconds"] if pandas["totals_match"] else None,
        "pandas_scope": "ingest, validation, integrity and the payment engine, from the inbox",
        "pandas_totals_match": pandas["totals_match"],
        "pandas_peak_rss_mb": pandas["peak_rss_mb"],
        "pandas_differences": pandas["differences"],
        "pandas_over_doudi": round(pandas["seconds"] / doudi_seconds, 2) if pandas["totals_match"] else None,
        "pandas_over_doudi_same_stages": round(pandas["seconds"] / same_stages, 2) if pandas["totals_match"] else None,
        # doudi's ingest, validate, integrity and compute stages: the work both pipelines do
        "doudi_same_stages_seconds": round(same_stages, 2),
        # the Polars pipeline: the same month and scope as the pandas pipeline
        "polars_seconds": polars["seconds"] if polars["totals_match"] else None,
        "polars_totals_match": polars["totals_match"],
        "polars_peak_rss_mb": polars["peak_rss_mb"],
        "polars_differences": polars["differences"],
        "polars_over_doudi": round(polars["seconds"] / doudi_seconds, 2) if polars["totals_match"] else None,
        "polars_over_doudi_same_stages": round(polars["seconds"] / same_stages, 2) if polars["totals_match"] else None,
        "polars_over_pandas": round(polars["seconds"] / pandas["seconds"], 2)
        if polars["totals_match"] and pandas["totals_match"] else None,
        # the engine alone, from doudi's integrity roster: against doudi's compute stage
        "pandas_engine_seconds": engine["seconds"] if engine["totals_match"] else None,
        "pandas_engine_peak_rss_mb": engine["peak_rss_mb"],
        "pandas_engine_over_doudi_compute": round(engine["seconds"] / per_stage["compute"], 2)
        if engine["totals_match"] else None,
        "doudi_over_floor": round(doudi_seconds / floor, 2) if floor else None,
        "stages_seconds": {k: round(v, 2) for k, v in per_stage.items()},
        "validate_rows_per_second": round(delivered / per_stage["validate"]) if per_stage.get("validate") else None,
        "ground_truth": {
            "exact_recall": {d: round(r, 4) for d, (r, _n) in recall.items()},
            "exact_min_recall": round(min(r for r, _n in recall.values()), 4) if recall else None,
            "near_duplicates": near_duplicate_scores(truth, ctx.warehouse),
        },
        "payable_lines": sum(v["count"] for k, v in compute_result["lines"].items() if k.startswith("payable")),
    }


def failed_run(rows: int, mode: str, exit_code: int, stdout: str) -> dict:
    """What a size that did not finish measured: its finished stages, and how it ended (an exception
    it reported, or a kill it could not report, such as the OOM killer's)."""
    lines = stdout.splitlines()
    done = [json.loads(ln.split(" ", 1)[1]) for ln in lines if ln.startswith("BENCH-STAGE ")]
    reported = [json.loads(ln.split(" ", 1)[1]) for ln in lines if ln.startswith("BENCH-FAILED ")]
    ended = reported[-1] if reported else {
        "failed_at": "after " + done[-1]["stage"] if done else "before the first stage",
        "error": f"killed by signal {-exit_code}" if exit_code < 0 else f"exit code {exit_code}, no error reported"}
    seconds, peaks = {}, {}
    for stage in done:  # a partitioned stage reports after each partition: keep its running total
        seconds[stage["stage"]] = stage["seconds"]
        peaks[stage["stage"]] = stage["peak_rss_mb"]
    return {"target_rows": rows, "mode": mode, "finished": False, "exit_code": exit_code,
            "stages_done": list(seconds), **ended, "stages_seconds": seconds, "stages_peak_rss_mb": peaks}


def table(runs: list[dict]) -> list[str]:
    """The printed table: doudi, the I/O floor and the baselines, then the same stages side by side."""
    out = [f"{'rows':>10} {'doudi s':>9} {'rows/s':>9} {'peak MB':>8} {'floor s':>8} {'x floor':>8} "
           f"{'pandas s':>13} {'pandas/doudi':>12} {'polars s':>13} {'polars/doudi':>12} {'engine s':>13} "
           f"{'compute s':>9}  stages"]
    for r in runs:
        stages_text = " ".join(f"{k}={v}" for k, v in r["stages_seconds"].items())
        pandas = shown(r["pandas_seconds"], r["pandas_totals_match"], r["pandas_peak_rss_mb"])
        polars = shown(r["polars_seconds"], r["polars_totals_match"], r["polars_peak_rss_mb"])
        engine = shown(r["pandas_engine_seconds"], r["pandas_engine_seconds"] is not None,
                       r["pandas_engine_peak_rss_mb"])
        out.append(f"{r['rows']:>10} {r['doudi_seconds']:>9} {r['doudi_rows_per_second']:>9} "
                   f"{r['doudi_peak_rss_mb']:>8} {r['floor_seconds']:>8} {r['doudi_over_floor']:>8} {pandas:>13} "
                   f"{str(r['pandas_over_doudi']):>12} {polars:>13} {str(r['polars_over_doudi']):>12} {engine:>13} "
                   f"{r['stages_seconds']['compute']:>9}  {stages_text}")
    out.append("pandas, polars: the month from the inbox to the ledger (no payout files, warehouse or reports); "
               "engine: the pandas payment engine alone, against doudi's compute stage.")
    for r in runs:
        pandas = shown(r["pandas_seconds"], r["pandas_totals_match"], r["pandas_peak_rss_mb"])
        polars = shown(r["polars_seconds"], r["polars_totals_match"], r["polars_peak_rss_mb"])
        out.append(f"{r['rows']:>10} same stages ({'+'.join(SAME_STAGES)}): doudi {r['doudi_same_stages_seconds']} s, "
                   f"pandas {pandas} (x{r['pandas_over_doudi_same_stages']} of doudi's), polars {polars} "
                   f"(x{r['polars_over_doudi_same_stages']} of doudi's, x{r['polars_over_pandas']} of pandas'); "
                   f"peak MB pandas {r['pandas_peak_rss_mb']}, polars {r['polars_peak_rss_mb']}")
    return out


def main() -> int:
    keep_new_files_owner_only()  # the generated inboxes and warehouses hold (synthetic) personal data
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, action="append", help="roster rows (repeat for several sizes)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--mode", choices=("auto", "single", "partitioned"), default="auto",
                    help="single: the stages as `doudi run` runs them; partitioned: as the DAG cuts them, by city "
                         f"and payment group, one partition at a time; auto (default): single up to "
                         f"{SINGLE_MAX_ROWS} rows, partitioned above")
    ap.add_argument("--one", action="store_true", help="run one size in this process, print its JSON")
    ap.add_argument("--generate-only", action="store_true", help="generate (and cache) the inboxes, run nothing")
    args = ap.parse_args()
    sizes = args.rows or [250_000]
    if args.generate_only:
        for rows in sizes:
            print(inbox_for(rows, args.seed))
        return 0
    if args.one:
        mode = args.mode if args.mode != "auto" else "single" if sizes[0] <= SINGLE_MAX_ROWS else "partitioned"
        print("BENCH-RESULT " + json.dumps(run_size(sizes[0], args.seed, mode)))
        return 0
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()}, "runs": []}
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = []
    for rows in sizes:
        proc = subprocess.run([sys.executable, __file__, "--one", "--rows", str(rows), "--seed", str(args.seed),
                               "--mode", args.mode],
                              stdout=subprocess.PIPE, text=True, check=False)
        results = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH-RESULT ")]
        if proc.returncode or not results:
            failure = failed_run(rows, args.mode, proc.returncode, proc.stdout)
            failure["machine"] = report["machine"]
            (RESULTS / f"{rows}.json").write_text(json.dumps(failure, indent=2) + "\n", encoding="utf-8")
            print(f"the {rows}-row run failed (exit {proc.returncode}) after {failure['stages_done'] or 'no stage'}: "
                  f"{failure['error']}; what it measured is in {RESULTS / f'{rows}.json'}", file=sys.stderr)
            failed.append(rows)
            continue
        report["runs"].append(json.loads(results[-1].split(" ", 1)[1]))
    if not report["runs"]:
        return 1
    latest = dict(report["runs"][-1], machine=report["machine"], runs=report["runs"])
    (RESULTS / "latest.json").write_text(json.dumps(latest, indent=2) + "\n", encoding="utf-8")
    for run in report["runs"]:
        (RESULTS / f"{run['target_rows']}.json").write_text(
            json.dumps(dict(run, machine=report["machine"]), indent=2) + "\n", encoding="utf-8")
    print("\n".join(table(report["runs"])))
    for r in report["runs"]:
        peaks = " ".join(f"{k}={v}" for k, v in r["stages_peak_rss_mb"].items())
        print(f"{r['rows']:>10} peak MB by stage ({r['mode']}, this process and its children): {peaks}")
    for r in report["runs"]:
        gt = r["ground_truth"]
        nd = gt["near_duplicates"]
        print(f"{r['rows']:>10} ground truth: exact recall min {gt['exact_min_recall']} over "
              f"{len(gt['exact_recall'])} types; near-duplicates {nd['planted']} planted, {nd['found']} found, "
              f"recall {nd['recall']}, precision {nd['precision']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
