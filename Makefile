# rlcomposer: `make demo` sets up and runs the main job; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo_output

.PHONY: setup demo test test-slow lint prior corpus bench app clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

## the main job (until the RL loop lands): sample melodies from the shipped prior, export them, print their metrics
demo: setup
	$(BIN)/rlcomposer generate --model prior --n 8 --seed 0 --out $(DEMO_OUT) --format midi,musicxml,wav,json
	$(BIN)/rlcomposer evaluate --model prior --model random --n 1000 --seed 0
	@echo "Melodies (MIDI, MusicXML, WAV, JSON) are in $(DEMO_OUT)/"

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
	rm -rf $(DEMO_OUT) runs .pytest_cache
