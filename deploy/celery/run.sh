#!/usr/bin/env bash
# doudi on Airflow's CeleryExecutor, all on this machine: a Redis broker, a PostgreSQL metadata
# database, the API server, scheduler and DAG processor, and two Celery workers. It generates a
# small inbox, runs monthly_disbursement for each month through the workers, runs `doudi run` on
# the same inbox, and fails unless the two warehouses hold the same books and both workers ran
# tasks. Everything lives under var/celery/ and is stopped on exit.
#
#   make celery-check                         (installs requirements-celery.lock first)
#   MONTHS="2020-01 2020-02" PERSONS=800 deploy/celery/run.sh
#   KEEP=1 deploy/celery/run.sh               leave the services running (stop: deploy/celery/run.sh stop)
set -euo pipefail

PROJECT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$PROJECT/.venv/bin"
STATE="$PROJECT/var/celery"
MONTHS="${MONTHS:-2020-01 2020-02}"
PERSONS="${PERSONS:-800}"
SEED="${SEED:-20200101}"
PG_PORT="${PG_PORT:-55432}"
REDIS_PORT="${REDIS_PORT:-56379}"
API_PORT="${API_PORT:-58080}"
WORKERS="${WORKERS:-2}"

export AIRFLOW_HOME="$STATE/airflow"
export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
export AIRFLOW__CORE__DAGS_FOLDER="$PROJECT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM=8
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$API_PORT/execution/"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://airflow@127.0.0.1:$PG_PORT/airflow"
export AIRFLOW__CELERY__BROKER_URL="redis://127.0.0.1:$REDIS_PORT/0"
export AIRFLOW__CELERY__RESULT_BACKEND="db+postgresql+psycopg2://airflow@127.0.0.1:$PG_PORT/airflow"
export AIRFLOW__CELERY__WORKER_CONCURRENCY=2
export AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC=2
export AIRFLOW__LOGGING__LOGGING_LEVEL=INFO
# the services' logs, the brokers' files and doudi's outputs are owner-only (pipelines/settings.py)
umask 077
export AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS=0o600
export AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS=0o700
export AIRFLOW__API_AUTH__JWT_SECRET="${AIRFLOW__API_AUTH__JWT_SECRET:-doudi-celery-check-$(hostname)}"
export DOUDI_INBOX="$STATE/inbox"
export DOUDI_OUT="$STATE/out"
export DOUDI_WAREHOUSE="$STATE/warehouse.duckdb"
PIDS="$STATE/pids"

