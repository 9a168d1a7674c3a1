# Every target installs what it needs: a fresh machine only needs Python 3.11+ and pip.
SHELL := /bin/bash
# uv from PATH, else the one pip installs (`python3 -m uv` works wherever pip put it).
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
STACK ?= dev
PORT ?= 8080
AWS_PORT ?= 4566
PYTEST_ARGS ?=

.PHONY: help setup dev test lint format bench clean

help:
	@echo "make dev    - run the whole service locally (ws://127.0.0.1:$(PORT)/$(STACK))"
	@echo "make test   - lint, format check and the full test suite"
	@echo "make bench  - benchmarks; writes docs/benchmarks.md"

setup:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
		|| python3 -m pip install --quiet --disable-pip-version-check uv
	@$(UV) sync --frozen

dev: setup
	@$(UV) run --frozen python -m local --stack $(STACK) --port $(PORT) --aws-port $(AWS_PORT)

lint: setup
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

format: setup
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

test: lint
	$(UV) run --frozen python -m pytest -n 2 $(PYTEST_ARGS)

bench: setup
	$(UV) run --frozen python -m bench

clean:
	rm -rf .venv build .pytest_cache .ruff_cache .hypothesis
