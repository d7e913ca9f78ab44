# Two commands on a fresh machine: `make demo` (set up + pre-market run on the demo market), `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-ui lint typecheck setup bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --user --name wolfkit --display-name "wolfkit (.venv)" >/dev/null
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/wolfkit premarket --params parameters/demo.yaml --date latest

lint: $(STAMP) typecheck
	$(BIN)/ruff check wolfkit tests benchmarks

typecheck: $(STAMP)
	$(BIN)/python -m mypy

test: $(STAMP) lint
	$(BIN)/python -m pytest -q -m "not ui" -n 2 --dist loadfile --durations=15  # two processes, a file in one

test-ui: $(STAMP)
	$(BIN)/python -m pytest -q -m ui

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .cache .pytest_cache
