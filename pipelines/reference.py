"""Stage 0, check the reference data: a broken policy table stops the run before any payment.

The reference suite (expectations/reference.json) runs on frames built from the reference CSVs:
the standards table itself, the policy facts per county for the payroll month
(sql/intermediate/int_reference_policy.sql), the fund shares, the price-linkage rule and the
exclusion table. Any failure raises RunError listing what is wrong, in plain words.
"""

from __future__ import annotations

import json

from pipelines.io import write_json_atomic
from pipelines.settings import EXPECTATIONS_DIR, RunContext, RunError
from pipelines.sqlrun import REFERENCE_FILES, connect, register_reference, run_model

REQUIRED_REFERENCE = ("standards", "cpi", "price_linkage", "exclusions", "fund_shares", "regions", "banks",
                      "policy_parameters")
FRAMES = {
    "standards": "SELECT *, amount::DOUBLE AS amount_num FROM stg_standards",
    "policy": "SELECT * FROM int_reference_policy",
    "fund_shares": "SELECT *, central + provincial + city + county = 1 AS sums_to_one FROM stg_fund_shares",
    "price_linkage": "SELECT * FROM stg_price_linkage",
    "exclusions": "SELECT * FROM stg_exclusions",
}


def check_reference(ctx: RunContext) -> dict:
    from pipelines.payout import check_release_state

    check_release_state(ctx)  # first of all: a released month is rerun only as a supplementary run
    missing = [f"{n}.csv" for n in REQUIRED_REFERENCE if not (ctx.reference / f"{n}.csv").exists()]
    if missing:
        raise RunError(f"reference folder {ctx.reference} lacks {', '.join(missing)}")
    con = connect(ctx)
    try:
        register_reference(con, ctx.reference)
        for model in ("stg_regions", "stg_standards", "stg_policy_parameters", "stg_fund_shares",
                      "stg_price_linkage", "stg_exclusions", "stg_cpi"):
            run_model(con, f"staging/{model}.sql")
        run_model(con, "intermediate/int_reference_policy.sql")
    except Exception as exc:  # a value that cannot be typed is a broken table too
        raise RunError(f"reference data cannot be read: {exc}") from exc
    suite = json.loads((EXPECTATIONS_DIR / "reference.json").read_text(encoding="utf-8"))["expectations"]
    problems: list[str] = []
    for frame_name, query in FRAMES.items():
        frame = con.execute(query).df()
        expectations = [e for e in suite if e["meta"]["frame"] == frame_name]
        problems += _run(frame_name, frame, expectations)
    con.close()
    report = {"payroll_month": ctx.month, "reference": str(ctx.reference), "problems": problems,
              "files": [f"{n}.csv" for n in REFERENCE_FILES if (ctx.reference / f"{n}.csv").exists()]}
    write_json_atomic(ctx.work_dir / "reference_check.json", report)
    if problems:
        raise RunError("reference data breaks the policy's own rules; no payment computed:\n  - "
                       + "\n  - ".join(problems))
    return {"reference": str(ctx.reference), "problems": 0}


def _run(frame_name: str, frame, expectations: list[dict]) -> list[str]:
    from pipelines.gxrun import validate_frame

    if frame.empty:
        return [f"{frame_name}: no rows"]
    result = validate_frame(f"reference_{frame_name}", frame, expectations)
    out = []
    for r in result.results:
        if r.success:
            continue
        rule = r.expectation_config.meta["rule"]
        idx = r.result.get("unexpected_index_list") or []
        sample = []
        for i in idx[:5]:
            row = frame.iloc[i] if isinstance(i, int) else None
            if row is not None:
                keys = [k for k in ("program", "component", "region_code", "urban_rural", "category",
                                    "effective_from") if k in frame.columns]
                sample.append("/".join(str(row[k]) for k in keys))
        count = r.result.get("unexpected_count", "?")
        out.append(f"{frame_name}: {rule} ({count} rows{': ' + '; '.join(sample) if sample else ''})")
    return out
