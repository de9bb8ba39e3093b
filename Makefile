# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/wanclip demo

test: $(STAMP)
	@sh scripts/ensure_chromium.sh
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	@for s in scripts/bench_*.py; do echo "== $$s"; $(BIN)/python $$s || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts

docs: $(STAMP)
	$(BIN)/python scripts/gen_readme_reference.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache  # never out/: the README says your films go there
