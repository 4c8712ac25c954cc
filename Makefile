# rlcomposer: `make demo` sets up and runs the main job; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# the lock: every version pinned (pip-compile'd from pyproject.toml with the dev and sweep extras); the install
# goes through it as a constraints file, and `make lock` refreshes it
CONSTRAINTS := requirements/constraints.txt
# `make lock LOCK_ARGS=--upgrade` moves every pin to the newest release the ranges allow
LOCK_ARGS ?=
PIP_COMPILE_FLAGS := --quiet --extra=dev --extra=sweep --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links --no-emit-trusted-host

.PHONY: setup lock demo test test-slow lint prior corpus bench app clean

setup: $(VENV)/.installed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -c $(CONSTRAINTS) -e '.[dev,sweep]'
	touch $@

## refresh the lock after a change of the ranges in pyproject.toml (keeps the pins that still fit);
## torch's local label (+cpu) is dropped: `torch==2.13.0` takes the CPU build on disk here
lock: | $(BIN)/python
	$(BIN)/python -m piptools --version >/dev/null 2>&1 || \
		$(BIN)/pip install --quiet --disable-pip-version-check \
			$(if $(wildcard $(CONSTRAINTS)),-c $(CONSTRAINTS)) pip-tools
	mkdir -p $(dir $(CONSTRAINTS))
	$(BIN)/pip-compile $(PIP_COMPILE_FLAGS) $(LOCK_ARGS) --output-file=$(CONSTRAINTS) pyproject.toml
	sed -i -E 's/^(torch==[^+[:space:]]+)\+[[:alnum:].]+/\1/' $(CONSTRAINTS)

## the main job: the whole loop on the embedded SQLite with a simulated listener (a few minutes),
## ending with the report, tuned melodies on disk and how to rate them yourself in the app
demo: setup
	$(BIN)/rlcomposer experiment run experiments/configs/quickstart.yaml --runs-dir runs
	@cat runs/quickstart/report.md

## fast test suite (a few minutes)
test: setup
	$(BIN)/python -m pytest -q

## slow tests (full corpus build, prior quality); CI runs these too
test-slow: setup
	$(BIN)/python -m pytest -q -m slow

lint: setup
	$(BIN)/ruff check rlcomposer tests experiments

corpus: setup
	$(BIN)/rlcomposer corpus build

## reproduce the shipped prior (and print its test figures beside the n-gram baseline)
prior: corpus
	$(BIN)/rlcomposer prior train --config experiments/configs/prior.yaml --out rlcomposer/data/prior --tensorboard runs/prior-tb

bench: setup
	$(BIN)/python experiments/bench_generate.py
	$(BIN)/python experiments/bench_tune.py
	$(BIN)/python experiments/bench_limits.py
	$(BIN)/python experiments/bench_tuned_sampling.py

## the rating app in the browser (database: `rlcomposer db where`, or $$RLCOMPOSER_DATABASE_URL)
app: setup
	$(BIN)/rlcomposer app

clean:
	rm -rf runs .pytest_cache
