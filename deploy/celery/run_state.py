"""Print the state of one DAG run from the Airflow metadata database (deploy/celery/run.sh polls it)."""

import os
import sys

from sqlalchemy import create_engine, text

dag_id, run_id = sys.argv[1:3]
engine = create_engine(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
with engine.connect() as con:
    row = con.execute(text("SELECT state FROM dag_run WHERE dag_id = :d AND run_id = :r"),
                      {"d": dag_id, "r": run_id}).fetchone()
print(row[0] if row else "absent")
