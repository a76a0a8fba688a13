"""The month's policy as the stages read it: the parameters that change amounts, resolved once per run
by check_reference (`_work/policy_resolved.json`), and the counties it held for their reference
data (`_work/reference_check.json`).

Not a stage: check_reference writes these, ingest and compute read them, publish records them.
"""

from __future__ import annotations

import json
import os

from pipelines import artefacts
from pipelines.io import write_json_atomic
from pipelines.settings import PROGRAMS, RunContext, RunError

# every parameter the code reads, and what needs it (a gap is an error, never a rule switched off)
REQUIRED_PARAMETERS = {
    "tekun_basic_min_ratio": "the check that tekun basic is at least this many times the dibao standard",
    "tekun_elderly_min_age": "tekun eligibility by age",
    "tekun_minor_max_age": "tekun eligibility by age",
    "orphan_age_out": "the orphan allowance's last month",
    "reissue_escalate_after_months": "the escalation of a failed payment not yet reissued",
    "near_duplicate_min_match_weight": "the near-duplicate check",
    "pay_amount_source": "the choice between the computed and the county-approved amount",
    "approved_tolerance": "the finding on an approved amount that differs from the computed one",
    # the watch list (监测预警名单), the visit list (走访探视名单) and the raise's progress (pipelines/watch.py)
    "watch_near_standard_ratio": "the watch list's rule near_standard (per-capita income close to the standard)",
    "watch_exit_lookback_months": "the watch list's rule recent_exit (left dibao or tekun in the last N months)",
    "watch_income_drop_ratio": "the watch list's rule income_drop (income fell sharply month on month)",
    "watch_household_size_change": "the watch list's rule household_size_change (size changed sharply)",
    "watch_orphan_age_out_lookahead_months": "the watch list's rule orphan_ageing_out (the months looked ahead)",
    "watch_age_lookahead_months": "the watch list's rule age_threshold (the months looked ahead)",
    "watch_dibao_adult_age": "the watch list's rule age_threshold (a dibao member leaving 未成年)",
    "watch_dibao_elderly_age": "the watch list's rule age_threshold (a dibao member reaching 老年)",
    "visit_elderly_min_age": "the visit list's rule dibao_elderly_alone (one-person dibao households of this age)",
    "raise_target_urban": "the raise's progress (the provincial average urban dibao standard's target)",
    "raise_target_rural": "the raise's progress (the provincial average rural dibao standard's target)",
    "raise_baseline_lag_months": "the raise's progress (the month whose standards the targets compare with)",
    "carry_forward_max_months": "paying a county's last accepted roster forward while its file is missing",
    "carry_forward_programs": "paying a county's last accepted roster forward while its file is missing",
}
TEXT_PARAMETERS = {"pay_amount_source": ("computed", "approved")}
# parameters whose value is a list of these words, separated by ';' (none of them: an empty list is ';')
LIST_PARAMETERS = {"carry_forward_programs": PROGRAMS}
# settings that used to change amounts from the environment, and the parameter that replaced each
MOVED_SETTINGS = {"DOUDI_PAY_AMOUNT_SOURCE": "pay_amount_source", "DOUDI_APPROVED_TOLERANCE": "approved_tolerance"}
POLICY_RESOLVED = ("pay_amount_source", "approved_tolerance", "carry_forward_max_months", "carry_forward_programs")


def refuse_moved_settings() -> None:
    """What is paid is never decided by the environment: a moved setting that is still set stops the run."""
    for env, parameter in MOVED_SETTINGS.items():
        if os.environ.get(env) is not None:
            raise RunError(f"{env} is no longer read: the setting moved to policy_parameters.csv (parameter "
                           f"{parameter}, versioned by effective_from); unset {env} and keep the rule there.")


def parameter_problems(con, month: str, needed: dict[str, str]) -> list[str]:
    """Each parameter of `needed` (name -> what needs it) in force exactly once in stg_policy_parameters,
    of its kind: one sentence per problem. check_reference asks it of every required parameter; the
    report stage (pipelines/watch.py) again of its own, for a report run on its own."""
    rows = con.execute("SELECT parameter, value, value_text FROM stg_policy_parameters").fetchall()
    by_name: dict[str, list] = {}
    for name, value, text in rows:
        by_name.setdefault(name, []).append((value, text))
    problems: list[str] = []
    for name, needs in needed.items():
        found = by_name.get(name, [])
        if not found:
            problems.append(f"policy_parameters.csv has no {name} row in force for payroll {month}: {needs} needs it.")
        elif len(found) > 1:
            problems.append(f"policy_parameters.csv has {len(found)} {name} rows in force for payroll {month}: "
                            f"{needs} needs exactly one (close the old version with effective_to).")
        elif name in LIST_PARAMETERS:
            words = [w.strip() for w in (found[0][1] or "").split(";")]
            unknown = [w for w in words if w and w not in LIST_PARAMETERS[name]]
            if unknown or not found[0][1]:
                problems.append(f"policy_parameters.csv gives {name} = {found[0][1]!s} for payroll {month}: {needs} "
                                f"needs words from {', '.join(LIST_PARAMETERS[name])} separated by ';' (';' for none).")
        elif name in TEXT_PARAMETERS:
            if found[0][1] not in TEXT_PARAMETERS[name]:
                problems.append(f"policy_parameters.csv gives {name} = {found[0][1]!s} for payroll {month}: "
                                f"{needs} needs one of {', '.join(TEXT_PARAMETERS[name])}.")
        elif found[0][0] is None or found[0][0] < 0:
            problems.append(f"policy_parameters.csv gives {name} = {found[0][1]!s} for payroll {month}, not a "
                            f"number of zero or more: {needs} needs one.")
    return problems


def resolve_policy(con) -> dict[str, str]:
    """The parameters that change amounts, as in force for the payroll month (stg_policy_parameters)."""
    rows = dict(con.execute("SELECT parameter, value_text FROM stg_policy_parameters WHERE parameter IN ?",
                            [list(POLICY_RESOLVED)]).fetchall())
    missing = [p for p in POLICY_RESOLVED if rows.get(p) is None]
    if missing:
        raise RunError(f"policy_parameters.csv has no {', '.join(missing)} row in force for this payroll month: "
                       "the amounts paid need it")
    return {p: rows[p] for p in POLICY_RESOLVED}


def write_policy_resolved(ctx: RunContext) -> dict[str, str]:
    """Resolve the amount-changing parameters once for the run and keep them beside its work files."""
    from pipelines.sqlrun import connect, register_reference, run_model

    con = connect(ctx)
    try:
        register_reference(con, ctx.reference)
        run_model(con, "staging/stg_policy_parameters.sql")
        resolved = resolve_policy(con)
    finally:
        con.close()
    write_json_atomic(artefacts.policy_resolved(ctx),
                      {"payroll_month": ctx.month, "policy_resolved": resolved})
    return resolved


def policy_resolved(ctx: RunContext) -> dict[str, str]:
    """The run's resolved policy: the one check_reference wrote, or (a stage run on its own) resolved now."""
    path = artefacts.policy_resolved(ctx)
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("payroll_month") == ctx.month:
            return data["policy_resolved"]
    return write_policy_resolved(ctx)


def held_counties(ctx: RunContext) -> dict[str, list[str]]:
    """The counties check_reference held for this payroll month (reference_check.json), by county."""
    path = artefacts.reference_check(ctx)
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if data.get("payroll_month") != ctx.month or "held_counties" not in data:
        raise RunError(f"no reference check for payroll {ctx.month} in {ctx.work_dir}: run check_reference first "
                       "(it says which counties' reference data holds them)")
    return data["held_counties"]
