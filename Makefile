# Two commands on a fresh Debian 12 machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test test-slow bench lint system-deps venv migrate asterisk asterisk-stop clean

run: venv
	scripts/run

test: venv
	scripts/test -m "not slow"

test-slow: venv
	scripts/test -m slow

bench: venv
	scripts/bench

lint: venv
	$(VENV)/bin/ruff check controller tests bench

# Debian packages the project and its tests use (installed only where missing).
system-deps:
	@scripts/system-deps

venv: $(STAMP)

$(STAMP): pyproject.toml | system-deps
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	@touch $(STAMP)

migrate: venv
	scripts/services up && . scripts/env.sh && $(VENV)/bin/cc-controller migrate

asterisk:
	scripts/local-asterisk start

asterisk-stop:
	scripts/local-asterisk stop

clean:
	rm -rf $(VENV) .local .pytest_cache .hypothesis
