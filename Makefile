# bizfed: `make demo` serves the API on a private local stack; `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SCALE  ?= 1
SEED   ?= 42
ENV    := set -a; . ./.stack/env; set +a;

.PHONY: venv demo test lint stack-up stack-down seed bench clean docs

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
	@$(BIN)/bizfed demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

test: stack-up lint
	$(BIN)/pytest

docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: stack-up
	@$(ENV) $(BIN)/python -m bench.run

clean: stack-down
	rm -rf .stack $(VENV)
