# deployer: every workflow and test calls these targets.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DIST ?= dist
SIGN ?=

.DEFAULT_GOAL := help
.PHONY: help setup release demo verify test test-fast test-workflows lint locks bench clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## create .venv with deployer and its dev tools (pinned)

# uv (pinned in pyproject.toml's dependencies) installs the rest: seconds, not a minute
# with their bytecode: where Python may not write it (PYTHONDONTWRITEBYTECODE, common in
# CI images) every `deployer` start would compile pydantic, paramiko and click again
UV_PIN := $(shell grep -o '"uv==[^"]*"' pyproject.toml | tr -d '"')

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check $(UV_PIN)
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e '.[dev]'
	$(BIN)/python -m compileall -q deployer >/dev/null
	touch $@

release: setup ## build ONE offline artifact of the example into dist/ and verify it (SIGN=KEY: signed with it)
	@artifact=$$($(BIN)/deployer build -o $(DIST) $(if $(SIGN),--sign "$(SIGN)")) && $(BIN)/deployer verify "$$artifact" && echo "$$artifact"

demo: setup ## boot staging guest $STAGING_INDEX (100), set it up, build + deploy the example; it stays up
	STAGING_INDEX=$(STAGING_INDEX) $(BIN)/python tests/staging/demo.py

test: setup ## the whole suite: unit, host engine, build, end-to-end on the staging host
	$(BIN)/python -m pytest

test-workflows: setup ## run the GitHub workflows themselves with act against a staging guest (root; part of `make test`)
	$(BIN)/python -m pytest tests/e2e/workflows

test-fast: setup ## the tests that need no artifact build and no staging host (seconds)
	$(BIN)/python -m pytest tests/unit tests/host -q -m "not slow and not e2e"

lint: setup ## ruff (every file), ruff format --check, mypy on deployer/
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

locks: setup ## regenerate requirements/*.lock: what CI's deploy job installs, by hash (pyproject.toml's pins)
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 -o requirements/runtime.lock
	$(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
	  | $(BIN)/uv pip compile - --generate-hashes --python-version 3.11 -c requirements/runtime.lock \
	    --custom-compile-command 'make locks' -o requirements/build.lock

clean: ## remove build outputs (not caches)
	rm -rf $(DIST) build .pytest_cache

-include mk/*.mk
