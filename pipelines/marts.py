"""The star schema analysts query (issue 7), built in the warehouse by the publish stage, inside
its transaction (sql/marts/dim_*.sql, fact_*.sql):

- dimensions (dim_region, dim_program, dim_month, dim_person with history, dim_household) are
  rebuilt from the warehouse's own tables, so they always agree with every month loaded;
- facts (fact_payment, fact_enrolment, fact_finding) are loaded month by month: reloading a month
  deletes its rows and inserts them again, exactly;
- policy tables (policy_standards, policy_price_linkage, policy_fund_shares, policy_cpi,
  policy_parameters) hold every version of the reference data used, with its version id.

The warehouse keeps full ID numbers and accounts for auditors; analysts get the pseudonymised copy
(pipelines/analyst.py).
"""

from __future__ import annotations

from pipelines.settings import RunContext
from pipelines.sqlrun import load_macros, model_sql, register_reference, run_model
from pipelines.vocabulary import EVENT_TYPES, EVENT_TYPES_EN, PROGRAM_NAMES_ZH

DIMENSIONS = ("dim_region", "dim_program", "dim_month", "dim_person", "dim_household", "dim_event")
FACTS = ("fact_payment", "fact_enrolment", "fact_finding")
POLICY = {  # warehouse table -> staging model over the reference CSVs
    "policy_standards": "stg_standards",
    "policy_price_linkage": "stg_price_linkage",
    "policy_fund_shares": "stg_fund_shares",
    "policy_cpi": "stg_cpi",
}
FUND_PROGRAM = {"disability_living": "disability", "disability_nursing": "disability"}


def prepare_marts(ctx: RunContext, con) -> None:
    """Before the publish transaction (which may write only to the warehouse): the reference data
    and vocabulary the marts need, in a scratch in-memory database, so they never land in the
    warehouse's own tables."""
    database = con.execute("SELECT current_database()").fetchall()[0][0]
    con.execute("ATTACH ':memory:' AS scratch")
    con.execute("USE scratch.main")
    load_macros(con)
    register_reference(con, ctx.reference)
    for model in ("stg_regions", *POLICY.values()):
        run_model(con, f"staging/{model}.sql")
    con.execute("CREATE OR REPLACE TABLE vocab_program (program VARCHAR, program_zh VARCHAR, fund_program VARCHAR)")
    con.executemany("INSERT INTO vocab_program VALUES (?, ?, ?)",
                    [(p, zh, FUND_PROGRAM.get(p, p)) for p, zh in PROGRAM_NAMES_ZH.items()])
    con.execute("CREATE OR REPLACE TABLE vocab_event (event_type VARCHAR, event_en VARCHAR, sort_order INTEGER)")
    con.executemany("INSERT INTO vocab_event VALUES (?, ?, ?)",
                    [(e, EVENT_TYPES_EN[e], i) for i, e in enumerate(EVENT_TYPES, start=1)])
    con.execute(f"USE {database}.main")


def _add_new_fact_columns(con, fact: str) -> None:
    """A warehouse built before a column its fact model now makes (fact_payment's case columns of
    temporary assistance) gains it, empty for the months loaded before."""
    have = {r[0] for r in con.execute(f"DESCRIBE {fact}").fetchall()}
    for name, kind in con.execute(f"SELECT column_name, column_type FROM (DESCRIBE ({model_sql(f'marts/{fact}.sql')}))"
                                  ).fetchall():
        if name not in have:
            con.execute(f'ALTER TABLE {fact} ADD COLUMN "{name}" {kind}')


def build_marts(ctx: RunContext, con) -> None:
    """Inside the publish transaction, on the warehouse connection, after prepare_marts."""
    database = con.execute("SELECT current_database()").fetchall()[0][0]
    con.execute(f"SET search_path = '{database}.main,scratch.main'")
    for dim in DIMENSIONS:
        run_model(con, f"marts/{dim}.sql")
    for fact in FACTS:
        con.execute(f"CREATE TABLE IF NOT EXISTS {fact} AS SELECT * FROM ({model_sql(f'marts/{fact}.sql')}) LIMIT 0")
        _add_new_fact_columns(con, fact)
        con.execute(f"DELETE FROM {fact} WHERE payroll_month = ?", [ctx.month])
        con.execute(f"INSERT INTO {fact} BY NAME {model_sql(f'marts/{fact}.sql')}")
    for table, model in POLICY.items():
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM scratch.main.{model}")
    con.execute("CREATE OR REPLACE TABLE policy_parameters AS SELECT * FROM scratch.main.raw_policy_parameters")
    con.execute("RESET search_path")
