# diffmig's entry points. `make demo` and `make test` set up everything they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The test suite's control database (pytest-django creates test_<name> from it).
TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/diffmig
# Tests run in TEST_WORKERS processes (pytest-xdist), a test module per process at a time, so
# that a module's scratch databases are made once; each process has its own test database.
TEST_WORKERS ?= 2
# make serve PORT=8080
PORT ?= 8000
PYTEST_PARALLEL := -n $(TEST_WORKERS) --dist loadfile

.PHONY: demo test lint format serve worker bench bench-full clean reliability audit

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

# The tests read MariaDB with both drivers: PyMySQL (the fallback) and mysqlclient, which
# builds against the MariaDB client headers (apt-get install libmariadb-dev pkg-config
# build-essential; .ci/run installs them).
$(VENV)/.installed-fast: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet -e '.[dev,fast]'
	touch $@

demo: $(VENV)/.installed
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py demo

test: $(VENV)/.installed-fast lint
	@echo "make test needs PostgreSQL (127.0.0.1:5432), MariaDB (127.0.0.1:3306) and Redis (127.0.0.1:6379); see README."
	rm -rf var/reliability
	DATABASE_URL=$(TEST_DATABASE_URL) $(VENV)/bin/pytest $(PYTEST_PARALLEL) --durations=20
	@echo "Again on the embedded default (SQLite control database): the tests marked 'embedded'."
	DATABASE_URL= $(VENV)/bin/pytest -m embedded $(PYTEST_PARALLEL)

# What the fault and hostile-input tests of the last `make test` tried: docs/reliability.md.
reliability: $(VENV)/.installed
	$(PY) -m tests.support.reliability_report

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/bandit -c pyproject.toml -r migrationsapp diffmig -q

# Known vulnerabilities in the installed dependencies; needs the package index's JSON API
# (--strict: a package it could not look up fails the audit instead of passing unseen).
audit: $(VENV)/.installed
	$(VENV)/bin/pip-audit --strict --skip-editable --progress-spinner off

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

serve: $(VENV)/.installed
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py runserver --insecure 127.0.0.1:$(PORT)

worker: $(VENV)/.installed
	$(PY) manage.py diffmig worker

bench: $(VENV)/.installed
	$(PY) bench/run.py --scale 100000 --setup --workers 1,2 --profile

bench-full: $(VENV)/.installed
	$(PY) bench/run.py --scale 1000000 --setup --workers 1,2

clean:
	rm -rf var/*.sqlite3* var/databases/demo
