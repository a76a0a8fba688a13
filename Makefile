# doudi: two commands do everything on a machine with Python 3.11 and make.
#   make demo   install, generate the sample inbox (2020-01..2020-04), run the monthly DAG for each
#               month through `airflow dags test`, print where payout files and reports are
#   make test   the whole test suite, tier by tier (make test-fast: the unit and stage tiers)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
MONTHS ?= 2020-01 2020-02 2020-03 2020-04
PERSONS ?= 3000
SEED ?= 20200101
ROWS ?= 250000

export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__LOGGING__LOGGING_LEVEL := WARNING
# task logs may quote a roster's values: owner-only, like every file doudi writes (its processes run
# with umask 077, pipelines/settings.py keep_new_files_owner_only)
export AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS := 0o600
export AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS := 0o700
export DOUDI_INBOX ?= $(CURDIR)/var/inbox
export DOUDI_OUT ?= $(CURDIR)/var/out
export DOUDI_WAREHOUSE ?= $(CURDIR)/var/warehouse.duckdb
export DOUDI_REFERENCE ?= $(CURDIR)/data/reference
# the paying side the demo's and the tests' payout files name: clearly not a bureau's account (doudi
# refuses to write pain.001 or bank files without one); a bureau sets its own (README, "Bank files")
export DOUDI_DEBTOR_ACCOUNT ?= TEST-DEBTOR-0000000001
export DOUDI_DEBTOR_BIC ?= TESTCNBJ

.PHONY: install demo test test-fast test-deps lint bench lock clean airflow-db celery-check model-check mutation

install: $(VENV)/.installed

# Exact versions: requirements.lock pins every package; the project itself is installed editable.
# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set (these machines), Python
# would otherwise compile Airflow, GX and pandas from source in every process (~10 s each).
$(VENV)/.installed: pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "doudi needs $(PYTHON) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python --no-deps -e .
	touch $@

airflow-db: $(AIRFLOW_HOME)/airflow.db $(AIRFLOW_HOME)/airflow.cfg

# The exports above, written where Airflow reads them when run outside make (README: `airflow dags
# test` with AIRFLOW_HOME alone): no example DAGs, WARNING, owner-only logs. Rewritten when this file
# changes; a setting of one's own goes in the environment (AIRFLOW__SECTION__KEY wins over the file).
$(AIRFLOW_HOME)/airflow.cfg: Makefile
	mkdir -p $(AIRFLOW_HOME)
	printf '%s\n' '# written by `make airflow-db` from the Makefile; edits are overwritten' \
	    '[core]' 'dags_folder = $(AIRFLOW__CORE__DAGS_FOLDER)' 'load_examples = $(AIRFLOW__CORE__LOAD_EXAMPLES)' \
	    '[logging]' 'logging_level = $(AIRFLOW__LOGGING__LOGGING_LEVEL)' \
	    'file_task_handler_new_file_permissions = $(AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS)' \
	    'file_task_handler_new_folder_permissions = $(AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS)' \
	    > $@

$(AIRFLOW_HOME)/airflow.db: $(VENV)/.installed $(AIRFLOW_HOME)/airflow.cfg
	mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/migrate.log 2>&1 || { tail -20 $(AIRFLOW_HOME)/migrate.log; exit 1; }

demo: install airflow-db
	rm -rf $(DOUDI_INBOX) $(DOUDI_OUT) $(DOUDI_WAREHOUSE) $(basename $(DOUDI_WAREHOUSE))_analyst.duckdb \
	    $(basename $(DOUDI_WAREHOUSE))_months
	$(BIN)/doudi generate --inbox $(DOUDI_INBOX) --months $(firstword $(MONTHS))..$(lastword $(MONTHS)) \
	    --persons $(PERSONS) --seed $(SEED)
	@umask 077; for m in $(MONTHS); do \
	    echo "== monthly_disbursement $$m (airflow dags test)"; \
	    $(BIN)/airflow dags test monthly_disbursement --conf "{\"payroll_month\": \"$$m\"}" \
	        > $(AIRFLOW_HOME)/dags-test-$$m.log 2>&1 \
	        || { echo "the DAG run for $$m failed; see $(AIRFLOW_HOME)/dags-test-$$m.log"; \
	             grep -E "RunError|AirflowFailException|Error" $(AIRFLOW_HOME)/dags-test-$$m.log | tail -5; exit 1; }; \
	    $(BIN)/doudi verify --month $$m || exit 1; \
	done
	@echo
	@echo "Payout files:  $(DOUDI_OUT)/<YYYY-MM>/payouts/   (manifest.json names every file)"
	@echo "Reports:       $(DOUDI_OUT)/<YYYY-MM>/reports/   (reconciliation, exceptions, quarantine, statistical return, data_docs/)"
	@echo "Casework:      $(DOUDI_OUT)/<YYYY-MM>/casework/  (watch and visit lists per county, with names)"
	@echo "Warehouse:     $(DOUDI_WAREHOUSE)   (auditors; full ID numbers, owner-only)"
	@echo "Analysts:      $(basename $(DOUDI_WAREHOUSE))_analyst.duckdb   (pseudonymised; docs/data_dictionary.md)"
	@echo "Try:           $(BIN)/doudi explain --month 2020-04 --id <ID number>"
	@echo "               $(BIN)/doudi simulate --from-month 2020-04 --urban 5% --rural 7%"
	@ls -d $(DOUDI_OUT)/*/payouts $(DOUDI_OUT)/*/reports

