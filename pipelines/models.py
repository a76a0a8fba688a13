"""The SQL models under sql/ as a graph: each model declares itself, the runner orders them.

A model file (sql/staging/, sql/intermediate/, sql/marts/) opens with comment lines that say what
it is, its grain (`grain: one row per ...`, the sentence wherever the prose puts it) and its kind,
on a line of its own (a reason may follow the word):

    -- kind: table            view | table | replaced_per_month

- `table`: materialised as a table named after the file; `view`: defined as a view its readers
  stream (the month's wide roster rows, never held); `replaced_per_month`: a warehouse fact whose
  rows of the payroll month are deleted and inserted again by publish (pipelines/marts.py).
- An optional `-- name: other_name` says the model is materialised under another name than its
  file's (sql/marts/payment_ledger.sql is the engine's `month_ledger`: the warehouse's
  `payment_ledger` is every month's, published).

A model's inputs are not declared: they are read from its SQL with sqlglot (the tables it reads,
less its own CTEs). Every input is another model or one of SOURCES below, the tables that Python
makes (from Parquet written by earlier stages, the reference CSVs, the warehouse's history);
anything else is an error naming the file. `models_for(targets)` lists the models a target needs,
inputs first; `run_models(con, targets)` runs them with pipelines.sqlrun.run_model. The order in
which the stages run the models is nowhere written by hand: it follows from what each model reads.

Audits (sql/audits/*.sql) are SQL that returns the offending rows; each file says which check it
belongs to and the sentence its count is reported with:

    -- audit: engine_month
    -- message: {n} negative amounts

`audits(check)` returns them as pipelines.audits.Audit tuples for `enforce`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from pipelines.settings import SQL_DIR, RunError

MODEL_LAYERS = ("staging", "intermediate", "marts")
AUDIT_DIR = "audits"
KINDS = ("view", "table", "replaced_per_month")


def _reference_sources() -> dict[str, str]:
    from pipelines.sqlrun import OPTIONAL_REFERENCE, REFERENCE_FILES

    return {f"raw_{name}": f"reference/{name}.csv as delivered, every column text (sqlrun.register_reference"
                           + ("; empty where the folder lacks it)" if name in OPTIONAL_REFERENCE else ")")
            for name in REFERENCE_FILES}


# The tables the models read that no model makes: made by Python, each in one place, named here once.
SOURCES: dict[str, str] = {
    # --- validate (pipelines/validate.py): one program's delivered rows --------------------------
    "raw_roster": "one program's ingested rows (_work/ingest/<program>.parquet; a city's files in a partition).",
    "raw_roster_keys": "each ingested row's row_key, numbered over the whole delivery before a partition is cut.",
    "disability_roster_ids": "ID numbers on any city's loaded disability roster (a tekun person's disability).",
    "stg_roster": "the program's staging model (stg_<program>) with its household key, as validate judges it.",
    "gx_failures": "the (row_key, reason_code) pairs the program's Great Expectations suite failed.",
    # --- integrity (pipelines/integrity.py): the month's four rosters at once ----------------------
    "validated_rows": "every validated roster row of the month (_work/validate/*.parquet), temporary columns added.",
    "ingest_files": "every roster file of the month and its whole-file outcome (_work/ingest/*.files.parquet).",
    "raw_deaths": "the death registry: this month's extract and every earlier month's, less withdrawn entries.",
    "raw_registry": "the review-only registries (public payroll, vehicles, businesses), as raw_deaths.",
    "hist_accounts": "each person's account as last accepted in an earlier payroll (warehouse roster_row).",
    "hist_one_off": "approval numbers of temporary-assistance lines earlier payrolls carried (warehouse ledger).",
    "hist_temporary_cases": "temporary-assistance cases accepted in earlier payrolls (warehouse roster_row).",
    "hold_clearances": "the hold clearances (`doudi clear`) that cover this payroll (warehouse hold_clearance).",
    "int_near_duplicate_pairs": "near-duplicate person pairs found by record linkage (pipelines/linkage.py).",
    # --- compute (pipelines/compute.py): the payment engine ---------------------------------------
    "cur_roster": "integrity's final roster of the month (_work/integrity/roster.parquet; a group's rows).",
    "known_deaths": "every death known to this payroll (_work/integrity/deaths_known.parquet).",
    "hist_ledger": "the ledger lines of earlier payrolls (warehouse payment_ledger; empty without one).",
    "hist_units": "units accepted in earlier payrolls, basis_month their payroll (warehouse roster_row).",
    "hist_decided": "(unit, program, month) an earlier payroll decided, less deaths since withdrawn.",
    "hist_withdrawn": "months not paid for a death that is withdrawn now: owed again as arrears.",
    "hist_closed_accounts": "payee accounts a bank reported closed or nonexistent (warehouse bank_return).",
    "hist_receivables": "receivables recorded by earlier payrolls (warehouse receivable).",
    "released_lines": "a supplementary run's released payable lines of the month (warehouse payment_ledger).",
    "later_paid": "what later payrolls paid (regular, arrears) for a supplementary run's service months, by person.",
    "month_roster": "integrity's final roster of the whole month (_work/integrity/roster.parquet).",
    "integrity_findings": "integrity's findings of the month (_work/integrity/findings.parquet).",
    # --- payout (pipelines/payout.py) ---------------------------------------------------------------
    "payable_lines": "the payable lines of one chunk of payee accounts (payout.build_records).",
    # --- the warehouse's own tables, read by the marts inside it (pipelines/marts.py) -------------
    "payment_ledger": "the warehouse's ledger, every published month (payment_ref filled).",
    "roster_row": "the warehouse's roster rows, every published month.",
    "row_disposition": "the warehouse's disposition of every delivered row, every published month.",
    "finding": "the warehouse's findings, every published month.",
    **_reference_sources(),
}
# families of small lookup tables, each made from pipelines/vocabulary.py
SOURCE_PREFIXES: dict[str, str] = {
    "vocab_": "pipelines/vocabulary.py's lists as lookup tables (sqlrun.register_vocabulary; marts.prepare_marts).",
}


@dataclass(frozen=True)
class Model:
    name: str  # the table or view it makes
    path: str  # under sql/, e.g. "intermediate/int_units.sql"
    kind: str
    grain: str
    text: str

    @property
    def stem(self) -> str:
        return Path(self.path).stem


@dataclass(frozen=True)
class AuditFile:
    path: str
    check: str
    message: str
    sql: str


_KEY_LINE = re.compile(r"--\s*(kind|name|audit|message):\s*(.*?)\s*$")


def opening_comment(text: str) -> list[str]:
    """The comment lines a file opens with, without their `--`."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:])
    return lines


