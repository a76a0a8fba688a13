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