# The tests open the workbooks in LibreOffice, as the bureau does, and read what it prints to PDF
# with pdftotext: installed here when missing.
test-deps:
	@command -v soffice >/dev/null || { \
	    if [ "$$(id -u)" = 0 ]; then \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	            --no-install-recommends libreoffice-calc-nogui >/dev/null; \
	    else echo "the tests need LibreOffice: sudo apt-get install libreoffice-calc-nogui"; exit 1; fi; }
	@command -v chromium >/dev/null || { \
	    if [ "$$(id -u)" = 0 ]; then \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	            --no-install-recommends chromium >/dev/null; \
	    else echo "the tests need Chromium: sudo apt-get install chromium"; exit 1; fi; }
	@# the printed reports are Chinese: their PDFs (tests/test_print.py) need a CJK font, and pdftotext
	@{ fc-list :lang=zh | grep -q . && command -v pdftotext >/dev/null; } || { \
	    if [ "$$(id -u)" = 0 ]; then \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	            --no-install-recommends fonts-wqy-microhei poppler-utils >/dev/null; \
	    else echo "the tests need a CJK font and pdftotext: sudo apt-get install fonts-wqy-microhei poppler-utils"; exit 1; fi; }

# The tiers of tests/tiers.py, lightest first, one pytest each, each printing its 20 slowest tests;
# the first tier that fails stops the rest. Every test is in exactly one tier.
TIERS := unit stage e2e external
FAST_TIERS := unit stage
# The stage and e2e tiers are CPU-bound on one core, so they run on two workers (pytest-xdist), a
# whole file per worker so that a file's module fixtures are built once. unit is too short to gain,
# and external shares one Airflow database and LibreOffice profile, so both stay on one process.
PARALLEL_TIERS := stage e2e
define run_tiers
	@for tier in $(1); do \
	    echo "== tests: $$tier"; \
	    case " $(PARALLEL_TIERS) " in *" $$tier "*) workers="-n 2 --dist loadfile";; *) workers="";; esac; \
	    $(BIN)/python -m pytest -q -m $$tier $$workers --durations=20 || { echo "the $$tier tier failed"; exit 1; }; \
	done
endef

# The whole suite, the gate CI runs, the engine-versus-model property test included
# (tests/test_model_vs_engine.py: 300 generated six-month histories, every line to the fen, 95 s
# measured on an idle machine; its disagreements so far: tests/model/DISAGREEMENTS.md).
# `make model-check` runs that test alone.
test: install airflow-db test-deps
	$(call run_tiers,$(TIERS))

# No month is run whole and no other program started: the answer in minutes.
test-fast: install
	$(call run_tiers,$(FAST_TIERS))

model-check: install airflow-db
	$(BIN)/python -m pytest -q tests/test_model_vs_engine.py

# Plant each wrong rule of tools/mutation.py in a copy of the tree and run the fast tests on it;
# fails if any survives. One: make mutation MUTATION_ARGS="--only price_age_out_boundary"; list: --list
mutation: install
	$(BIN)/python tools/mutation.py $(MUTATION_ARGS)

lint: install
	$(BIN)/ruff check pipelines dags tests bench tools

# one or several sizes: make bench ROWS=250000, make bench ROWS="250000 2500000"
bench: install
	$(BIN)/python bench/run.py $(foreach r,$(ROWS),--rows $(r))

lock: install
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra celery -c requirements.lock --python-version 3.11 \
	    -o requirements-celery.lock

# The monthly DAG on CeleryExecutor (Redis, PostgreSQL, two workers, all on this machine), checked
# against `doudi run` on the same inbox: deploy/celery/run.sh, README "Running on several workers".
celery-check: install
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements-celery.lock
	deploy/celery/run.sh

clean:
	rm -rf var .airflow .pytest_cache
