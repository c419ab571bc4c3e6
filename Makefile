# streamfeat developer commands. `make help` lists them.
# Installs are stamp files under .local/stamps: the first run installs everything
# (apt, pip, Maven), later runs only redo what a changed file needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .local/stamps
LOGS := .local/logs
JVM_DIR := $(CURDIR)/.local/jvm
POMS := deploy/jvm/pom.xml $(wildcard deploy/jvm/*/pom.xml) flink_jobs/jvm/pom.xml
JAVA_SRC := $(shell find flink_jobs/jvm/src -name '*.java')

.DEFAULT_GOAL := help
.PHONY: help install demo up down status test unit bench faults lint fmt lock clean-stack

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(STAMPS)/system $(STAMPS)/python $(STAMPS)/jvm ## Install apt, pip and Maven parts (quick once done)

$(STAMPS)/system: deploy/local/install-system.sh
	@mkdir -p $(STAMPS) $(LOGS)
	@bash deploy/local/install-system.sh
	@touch $@

$(STAMPS)/python: pyproject.toml constraints.txt | $(STAMPS)/system
	@echo "python: installing into $(VENV) (log: $(LOGS)/pip-install.log) ..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip > $(LOGS)/pip-install.log 2>&1
	@$(BIN)/python -m pip install -c constraints.txt -e '.[dev]' >> $(LOGS)/pip-install.log 2>&1 \
	  || { tail -20 $(LOGS)/pip-install.log; echo "error: pip install failed (log: $(LOGS)/pip-install.log)"; exit 1; }
	@echo "python: done"
	@touch $@

$(STAMPS)/jvm: $(POMS) $(JAVA_SRC) | $(STAMPS)/system
	@echo "jvm: fetching jars from Maven Central and building the job's functions into $(JVM_DIR) (log: $(LOGS)/mvn-install.log) ..."
	@rm -rf $(JVM_DIR)/udf  # the job ships every jar in it: none left from an older build
	@mvn -B -f deploy/jvm/pom.xml package -Dstreamfeat.jvm.dir=$(JVM_DIR) > $(LOGS)/mvn-install.log 2>&1 \
	  || { grep -E "ERROR" $(LOGS)/mvn-install.log | head -20; echo "error: Maven failed (log: $(LOGS)/mvn-install.log)"; exit 1; }
	@echo "jvm: done"
	@touch $@

demo: install ## Run the pipeline locally: stack, topics, seed, CDC, CRM bridge, clickstream, job, API, model
	@$(BIN)/streamfeat up
	@echo "== topics (core/topics.yaml)"; $(BIN)/streamfeat topics apply
	@echo "== seed PostgreSQL + CRM exports on S3"; $(BIN)/streamfeat seed
	@echo "== CDC connector"; $(BIN)/streamfeat connectors apply
	@echo "== CRM bridge (one pass)"; $(BIN)/streamfeat bridge run --once
	@echo "== clickstream burst"; $(BIN)/streamfeat clickstream --rate 5000 --count 20000
	@echo "== feature job"; $(BIN)/streamfeat job status > /dev/null 2>&1 || $(BIN)/streamfeat job deploy
	@echo "== online features (Redis)"; $(BIN)/streamfeat features 1 2 3 17 --wait 120
	@echo "== register core/features.py in the registry"; $(BIN)/streamfeat apply
	@echo "== offline table (Iceberg)"; $(BIN)/streamfeat offline commit
	@echo "== feature retrieval through the Feature Store API"; $(BIN)/streamfeat features 3 17 --api
	@echo "== demo model: training set, MLflow, staging -> canary -> production"; $(BIN)/streamfeat model train-demo
	@echo "== a prediction through the model endpoint (KServe predictors)"; $(BIN)/streamfeat model predict purchase_propensity 3 17 --wait 60

up: install ## Start the local stack
	@$(BIN)/streamfeat up

down: ## Stop the local stack (data kept)
	@$(BIN)/streamfeat down

status: ## Show the local stack
	@$(BIN)/streamfeat status

test: install ## Run every test (starts its own stack on ports +20000, then stops it)
	@$(BIN)/pytest

unit: install ## Run the tests that need no services
	@$(BIN)/pytest tests/unit

bench: install ## Benchmarks beside same-run baselines (stack up first); table -> .local/bench
	@$(BIN)/streamfeat up > /dev/null
	@$(BIN)/streamfeat bench

faults: install ## Process faults at full size (1M clicks, 3 TaskManager kills, 20 cancels, 5 Connect kills in 100k updates); results -> .local/faults
	@STREAMFEAT_FAULT_CLICKS=1000000 STREAMFEAT_FAULT_PRODUCE_S=300 STREAMFEAT_FAULT_CHECKPOINT_MS=10000 \
	  STREAMFEAT_FAULT_KILLS=3 STREAMFEAT_FAULT_REDIS_DOWN_S=30 \
	  STREAMFEAT_FAULT_CANCELS=20 STREAMFEAT_FAULT_PG_UPDATES=100000 \
	  $(BIN)/pytest -s tests/faults \
	  tests/integration/test_feature_job.py::test_connect_killed_five_times_during_customer_updates_loses_no_version

lint: install ## ruff + mypy
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy

fmt: install ## Format and auto-fix
	@$(BIN)/ruff format .
	@$(BIN)/ruff check --fix .

lock: ## Re-resolve pyproject.toml into constraints.txt (fresh venv in .local/lock-venv)
	@rm -rf .local/lock-venv && $(PYTHON) -m venv .local/lock-venv
	@.local/lock-venv/bin/pip install -q -e '.[dev]'
	@.local/lock-venv/bin/pip freeze --exclude-editable | grep -v '^streamfeat' > constraints.txt
	@echo "constraints.txt: $$(wc -l < constraints.txt) pins"
