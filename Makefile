# Every target installs what it needs: a fresh machine only needs Python 3.11+ and pip.
SHELL := /bin/bash
# uv from PATH, else the one pip installs (`python3 -m uv` works wherever pip put it).
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
STACK ?= dev
PORT ?= 8080
AWS_PORT ?= 4566
PYTEST_ARGS ?=
# make fuzz: each property test runs FUZZ_SCALE times its own example count, freshly random.
FUZZ_SCALE ?= 25
# Extra flags for the local stack, e.g. make dev ARGS="--set maxListenersPerSession=2"
ARGS ?=

.PHONY: help setup uv-on-path dev test fuzz lint format bench screenshot clean

help:
	@echo "make dev    - run the whole service locally (ws://127.0.0.1:$(PORT)/$(STACK));"
	@echo "              STACK=, PORT=, AWS_PORT=, ARGS=\"--set KEY=VALUE ...\""
	@echo "make test   - lint, format check and the full test suite (hypothesis derandomised)"
	@echo "make fuzz   - the property tests with FUZZ_SCALE (25) times more random examples"
	@echo "make bench  - benchmarks; writes docs/benchmarks.md"
	@echo "make screenshot - docs/console.png from a local stack during a fire drill (needs Chromium)"

setup:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
		|| python3 -m pip install --quiet --disable-pip-version-check uv
	@$(MAKE) --no-print-directory uv-on-path
	@$(UV) sync --frozen

# `pulumi up` runs the program with Pulumi's uv toolchain, which looks `uv` up on PATH:
# `python3 -m uv` is enough for make, not for Pulumi. Warn (setup still works) and say how.
uv-on-path:
	@command -v uv >/dev/null 2>&1 || { \
		dir=$$(python3 -c 'import os, uv; print(os.path.dirname(uv.find_uv_bin()))' 2>/dev/null); \
		echo "WARNING: 'uv' is not on PATH; make uses 'python3 -m uv', but 'pulumi up' needs 'uv'" \
			"on PATH (the project's uv toolchain runs it)." >&2; \
		if [ -n "$$dir" ]; then \
			echo "  Fix: export PATH=\"$$dir:\$$PATH\"   (pip installed uv there)" >&2; \
		else \
			echo "  Fix: install uv (https://docs.astral.sh/uv/) and put it on PATH" >&2; \
		fi; \
	}

# The stack runs as make's child (exec: no shell in between), told make's PID. It takes the
# terminal for a process group of its own, so Ctrl-C reaches it alone (it stops and exits 0,
# and so does make: a make that gets SIGINT itself dies of it, 130), wherever stdout and
# stderr go (terminal, | tee, | jq, a file); it stops when make gets SIGTERM or SIGHUP or
# dies, or uv dies (local/common/lifeline.py); its errors name PORT= and AWS_PORT=.
dev: setup
	@export LOCAL_MAKE_PID=$$PPID; \
	exec $(UV) run --frozen python -m local --stack $(STACK) --port $(PORT) --aws-port $(AWS_PORT) $(ARGS)

lint: setup
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

format: setup
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

# Hypothesis runs the `ci` profile: derandomised, no example database, so every clone tries
# the same examples CI tried (profiles: tests/support/hypothesis_profiles.py).
test: lint
	$(UV) run --frozen python -m pytest -n 2 --hypothesis-profile=ci $(PYTEST_ARGS)

# The same property tests (pytest's `hypothesis` marker), with new random examples each run;
# failures are kept in .hypothesis/examples and replayed first next time.
fuzz: setup
	FUZZ_SCALE=$(FUZZ_SCALE) $(UV) run --frozen python -m pytest -n 2 -m hypothesis \
		--hypothesis-profile=fuzz --timeout 3600 $(PYTEST_ARGS)

bench: setup
	$(UV) run --frozen python -m bench

# The README's picture of the console: a live session and an alarm firing, taken during a drill.
screenshot: setup
	$(UV) run --frozen python -m bench.screenshot

clean:
	rm -rf .venv build .pytest_cache .ruff_cache .mypy_cache .hypothesis
