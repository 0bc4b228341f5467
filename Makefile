# Evidence Platform. `make run` starts the demo; `make test` runs the suite. See README.md.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MANAGE := $(BIN)/python manage.py
REFERENCE ?= tests/metaanalysis/cases
# options for one benchmark, e.g. `make bench-engine BENCH_ARGS="--quick --out /tmp/RESULTS.md"`
BENCH_ARGS ?=

.PHONY: run test install migrate demo lint typecheck validate bench bench-engine bench-dependent bench-e2e bench-security bench-api bench-portal screenshots check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	$(MANAGE) migrate --noinput

demo: migrate
	$(MANAGE) load_demo

run: demo
	@echo ""
	@echo "  Evidence Platform (synthetic demo consortium) on http://127.0.0.1:8000"
	@echo "  API root http://127.0.0.1:8000/api/v1/   docs http://127.0.0.1:8000/api/docs/"
	@echo "  Sign-ins (password: demo-password):"
	@echo "    steering            steering group: every result, releases, audit trail"
	@echo "    admin               administrator (also /admin/)"
	@echo "    dm-north ... dm-harbour          data manager of one centre (upload, submit, withdraw)"
	@echo "    member-north ... member-harbour  member of one centre (read only)"
	@echo "  API client token: demo0api0token0synthetic0consortium00001"
	@echo "  Ctrl-C stops the web server and the worker."
	@echo ""
	$(BIN)/honcho -f Procfile start

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy apps workers

check: lint typecheck
	$(MANAGE) check
	$(MANAGE) makemigrations --check --dry-run

validate: $(STAMP)
	$(BIN)/python -m workers.metaanalysis.validate $(REFERENCE)

bench: bench-engine bench-dependent bench-e2e bench-security bench-api bench-portal

bench-engine: $(STAMP)
	$(BIN)/python -m bench.engine_bench --out bench/RESULTS.md $(BENCH_ARGS)

bench-dependent: $(STAMP)
	$(BIN)/python -m bench.dependent_bench --out bench/DEPENDENT.md $(BENCH_ARGS)

bench-e2e: $(STAMP)
	$(BIN)/python -m bench.e2e_bench --out bench/E2E.md $(BENCH_ARGS)

bench-security: $(STAMP)
	$(BIN)/python -m bench.security_bench --out bench/SECURITY.md $(BENCH_ARGS)

screenshots: demo
	$(BIN)/python -m tests.browser.screenshots --out screenshots

bench-api: $(STAMP)
	$(BIN)/python -m bench.api_bench --out bench/API.md $(BENCH_ARGS)

bench-portal: $(STAMP)
	$(BIN)/python -m bench.portal_bench --out bench/PORTAL.md $(BENCH_ARGS)

clean:
	rm -rf var/ .pytest_cache .mypy_cache .ruff_cache
