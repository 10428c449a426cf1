# Two commands on a fresh machine:  `make run` (the demo DAG)  and  `make test`.
# Both create .venv and install the pinned dependencies first if needed.

PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install system-deps run test test-fast ui server dag clean

# Debian packages the tests start for real (single-node SLURM, the team MLflow's
# PostgreSQL, the browser check of the MLflow UI). Installed only when one is missing;
# needs root or sudo (CI runs as root). Nothing else is configured by hand: tests/test_slurm.py
# makes its own munge key, slurm.conf and state in a temporary folder, runs munged, slurmctld
# and slurmd as root, links /run/slurm/conf while they run (where none exists) and stops them.
SYSTEM_PACKAGES := slurm-wlm slurm-client munge postgresql chromium chromium-driver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install -e .
	$(VENV)/bin/python -m pip check
	touch $(STAMP)

install: $(STAMP)

system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

## run the whole demo DAG on FaceSynth, then print the results table
run: $(STAMP)
	snakemake --cores all
	fer summary

## the test suite (.ci/run calls exactly this): one pytest worker per core, a test
## file per worker at a time, in collection order: the two DAG integration tests (separate
## files, collected first by tests/conftest.py) start at once, the short files fill in
test: $(STAMP) system-deps
	python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder --durations=15

## the suite without the DAG integration tests (snakemake/dvc end to end): minutes less
test-fast: $(STAMP)
	python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder --durations=15 -m "not integration"

## browse the MLflow runs at http://127.0.0.1:5000
ui: $(STAMP)
	@echo "runs and headline metrics: http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning&viewStateShareKey=headline"
	@echo "(the experiment's plain address opens MLflow's GenAI pages until 'Model training' is picked at the top left)"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

## the team's MLflow: PostgreSQL + `mlflow server` on 127.0.0.1 (params tracking.server);
## foreground, Ctrl-C (or `fer server --stop` elsewhere) stops both. Needs Debian's postgresql.
server: $(STAMP) system-deps
	fer server

## picture of the DAG (needs graphviz's `dot`)
dag: $(STAMP)
	snakemake --rulegraph | dot -Tpng > dag.png

## remove everything the pipeline generated (keeps .venv)
clean:
	rm -rf data models reports logs .snakemake .fer mlflow.db mlflow.db.lock mlartifacts dvc_plots
