# `make demo` and `make test` are all a fresh clone needs: each creates .venv if it
# is missing and installs the project into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck imports pytest bench bench-pg bench-pg-slowflush soak clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed; set PYTHON=python3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# The sample ledger on the embedded file store; run it again to continue from its data.
DEMO_URL ?= file:./var/ledger

demo: $(STAMP)
	$(PY) -m example_ledger $(DEMO_URL)

test: lint typecheck imports pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict framework

imports: $(STAMP)
	$(VENV)/bin/lint-imports

pytest: $(STAMP)
	$(PY) -m pytest

# The embedded and in-memory figures; `python -m benchmarks --list` shows the rest
# (PostgreSQL, and the peer, which needs `pip install -e '.[peers]'`).
BENCHES ?= save_1 save_100 load_20 replay projection_catch_up_sqlite

bench: $(STAMP)
	$(PY) -m benchmarks $(BENCHES)

# The PostgreSQL speed targets, as ratios: the separate benchmarks (interleaved),
# then the writers paired block by block, with the peer installed.
# About 7 minutes; the JSON lines are kept in $(BENCH_PG_OUT)/.
BENCH_PG_OUT ?= var/bench-pg

bench-pg: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,peers]'
	mkdir -p $(BENCH_PG_OUT)
	$(PY) -m benchmarks pg_raw_insert pg_raw_insert_4 pg_raw_executemany_100 \
		pg_save_1 pg_save_1_4procs pg_command pg_save_100 pg_replay \
		--runs 7 --interleave > $(BENCH_PG_OUT)/round.jsonl
	$(PY) -m benchmarks pg_writers_paired --runs 9 > $(BENCH_PG_OUT)/paired.jsonl
	$(PY) -m benchmarks.ratios $(BENCH_PG_OUT)/round.jsonl $(BENCH_PG_OUT)/paired.jsonl

# The same against a second server whose flushes take SLOWFLUSH_US longer, like a
# slower disk's (benchmarks/slowflush/). It listens on
# 127.0.0.1:$(SLOWFLUSH_PORT), keeps its data in var/slowflush/ and is stopped
# afterwards; the server on 5432 is not touched. About 8 minutes; the lines go to
# var/bench-pg-slowflush/.
SLOWFLUSH_US ?= 120
SLOWFLUSH_PORT ?= 5433

bench-pg-slowflush: $(STAMP)
	SLOWFLUSH_US=$(SLOWFLUSH_US) SLOWFLUSH_PORT=$(SLOWFLUSH_PORT) \
		benchmarks/slowflush/server.sh start
	FRAMEWORK_DATABASE_URL=postgresql://postgres@127.0.0.1:$(SLOWFLUSH_PORT)/test \
		$(MAKE) bench-pg BENCH_PG_OUT=var/bench-pg-slowflush; \
		status=$$?; benchmarks/slowflush/server.sh stop; exit $$status

# Long crash and soak loops, kept out of `make test`.
soak: $(STAMP)
	$(PY) -m pytest -m slow -p no:cacheprovider

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .hypothesis
