"""Audits: plain SQL that counts the offending rows; zero means the audit passes.

Each audit is (message, sql, params); the message takes the count, e.g. "{n} negative amounts".
An auditor can run any of these queries by hand to see the rows."""

from __future__ import annotations

from pipelines.settings import RunError

Audit = tuple[str, str, list]


def failed_audits(con, audits: list[Audit]) -> list[str]:
    problems = []
    for message, sql, params in audits:
        n = con.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0]
        if n:
            problems.append(message.format(n=n))
    return problems


def enforce(con, audits: list[Audit], headline: str) -> None:
    problems = failed_audits(con, audits)
    if problems:
        raise RunError(f"{headline}: " + "; ".join(problems))


# The warehouse tables that two runs of the same inbox must agree on, row for row, whatever
# ran them (`doudi run`, the partitioned DAG, the DAG on Celery workers).
BOOK_TABLES = ("payment_ledger", "roster_row", "row_disposition", "finding", "payout_record")


def book_differences(a, b, tables=BOOK_TABLES) -> dict[str, int]:
    """Rows in one warehouse's table and not in the other's (counted both ways), per differing table."""
    import duckdb

    from pipelines.sqlrun import sql_string

    con = duckdb.connect()
    con.execute(f"ATTACH '{sql_string(str(a))}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{sql_string(str(b))}' AS b (READ_ONLY)")
    out = {}
    for t in tables:
        n = con.execute(f"SELECT (SELECT count(*) FROM (FROM a.{t} EXCEPT ALL FROM b.{t})) + "
                        f"(SELECT count(*) FROM (FROM b.{t} EXCEPT ALL FROM a.{t}))").fetchone()[0]
        if n:
            out[t] = int(n)
    con.close()
    return out
