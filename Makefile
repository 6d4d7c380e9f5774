# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench lock clean chromium

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m nba_cli.demo

test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy nba nba_cli simulators training serving experiments bench
	$(BIN)/python -m pytest -q

# The console's browser tests drive Debian's chromium (never a downloaded browser).
chromium:
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy nba nba_cli simulators training serving experiments bench

bench: $(STAMP)
	$(BIN)/python bench/simulate.py

# Re-resolve exact pins from the ranges in pyproject.toml.
lock:
	$(BIN)/uv pip compile --quiet --python-version 3.11 --extra dev --extra test pyproject.toml -o requirements.lock

clean:
	rm -rf $(VENV) build *.egg-info
