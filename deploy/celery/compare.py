"""The Celery check's verdict: the DAG's warehouse and `doudi run`'s hold the same books, and every
worker ran tasks. Usage: compare.py <cli warehouse> <dag warehouse> <worker log>..."""

import re
import sys

import duckdb

from pipelines.audits import BOOK_TABLES, book_differences

cli, dag, logs = sys.argv[1], sys.argv[2], sys.argv[3:]
ok = True
for label, path in (("doudi run", cli), ("Celery DAG", dag)):
    con = duckdb.connect(path, read_only=True)
    counts = [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in BOOK_TABLES]
    paid = con.execute("SELECT count(*), sum(amount) FROM payment_ledger WHERE status = 'payable'").fetchone()
    con.close()
    print(f"{label:11s} " + ", ".join(f"{t} {n}" for t, n in zip(BOOK_TABLES, counts, strict=True))
          + f"; payable {paid[0]} lines, {paid[1]} yuan")
differences = book_differences(cli, dag)
print("differences:", differences or "none")
ok &= not differences
for log in logs:
    text = open(log, encoding="utf-8", errors="replace").read()
    received = len(re.findall(r"Task \S*execute_workload\S* received", text))
    print(f"{log.rsplit('/', 1)[-1]}: {received} tasks received")
    ok &= received > 0
print("CELERY CHECK PASSED" if ok else "CELERY CHECK FAILED")
sys.exit(0 if ok else 1)
