# Lingxi — the nightly pipeline and the two README commands (make demo, make test).
# Variables: SCALE (test ≈ 20k, demo ≈ 100k, full = 1,108,828, or a number) and SEED.
# FIGURES=docs/figures.json makes evaluate, cold-start, bench and uci record their figures there;
# every measured figure: make bench cold-start uci figures SCALE=full SEED=11 FIGURES=docs/figures.json

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3.11
VENV        := .venv
PY          := $(VENV)/bin/python
SCALE       ?= demo
SEED        ?= 7
HOST        ?= 127.0.0.1
PORT        ?= 8000
WORKERS     ?= 2
THREADS     ?= 1
EVAL_SEED   ?= $(shell echo $$(( $(SEED) + 1000 )))
FIGURES     ?=
SERVING_REPEATS ?= 3
UCI_DATA    ?= tests/data/uci-bank-marketing/bank-additional-full.csv.gz
RECORD      := $(if $(FIGURES),--figures $(FIGURES))
export LINGXI_DATA_DIR    ?= $(CURDIR)/data
export LINGXI_REPORTS_DIR ?= $(CURDIR)/reports
export DBT_PROFILES_DIR   := $(CURDIR)

INSTALLED := $(VENV)/.installed

# "[3/8] features: ..." on stderr when a target runs as a step of the demo or the nightly job (they set
# STEPS for their prerequisites); a target run on its own prints no counter.
STEPS :=
comma := ,
# the JSON summaries the steps print on stdout (the demo keeps them in a file: SUMMARY = >> FILE)
SUMMARY :=
step_of = @i=0; n=0; for s in $(STEPS); do n=$$((n+1)); if [ "$$s" = "$(1)" ]; then i=$$n; fi; done; \
	if [ $$i -gt 0 ]; then printf '[%d/%d] %s: %s\n' $$i $$n "$(1)" "$(2)" >&2; fi
step = $(call step_of,$@,$(1))

.PHONY: help install java data warehouse warehouse-spark relations features train rerank score publish strategies evaluate report nightly pipeline demo-build eval-bank replay cold-start serve serve-prod nginx demo services test messages report-monthly bench bench-demo uci figures attack backup restore challenger promote rollback impact monitor monitor-apply clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# A .venv that is a symbolic link belongs to another checkout (a git worktree sharing it): installing
# would re-point that checkout's editable install here, so it is left alone.
$(INSTALLED): requirements.lock pyproject.toml
	$(call step_of,install,the pinned dependencies into $(VENV) (about two minutes on a fresh machine))
	@if [ -L $(VENV) ]; then echo "$(VENV) is a link to a shared virtualenv: not reinstalling" >&2; else \
		test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV); \
		$(PY) -m pip install --quiet --upgrade "pip>=24"; \
		$(PY) -m pip install --quiet -r requirements.lock; \
		$(PY) -m pip install --quiet --no-deps -e .; \
	fi
	@touch $@

install: $(INSTALLED)  ## create .venv and install the pinned dependencies

