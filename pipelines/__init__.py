"""doudi (兜底): the monthly social-assistance disbursement pipeline.

One module per stage: ingest -> validate -> integrity -> compute -> payout -> publish -> report.
Each stage function takes a RunContext and returns a small dict of paths and counts, so the
Airflow DAG and the CLI call exactly the same code.
"""

__version__ = "0.1.0"