as_postgres() {  # PostgreSQL refuses to run as root
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

stop_all() {
    if [ -d "$PIDS" ]; then
        for f in "$PIDS"/*.pid; do
            [ -e "$f" ] || continue
            kill -- "-$(cat "$f")" 2>/dev/null || kill "$(cat "$f")" 2>/dev/null || true
            rm -f "$f"
        done
    fi
    [ -d "$STATE/pg" ] && as_postgres "$(pg_bin)/pg_ctl" -D "$STATE/pg" -m fast stop >/dev/null 2>&1 || true
    [ -S "$STATE/redis.sock" ] || [ -f "$STATE/redis.pid" ] && \
        kill "$(cat "$STATE/redis.pid" 2>/dev/null)" 2>/dev/null || true
}

if [ "${1:-}" = stop ]; then stop_all; exit 0; fi

install_servers() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    [ -n "$(pg_bin)" ] || missing+=(postgresql)
    [ ${#missing[@]} = 0 ] && return
    if [ "$(id -u)" != 0 ]; then echo "needs: sudo apt-get install ${missing[*]}"; exit 1; fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

start_bg() {  # name, command...: a process group of its own, logged to $STATE/logs/<name>.log
    local name="$1"; shift
    setsid "$@" >"$STATE/logs/$name.log" 2>&1 < /dev/null &
    echo $! >"$PIDS/$name.pid"
}

wait_for() {  # seconds, description, command...
    local seconds="$1" what="$2"; shift 2
    for _ in $(seq "$seconds"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
    echo "timed out waiting for $what"; exit 1
}

install_servers
stop_all
rm -rf "$STATE"
mkdir -p "$STATE/logs" "$PIDS" "$AIRFLOW_HOME"
trap '[ "${KEEP:-}" = 1 ] || stop_all' EXIT

echo "== PostgreSQL on 127.0.0.1:$PG_PORT, Redis on 127.0.0.1:$REDIS_PORT"
mkdir -p "$STATE/pg"
[ "$(id -u)" = 0 ] && chown postgres "$STATE/pg" "$STATE" "$STATE/logs"
as_postgres "$(pg_bin)/initdb" -D "$STATE/pg" -U airflow --auth=trust >"$STATE/logs/initdb.log"
as_postgres "$(pg_bin)/pg_ctl" -D "$STATE/pg" -l "$STATE/logs/postgres.log" -w \
    -o "-p $PG_PORT -k $STATE -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
as_postgres "$(pg_bin)/createdb" -h 127.0.0.1 -p "$PG_PORT" -U airflow airflow
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --pidfile "$STATE/redis.pid" --logfile "$STATE/logs/redis.log"
wait_for 20 "Redis" redis-cli -p "$REDIS_PORT" ping

echo "== Airflow metadata database and the DAGs"
"$BIN/airflow" db migrate >"$STATE/logs/migrate.log" 2>&1
"$BIN/airflow" dags reserialize >"$STATE/logs/reserialize.log" 2>&1

echo "== API server, scheduler, DAG processor, $WORKERS Celery workers"
start_bg api-server "$BIN/airflow" api-server --port "$API_PORT" --host 127.0.0.1
start_bg scheduler "$BIN/airflow" scheduler
start_bg dag-processor "$BIN/airflow" dag-processor
for i in $(seq "$WORKERS"); do
    start_bg "worker$i" "$BIN/airflow" celery worker --celery-hostname "worker$i@%h" --concurrency 2 \
        --skip-serve-logs
done
wait_for 120 "the API server" curl -sf "http://127.0.0.1:$API_PORT/api/v2/version"
for i in $(seq "$WORKERS"); do
    wait_for 120 "worker$i" grep -q "ready" "$STATE/logs/worker$i.log"
done

echo "== sample inbox: $PERSONS persons, months $MONTHS"
first="${MONTHS%% *}"; last="${MONTHS##* }"
"$BIN/doudi" generate --inbox "$DOUDI_INBOX" --months "$first..$last" --persons "$PERSONS" --seed "$SEED" >/dev/null

"$BIN/airflow" dags unpause monthly_disbursement >/dev/null
for m in $MONTHS; do
    run_id="celery_check_$m"
    echo "== monthly_disbursement $m on the Celery workers"
    started=$(date +%s)
    "$BIN/airflow" dags trigger monthly_disbursement --run-id "$run_id" \
        --conf "{\"payroll_month\": \"$m\"}" >/dev/null
    while :; do
        state=$("$BIN/python" "$PROJECT/deploy/celery/run_state.py" monthly_disbursement "$run_id")
        case "$state" in
            success) break ;;
            failed) echo "the run for $m failed; task logs under $AIRFLOW_HOME/logs"; exit 1 ;;
        esac
        [ $(( $(date +%s) - started )) -gt 1800 ] && { echo "the run for $m did not finish in 30 min"; exit 1; }
        sleep 5
    done
    echo "   success in $(( $(date +%s) - started )) s"
done

echo "== the same months with doudi run (one process, unpartitioned)"
for m in $MONTHS; do
    DOUDI_OUT="$STATE/cli/out" DOUDI_WAREHOUSE="$STATE/cli/warehouse.duckdb" "$BIN/doudi" run --month "$m" \
        >"$STATE/logs/doudi-run-$m.log" 2>&1 || { tail -5 "$STATE/logs/doudi-run-$m.log"; exit 1; }
done

echo "== comparison"
"$BIN/python" "$PROJECT/deploy/celery/compare.py" "$STATE/cli/warehouse.duckdb" "$DOUDI_WAREHOUSE" \
    "$STATE"/logs/worker*.log