def header(text: str) -> dict[str, str]:
    """What a file's opening comment declares: the `-- key: value` lines (kind, name, audit, message;
    a message may go on over the comment lines after it that are indented, `--   more`), and the
    grain: the sentence after `grain:` wherever the prose puts it."""
    out: dict[str, str] = {}
    last = None
    for line in opening_comment(text):
        match = _KEY_LINE.match("--" + line)
        if match and match.group(1) not in out:
            last = match.group(1)
            out[last] = match.group(2)
        elif last == "message" and re.match(r"\s{2,}\S", line):
            out[last] += " " + line.strip()
        else:
            last = None
    grain = []
    for line in opening_comment(text):
        if _KEY_LINE.match("--" + line):
            if grain:
                break
            continue
        if not grain:
            if "grain:" not in line:
                continue
            line = line.split("grain:", 1)[1]
        sentence = re.split(r"\.(?:\s|$)", line.strip() + " ", maxsplit=1)
        grain.append(sentence[0].strip())
        if len(sentence) > 1:
            break
    if grain:
        out["grain"] = " ".join(g for g in grain if g)
    return out


def tables_read(sql: str, path: str) -> frozenset[str]:
    """The tables a SELECT reads (DuckDB dialect), less its CTEs; `wh.x` for an attached database's."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise RunError(f"sql/{path} cannot be read for its inputs: {str(exc).splitlines()[0]}") from exc
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    names = set()
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue  # a table function: read_parquet(...), unnest(...)
        name = ".".join(p for p in (table.catalog, table.db, table.name) if p)
        if name not in ctes:
            names.add(name)
    return frozenset(names)


class ModelGraph:
    """Every model and audit under one sql/ folder, checked: headers present, inputs known, no cycle."""

    def __init__(self, sql_dir: Path = SQL_DIR, sources: dict[str, str] | None = None,
                 source_prefixes: dict[str, str] | None = None):
        self.sql_dir = Path(sql_dir)
        self.sources = SOURCES if sources is None else sources
        self.source_prefixes = SOURCE_PREFIXES if source_prefixes is None else source_prefixes
        self.models: dict[str, Model] = {}
        for layer in MODEL_LAYERS:
            for file in sorted((self.sql_dir / layer).glob("*.sql")):
                model = self._read_model(file)
                if model.name in self.models:
                    raise RunError(f"sql/{model.path} makes {model.name}, as sql/{self.models[model.name].path} "
                                   "does: a table has one model")
                self.models[model.name] = model
        self.audit_files = [self._read_audit(f) for f in sorted((self.sql_dir / AUDIT_DIR).glob("*.sql"))]
        for name, model in self.models.items():
            if self.is_source(name):
                raise RunError(f"sql/{model.path} makes {name}, which is declared a source (pipelines/models.py)")
        self._inputs: dict[str, frozenset[str]] = {}

    def inputs(self, path: str, text: str) -> frozenset[str]:
        """The tables a model or audit reads, each a model or a declared source (else an error naming
        the file). Parsed when first asked (sqlglot takes ~20 ms a file): a stage parses what it runs."""
        if path not in self._inputs:
            found = tables_read(text, path)
            unknown = sorted(i for i in found if i not in self.models and not self.is_source(i))
            if unknown:
                raise RunError(f"sql/{path} reads {', '.join(unknown)}: neither a model under sql/ nor a declared "
                               "source (pipelines/models.py SOURCES)")
            self._inputs[path] = found
        return self._inputs[path]

    def check(self) -> None:
        """Every model and audit at once: inputs known, no circle (the tests run it; a stage checks
        what it runs)."""
        for audit in self.audit_files:
            self.inputs(audit.path, audit.sql)
        self.models_for(list(self.models))

    def is_source(self, name: str) -> bool:
        return name in self.sources or name.startswith(tuple(self.source_prefixes))

    def _read_model(self, file: Path) -> Model:
        path = file.relative_to(self.sql_dir).as_posix()
        text = file.read_text(encoding="utf-8")
        head = header(text)
        kind = (head.get("kind") or "").split(" ")[0]
        if kind not in KINDS:
            raise RunError(f"sql/{path} has no `-- kind:` line ({' | '.join(KINDS)}) in its opening comment")
        if not head.get("grain"):
            raise RunError(f"sql/{path} has no `-- grain:` line (one row per ...) in its opening comment")
        return Model(name=(head.get("name") or file.stem).split(" ")[0], path=path, kind=kind, grain=head["grain"],
                     text=text)

    def _read_audit(self, file: Path) -> AuditFile:
        path = file.relative_to(self.sql_dir).as_posix()
        text = file.read_text(encoding="utf-8")
        head = header(text)
        if not head.get("audit") or "{n}" not in head.get("message", ""):
            raise RunError(f"sql/{path} needs `-- audit: <check>` and `-- message: {{n}} ...` in its opening comment")
        return AuditFile(path=path, check=head["audit"].split(" ")[0], message=head["message"], sql=text)

    def models_for(self, targets, built=()) -> list[Model]:
        """The models the targets need, each after the models it reads (the targets included, sources
        and the models in `built`, made already on this connection, not). Ties: by name, so the order
        is the same on every run."""
        built = set(built)
        order: list[Model] = []
        state: dict[str, str] = {}  # name -> "visiting" | "done"
        trail: list[str] = []

        def visit(name: str) -> None:
            if state.get(name) == "done" or name in built:
                return
            if state.get(name) == "visiting":
                cycle = trail[trail.index(name):] + [name]
                raise RunError("the models read each other in a circle: "
                               + " -> ".join(f"sql/{self.models[n].path}" for n in cycle))
            state[name] = "visiting"
            trail.append(name)
            model = self.models[name]
            for i in sorted(self.inputs(model.path, model.text)):
                if i in self.models:
                    visit(i)
            trail.pop()
            state[name] = "done"
            order.append(self.models[name])

        for target in targets:
            if target not in self.models:
                raise RunError(f"no model makes {target} (sql/{'/'.join(MODEL_LAYERS)}): "
                               + ("it is a source, made by Python" if self.is_source(target) else "unknown name"))
            visit(target)
        return order

    def model_inputs(self, name: str) -> list[str]:
        """The models a model reads directly (not sources)."""
        model = self.models[name]
        return sorted(i for i in self.inputs(model.path, model.text) if i in self.models)

    def audits(self, check: str) -> list[tuple[str, str, list]]:
        found = []
        for audit in self.audit_files:
            if audit.check == check:
                self.inputs(audit.path, audit.sql)  # refuses an unknown table, naming the file
                found.append((audit.message, audit.sql, []))
        if not found:
            raise RunError(f"no audit under sql/{AUDIT_DIR}/ belongs to check {check!r}")
        return found


@functools.cache
def graph() -> ModelGraph:
    return ModelGraph()


def models_for(targets, built=()) -> list[Model]:
    return graph().models_for(targets, built)


def audits(check: str) -> list[tuple[str, str, list]]:
    return graph().audits(check)


def run_models(con, targets, built=()) -> list[str]:
    """Run, in order, the models the targets need that `built` does not hold; return their names
    (pass them on as `built` to a later call on the same connection)."""
    from pipelines.sqlrun import run_model

    made = []
    for model in models_for(targets, built):
        if model.kind == "replaced_per_month":
            raise RunError(f"sql/{model.path} is replaced month by month in the warehouse by publish "
                           "(pipelines/marts.py), not run as a model of a stage")
        made.append(run_model(con, model.path, name=model.name, view=model.kind == "view"))
    return made
