"""The star schema analysts query (issue 7), built in the warehouse by the publish stage, inside
its transaction (sql/marts/dim_*.sql, fact_*.sql):

- dimensions (dim_region, dim_program, dim_month, dim_person with history, dim_household) are
  rebuilt from the warehouse's own tables, so they always agree with every month loaded;
- facts (fact_payment, fact_enrolment, fact_finding) are views over the month tables (whose rows
  are the month files, pipelines/warehouse_months.py): reloading a month changes them with it;
- policy tables (policy_standards, policy_price_linkage, policy_fund_shares, policy_cpi,
  policy_parameters) hold every version of the reference data used, with its version id.

The warehouse keeps full ID numbers and accounts for auditors; analysts get the pseudonymised copy
(pipelines/analyst.py).
"""

from __future__ import annotations

from pipelines.catalog import ident, sql_string
from pipelines.settings import RunContext
from pipelines.sqlrun import base_tables, load_macros, model_sql, register_reference, run_model
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
    con.execute(f"USE {ident(database)}.main")  # a warehouse named warehouse-2020.duckdb: "warehouse-2020"


def define_fact_views(con) -> None:
    """Inside the publish transaction: each fact a view over the month tables (themselves views over
    the month files), so a fact never holds a copy of the month, and fact_payment's payment_state is
    the ledger's, as of the last bank return. A warehouse from before holds them as tables: dropped."""
    old = base_tables(con)
    for fact in FACTS:
        if fact in old:
            con.execute(f"DROP TABLE {fact}")
        con.execute(f"CREATE OR REPLACE VIEW {fact} AS {model_sql(f'marts/{fact}.sql')}")


def build_dimensions(ctx: RunContext, con) -> None:
    """After the month's commit, on the warehouse connection, after prepare_marts: the dimensions and
    policy tables, rebuilt from the whole history and the reference data."""
    database = con.execute("SELECT current_database()").fetchall()[0][0]
    con.execute(f"SET search_path = '{sql_string(ident(database))}.main,scratch.main'")
    for dim in DIMENSIONS:
        run_model(con, f"marts/{dim}.sql")
    for table, model in POLICY.items():
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM scratch.main.{model}")
    con.execute("CREATE OR REPLACE TABLE policy_parameters AS SELECT * FROM scratch.main.raw_policy_parameters")
    con.execute("RESET search_path")
