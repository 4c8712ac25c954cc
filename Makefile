# rlcomposer: `make demo` sets up and runs the main job; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-slow lint prior corpus bench app clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

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

## the rating app in the browser (database: `rlcomposer db where`, or $$RLCOMPOSER_DATABASE_URL)
app: setup
	$(BIN)/rlcomposer app

clean:
	rm -rf runs .pytest_cache
