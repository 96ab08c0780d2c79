# The README's commands. `make run` sets everything up and runs Airflow standalone
# with dags/ on embedded SQLite; `make test` sets up (if needed) and runs every test;
# `make dist` builds the wheel to install elsewhere (the Dockerfile builds it the same way).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test test-fast schema dist clean

$(BIN)/iflow-airflow: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,distributed,notify]'
	touch $@

setup: $(BIN)/iflow-airflow

run: setup
	scripts/run-standalone

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not e2e and not distributed and not browser"

schema: setup
	$(BIN)/python -c 'from iflow_airflow.schema.published import write_all; print(*write_all(), sep="\n")'

# The wheel to install in an Airflow image or environment (the Dockerfile installs it too).
dist: setup
	rm -rf dist
	$(BIN)/python -m pip wheel --no-deps -w dist .
	@ls dist/*.whl

clean:
	rm -rf $(VENV) .airflow .pytest_cache dist build
