# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test coverage bench lint docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[sim,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/wanclip demo

# Installs no system package unless CI=true (.ci/run): then Debian's chromium for the browser test.
# Two workers a core, at most 4 (pytest-xdist): the tests mostly wait on a simulator or an ffmpeg,
# so on CI's 2 cores 4 workers finish the suite in about 3/4 of the time 2 take (measured side by side).
WORKERS ?= $(shell $(PYTHON) -c "import os; print(min(4, 2 * (os.cpu_count() or 1)))")
test: $(STAMP)
	@sh scripts/ensure_chromium.sh
	$(BIN)/python -m pytest -q -n $(WORKERS)

# The suite under coverage.py, the wanclip subprocesses the tests start included (pyproject's
# [tool.coverage.run] patch = ["subprocess"]); not part of `make test` (it is slower).
coverage: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[sim,test,coverage]'
	rm -f .coverage .coverage.*
	$(BIN)/python -m coverage run -m pytest -q -p no:cacheprovider -n $(WORKERS)
	$(BIN)/python -m coverage combine -q
	$(BIN)/python -m coverage report --format=total | sed 's/^/total coverage: /;s/$$/ %/'
	$(BIN)/python -m coverage html -q -d out/coverage && echo "report: out/coverage/index.html"

bench: $(STAMP)
	@for s in scripts/bench_*.py; do echo "== $$s"; $(BIN)/python $$s || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts

docs: $(STAMP)
	$(BIN)/python scripts/gen_readme_reference.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .coverage .coverage.*  # never out/: the README says your films go there
