# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Kafka and PostgreSQL are started locally unless KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL are set.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# make bench QUICK=1: the quick suite (small counts, under 2 minutes)
QUICK ?=

.PHONY: help venv lock native chromium promtool helm up down kafka-up kafka-down db-up db-down demo test test-unit faults lint bench bench-scripts clean

help:
	@echo "make demo   - set up everything and run the end-to-end demo"
	@echo "make test   - set up everything and run the whole test suite"
	@echo "make faults - the fault suite's full run (docs/reliability.md); SHORT=1: the short one; ONLY=worker-kill,sink-kill,..."
	@echo "make lint   - ruff + mypy --strict"
	@echo "make bench  - every figure of issue 10 in one run: table + bench/results.json (QUICK=1: small counts)"
	@echo "make bench-scripts - the individual benchmark scripts"
	@echo "make up / down, kafka-up / kafka-down, db-up / db-down"

venv: $(STAMP)

# constraints.txt pins the versions CI tested (make lock writes it from the virtualenv).
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

lock: venv
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	$(BIN)/pip freeze --exclude-editable > constraints.txt

# The compiled core (streams/native.py): rebuilt whenever one of its sources changed.
native: venv
	@mkdir -p .local
	@.ci/cc.sh $(BIN)/python
	@$(BIN)/python -m streams.native ensure > .local/native-build.log 2>&1 || { tail -30 .local/native-build.log; exit 1; }

# Headless Chromium for the report page's test, from Debian's packages when missing.
chromium:
	@.ci/chromium.sh >/dev/null

# promtool for the alert rules' tests (tests/deploy), built from the Go module proxy into the cache.
promtool:
	@.ci/promtool.sh >/dev/null

# helm for the chart's tests (tests/deploy/test_helm_chart.py), built from the Go module proxy into the cache.
helm:
	@.ci/helm.sh >/dev/null

kafka-up: venv
	.ci/kafka.sh up

kafka-down:
	.ci/kafka.sh down

db-up:
	.ci/postgres.sh up

db-down:
	.ci/postgres.sh down

up: kafka-up db-up

down: kafka-down db-down

demo: up native
	$(BIN)/recon demo

test: up native chromium promtool helm
	$(BIN)/pytest $(PYTEST_ARGS)

# The fault suite (tests/faults): kills, outages and rebalances under load, against the ground
# truth. make test runs each scenario's short form; this runs the full one (about an hour).
SHORT ?=
ONLY ?=
faults: up native
	$(BIN)/python -m tests.faults $(if $(SHORT),,--full) $(if $(ONLY),--only $(ONLY)) --markdown .local/faults/table.md

test-unit: native
	$(BIN)/pytest -m 'not integration' $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check streams connectors tests bench
	$(BIN)/ruff format --check streams connectors tests bench
	$(BIN)/mypy
	$(BIN)/mypy bench

bench: up native
	$(BIN)/python bench/suite.py $(if $(QUICK),--quick) --out bench/results.json

bench-scripts: up native
	$(BIN)/python bench/passthrough.py --count 100000
	$(BIN)/python bench/passthrough.py --count 100000 --parse
	$(BIN)/python bench/engine_bench.py --events 200000 --groups 20000
	$(BIN)/python bench/pipeline_bench.py --count 50000
	$(BIN)/python bench/worker_bench.py --count 100000
	$(BIN)/python bench/peers/run_peer.py --count 100000
	$(BIN)/python bench/latency_bench.py --lateness 1000 5000
	$(BIN)/python bench/sink_bench.py
	$(BIN)/python bench/state_bench.py --groups 1000000

clean: down
	rm -rf .local $(VENV) *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find streams -name '*.so' -delete
