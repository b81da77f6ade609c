# bizfed: `make demo` serves the API on a private local stack; `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SCALE  ?= 1
SEED   ?= 42
PORT   ?= 8000
ENV    := set -a; . ./.stack/env; set +a;

.PHONY: venv demo test test-fast test-faults lint stack-up stack-down seed bench bench-scale bench-connectors bench-cold bench-changes clean docs fuzz replicas office

$(STAMP): pyproject.toml
	@bash deploy/local/bootstrap.sh $(PYTHON) $(VENV)
	@touch $(STAMP)

venv: $(STAMP)

stack-up: venv
	@$(BIN)/python -m deploy.local.stack up

stack-down:
	@$(PYTHON) -m deploy.local.stack down

seed: stack-up
	@$(ENV) $(BIN)/bizfed seed --scale $(SCALE) --seed $(SEED)

demo: venv
	@$(BIN)/bizfed demo --port $(PORT)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	@# pip-audit exits 0 even when it could audit nothing (PyPI's per-release JSON API or OSV unreachable,
	@# as on machines that reach only the package index), so say so; real findings still fail (docs/security.md).
	@$(BIN)/pip-audit --skip-editable --progress-spinner off >$(VENV)/pip-audit.log 2>&1; rc=$$?; \
	  skipped=$$(grep -c "could not be audited" $(VENV)/pip-audit.log); \
	  if grep -qE "Found [0-9]+ known vulnerabilit" $(VENV)/pip-audit.log; then cat $(VENV)/pip-audit.log; exit 1; \
	  elif [ $$rc -ne 0 ] && ! grep -qE "ConnectionError|NameResolution|Max retries|timed out" $(VENV)/pip-audit.log; \
	  then cat $(VENV)/pip-audit.log; exit $$rc; \
	  elif [ $$rc -ne 0 ] || [ $$skipped -gt 0 ]; then \
	  echo "pip-audit: advisory database unreachable, $$skipped packages NOT audited (see $(VENV)/pip-audit.log)"; \
	  else echo "pip-audit: no known vulnerabilities"; fi

test: venv lint
	@$(BIN)/python -m deploy.local.stack up --tools
	$(BIN)/pytest

# The federation's rules over in-memory fakes of the sources, with the unit and house tests: no server needed.
test-fast: venv
	$(BIN)/pytest tests/fast tests/unit tests/test_house.py -q

# The fault matrix at the issue's durations (each fault 30 s, flapping 60 s): about 14 minutes.
test-faults: venv
	@$(BIN)/python -m deploy.local.stack up --tools
	BIZFED_FAULT_SECONDS=30 BIZFED_FLAP_SECONDS=60 $(BIN)/pytest tests/resilience/test_fault_matrix.py -s -q

docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

fuzz: stack-up
	BIZFED_FUZZ_EXAMPLES=$${BIZFED_FUZZ_EXAMPLES:-400} $(BIN)/pytest --timeout 3600 tests/security/test_fuzz.py

bench: stack-up
	@$(ENV) $(BIN)/python -m bench.run

# Scale 100: deep pages, both cores, the cached path against its ceilings; then the mixed load sweep,
# memory over a full pagination walk and the aggregates' query plans.
bench-scale: stack-up
	@$(ENV) $(BIN)/python -m bench.scale
	@$(ENV) $(BIN)/python -m bench.mix

# Bulk reads through each connector against the bare drivers (rewrites BENCHMARKS.md's Connectors section).
bench-connectors: stack-up
	@$(ENV) $(BIN)/python -m bench.connectors

# Cold reads (cache off) against a hand-written app on the same drivers, with a py-spy profile (issue 18).
bench-cold: stack-up
	@$(ENV) $(BIN)/python -m bench.cold

# Change capture under read load: commit-to-visible lag per source and mode, hit ratio, watcher queries (issue 19).
bench-changes: stack-up
	@$(ENV) $(BIN)/python -m bench.changes
	@$(ENV) $(BIN)/python -m bench.polling_cost --scale 100

# Three replicas behind nginx on one Redis: shared cache and breaker, a SIGKILL under wrk, a SIGTERM.
replicas: stack-up
	@$(ENV) $(BIN)/python -m bench.replicas

# An office bizfed + Redis over a 150 ms link to HQ (network namespaces as root), then the link cut.
office: stack-up
	@$(ENV) $(BIN)/python -m bench.office

clean: stack-down
	rm -rf .stack $(VENV)