data: $(INSTALLED)  ## generate the synthetic bank's raw tables (reused when SCALE and SEED match)
	$(call step,the synthetic bank's raw tables ($(SCALE) scale; reused when scale and seed match))
	$(PY) -m ml.datagen --scale $(SCALE) --seed $(SEED) --out $(LINGXI_DATA_DIR)/raw --oracle-out $(LINGXI_DATA_DIR)/oracle --reuse $(SUMMARY)

warehouse: $(INSTALLED)  ## dbt build: staging, intermediate, marts, tests; marts exported as Parquet
	$(call step,dbt build of the warehouse and its tests$(comma) marts exported as Parquet)
	$(PY) -m serving.export $(SUMMARY)
	$(PY) -m ml.core.dbt_progress build

# Spark (dbt-spark's local session) needs Java 17+; scripts/services.sh installs it from Debian where it is missing.
java:  ## Java 17+ for the Spark build (apt-get, as root, where java is missing)
	@bash scripts/services.sh java

warehouse-spark: $(INSTALLED) java  ## the same dbt build on a local Apache Spark; marts in data/spark/marts (docs/spark.md)
	$(VENV)/bin/dbt build --target spark --target-path target/spark --log-path logs/spark

relations: $(INSTALLED)  ## product relations (substitute / complement) from current holdings: marts/product_relations.parquet
	$(call step,substitutes and complements from current holdings)
	$(PY) -m ml.relations --holdings $(LINGXI_DATA_DIR)/marts/holdings_current.parquet --time-col held_since \
		--out $(LINGXI_DATA_DIR)/marts/product_relations.parquet

features: $(INSTALLED)  ## feast apply + materialise the online store
	$(call step,feature vectors$(comma) feast apply$(comma) materialise the online store)
	$(PY) -m ml.features $(SUMMARY)

TRAIN_ARGS ?=
train: $(INSTALLED)  ## train the propensity models (versioned under data/models)
	$(call step,the propensity model (LightGBM; a new version under data/models))
	$(PY) -m ml.training.train $(TRAIN_ARGS)

score: $(INSTALLED)  ## nightly scoring: stage one for every customer, match-score reference, suitability audit
	$(call step,stage one for every customer$(comma) the match-score reference$(comma) the suitability audit)
	$(PY) -m ml.recommendation.batch $(SUMMARY)

publish: $(INSTALLED)  ## publish snapshot, model, table, relations and features as one version; the API switches to it
	$(call step,snapshot$(comma) model$(comma) table and features as one version$(comma) the API switches to it)
	$(PY) -m ml.engine.publish $(SUMMARY)

strategies: $(INSTALLED)  ## the imbalance-strategy review of the current model (not nightly: refits ten candidates)
	$(PY) -m ml.imbalance.strategy_review

evaluate: $(INSTALLED)  ## evaluate on the held-out cut-off; writes reports/
	$(PY) -m ml.evaluation.evaluate $(RECORD)

nightly: warehouse relations features train score publish  ## the nightly job on the bank's extract, in order
nightly: STEPS := warehouse relations features train score publish

pipeline: data nightly report  ## generate the bank, the nightly job, the strategy review, the evaluation

report: strategies evaluate  ## the strategy review and the held-out evaluation of the current model (reports/)

# Until a bank has logged answers, stage two's re-ranker learns from simulated sessions of the development
# bank (a sample of RERANK_CUSTOMERS per cut-off; empty: everyone), as the replay's does.
RERANK_CUSTOMERS ?= $(if $(filter full,$(SCALE)),100000,)
rerank: $(INSTALLED)  ## stage two's learned re-ranker for the current model, from simulated feedback sessions
	$(call step,stage two's re-ranker from simulated feedback sessions)
	$(PY) -m ml.evaluation.simulated_logs $(if $(RERANK_CUSTOMERS),--limit $(RERANK_CUSTOMERS)) $(SUMMARY)
	$(PY) -m ml.recommendation.rerank_training $(SUMMARY)

EVAL_DIR := $(LINGXI_DATA_DIR)/eval_seed_$(EVAL_SEED)

eval-bank: $(INSTALLED)  ## a bank from an unseen seed (EVAL_SEED) at the same scale, for replay and cold start
	LINGXI_DATA_DIR=$(EVAL_DIR) $(PY) -m ml.datagen --scale $(SCALE) --seed $(EVAL_SEED) \
		--out $(EVAL_DIR)/raw --oracle-out $(EVAL_DIR)/oracle --reuse
	LINGXI_DATA_DIR=$(EVAL_DIR) $(VENV)/bin/dbt build --quiet --target-path $(EVAL_DIR)/dbt_target --log-path $(EVAL_DIR)/dbt_logs
	LINGXI_DATA_DIR=$(EVAL_DIR) $(PY) -m ml.features

# At full scale the re-ranker learns from the sessions of a sample of development customers and
# the replay runs on a fixed random sample of held-out sessions (both seeded); elsewhere, everyone.
LOG_CUSTOMERS   ?= $(if $(filter full,$(SCALE)),100000,)
REPLAY_SESSIONS ?= $(if $(filter full,$(SCALE)),100000,)
INTEREST_MODELS := category additive

replay: eval-bank  ## two-stage replay on the unseen seed (writes two_stage into reports/metrics.json)
	for model in $(INTEREST_MODELS); do \
		$(PY) -m ml.evaluation.simulated_logs --interest-model $$model $(if $(LOG_CUSTOMERS),--limit $(LOG_CUSTOMERS)) && \
		$(PY) -m ml.recommendation.rerank_training --interest-model $$model || exit 1; \
	done
	$(PY) -m ml.evaluation.replay --eval-data-dir $(EVAL_DIR) --also-k 3 --also-interest-model $(wordlist 2,9,$(INTEREST_MODELS)) \
		$(if $(REPLAY_SESSIONS),--sessions $(REPLAY_SESSIONS))

cold-start: eval-bank  ## hold a product out of training, rank its real adopters (writes cold_start)
	$(PY) -m ml.evaluation.cold_start --product PRO_CAR --eval-data-dir $(EVAL_DIR) $(RECORD)

serve: $(INSTALLED)  ## start the API under gunicorn on $(HOST):$(PORT) (development: no proxy)
	WEB_CONCURRENCY=$(WORKERS) $(VENV)/bin/gunicorn -c serving/gunicorn.conf.py --workers $(WORKERS) --threads $(THREADS) --bind $(HOST):$(PORT) \
		"serving:create_app()"

UPSTREAM_PORT ?= $(shell echo $$(( $(PORT) + 1 )))

serve-prod: $(INSTALLED) nginx  ## the API behind nginx on $(HOST):$(PORT) (buffers slow clients), gunicorn on 127.0.0.1:$(UPSTREAM_PORT)
	$(PY) -m serving.proxy --listen $(HOST):$(PORT) --upstream 127.0.0.1:$(UPSTREAM_PORT) --workers $(WORKERS) --threads $(THREADS)

nginx:  ## install nginx from Debian when it is missing (as root): the proxy of serve-prod and its tests
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx; \
		else echo "nginx is missing: run 'make nginx' as root (or apt-get install nginx)" >&2; fi; }

# The demo: install, the bank, the nightly job and stage two's re-ranker, then the API. What it built is
# reused while its inputs (the dependencies, the code and the dbt project, SCALE and SEED) are unchanged:
# a second `make demo` starts the API in seconds.
DEMO_STEPS  := install data warehouse relations features train rerank score publish
DEMO_STAMP  := $(LINGXI_DATA_DIR)/demo-$(SCALE)-seed$(SEED).built
# the demo's model learns from a smaller sample of customers without an adoption than the nightly's
DEMO_TRAIN_ARGS ?= --min-non-adopters 20000
# ... and its re-ranker from the simulated sessions of this many customers per cut-off
DEMO_RERANK_CUSTOMERS ?= 20000
DEMO_INPUTS := $(wildcard $(shell git ls-files ml models macros seeds feature_repo dbt_project.yml profiles.yml \
	packages.yml 2>/dev/null || find ml models macros seeds feature_repo -type f))

$(DEMO_STAMP): STEPS := $(DEMO_STEPS)
$(DEMO_STAMP): $(INSTALLED) $(DEMO_INPUTS)
	@mkdir -p $(LINGXI_DATA_DIR) && rm -f $(LINGXI_DATA_DIR)/demo-*.built
	@$(MAKE) --no-print-directory demo-build
	@touch $@

demo-build: STEPS := $(DEMO_STEPS)
demo-build: TRAIN_ARGS := $(DEMO_TRAIN_ARGS)
demo-build: RERANK_CUSTOMERS := $(DEMO_RERANK_CUSTOMERS)
demo-build: SUMMARY := >> $(LINGXI_DATA_DIR)/demo-steps.log
demo-build: data warehouse relations features train rerank score publish

demo: $(DEMO_STAMP)  ## install, build a demo-scale bank and its models (reused when current), start the API and console
	@echo "The demo bank and its models are in $(LINGXI_DATA_DIR) (rebuilt when the code$(comma) SCALE or SEED change)." >&2
	@$(PY) -m benchmarks.examples --host $(HOST) --port $(PORT)
	@LINGXI_AS_OF=$${LINGXI_AS_OF:-data} $(MAKE) --no-print-directory serve  # the demo's answers count from its data's date

services:  ## install the Debian packages the tests run for real (redis-server, postgresql, wrk, promtool, chromium, Java 17)
	@bash scripts/services.sh test

# Two pytest-xdist workers, one per core; a module's tests stay on one worker (its module fixtures
# are built once), the session's test bank is built once for both and the longest modules start
# first (tests/conftest.py).
TEST_WORKERS ?= 2

test: $(INSTALLED) services nginx  ## the import contracts, then the full test suite over $(TEST_WORKERS) workers (builds its own test-scale data in a temp dir)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

MESSAGE_KEYWORDS = -k _l -k translate -k ApiError:3 -k invalid:3 -k _unavailable:2 -k reason:2 -k explain_reason:2 -k _warning:3
messages: $(INSTALLED)  ## re-extract the API's and the console's strings into the catalogues (then translate the new ones)
	$(VENV)/bin/pybabel extract -F serving/babel.cfg $(MESSAGE_KEYWORDS) --no-location --sort-output -o $(LINGXI_DATA_DIR)/messages.pot .
	$(VENV)/bin/pybabel update -i $(LINGXI_DATA_DIR)/messages.pot -d serving/translations --ignore-obsolete --width 120

MONTH ?= $(shell date -d "$$(date +%Y-%m-01) -1 month" +%Y-%m)
report-monthly: $(INSTALLED)  ## the monthly effect report of MONTH=YYYY-MM from the marts: reports/monthly/effect-MONTH.*.pdf
	@bash scripts/services.sh report
	$(PY) -m serving.monthly_report --month $(MONTH)

bench: $(INSTALLED)  ## benchmarks: writes reports/*.json
	@bash scripts/services.sh bench
	$(PY) -m benchmarks.bench --scale $(SCALE) --seed $(SEED) --workers $(WORKERS) --threads $(THREADS) \
		--serving-repeats $(SERVING_REPEATS) $(RECORD)

uci: $(INSTALLED)  ## the strategy table on the real UCI Bank Marketing calls (UCI_DATA): reports/uci/
	$(PY) -m ml.imbalance.fit_table --data $(UCI_DATA) --target y --drop duration --positive-rate 0.02 \
		--seed 7 --report $(LINGXI_REPORTS_DIR)/uci
	$(if $(FIGURES),$(PY) -m ml.evaluation.figures --figures $(FIGURES) --record-uci $(LINGXI_REPORTS_DIR)/uci)

figures: $(INSTALLED)  ## render README's "Measured figures" and docs/figures.md from docs/figures.json
	$(PY) -m ml.evaluation.figures

bench-demo: $(INSTALLED)  ## time `make demo` from a clean data dir and again (INSTALL=1: and a fresh install); README states it
	$(PY) -m benchmarks.demo_timing --scale $(SCALE) --seed $(SEED) $(if $(INSTALL),--install)
	$(PY) -m benchmarks.demo_timing --record docs/demo_timing.json

KIND ?= auto
backup: $(INSTALLED)  ## back up the feedback store (KIND=auto: weekly full, else incremental; run daily)
	$(PY) -m serving.backup backup --kind $(KIND)

restore: $(INSTALLED)  ## restore the last full backup and its incrementals into TO=<store URL> (AT=<backup name>)
	@test -n "$(TO)" || { echo "usage: make restore TO=sqlite:///path/feedback.db [AT=<backup name>] [FORCE=1]" >&2; exit 2; }
	$(PY) -m serving.backup restore --to "$(TO)" $(if $(AT),--at $(AT)) $(if $(FORCE),--force)

# Model operations: a challenger beside the current model, the arms' impact, promotion and rollback.
# Each change of the registry is re-scored and published, so serving switches at once.
challenger: $(INSTALLED)  ## register VERSION=<model version> as challenger (CLEAR=1 removes it), re-score and publish
	$(PY) -m ml.training.registry challenger $(if $(CLEAR),--clear,$(VERSION))
	$(MAKE) --no-print-directory score publish

impact: $(INSTALLED)  ## champion vs challenger vs control on the logged answers: reports/impact.json (promote yes/no)
	$(PY) -m ml.operations.impact

promote: $(INSTALLED)  ## make the challenger (or VERSION=...) the current model, re-score and publish
	$(PY) -m ml.training.registry promote $(VERSION)
	$(MAKE) --no-print-directory score publish

rollback: $(INSTALLED)  ## make the previously current model current again, re-score and publish
	$(PY) -m ml.training.registry rollback
	$(MAKE) --no-print-directory score publish

monitor: $(INSTALLED)  ## monthly conversion per product from the marts; alerts with diagnosis: reports/monitor.json
	$(PY) -m ml.operations.monitor check

monitor-apply: $(INSTALLED)  ## apply the monitor's proposed rollback (PRODUCT=... to choose the alert), re-score and publish
	$(PY) -m ml.operations.monitor apply $(if $(PRODUCT),--product $(PRODUCT))
	$(MAKE) --no-print-directory score publish

attack: $(INSTALLED) nginx  ## a scripted attack on the real app behind nginx and gunicorn (loopback, bounded; builds the data if missing): reports/security.json
	@$(PY) -m benchmarks.attack --check || $(MAKE) --no-print-directory data nightly
	$(PY) -m benchmarks.attack --workers $(WORKERS)

clean:  ## remove generated data and reports (keeps .venv)
	rm -rf data reports target logs
