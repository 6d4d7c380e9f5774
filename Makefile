# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
# pytest-xdist workers of `make test` (the machines have 2 cores; tests/conftest.py
# keeps each file on one worker and starts the longest first)
TEST_WORKERS ?= 2

.PHONY: demo test lint typecheck bench lock clean system-packages

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

# Bytecode of the installed packages, compiled once (all cores). Where
# PYTHONDONTWRITEBYTECODE is set, as on the development machines, Python never
# writes it and compiles every module it imports again in every process:
# `import mlflow` then costs 8 s of CPU instead of 3 s, in each `nba` command the
# tests start. The project's own sources are compiled at each `make test`
# (only the changed files are). The packages' own test folders are left out
# (a fifth of the source; nothing imports them).
BYTECODE := $(VENV)/.bytecode
$(BYTECODE): $(STAMP)
	$(BIN)/python -m compileall -q -j 0 -x '/tests/' $(VENV)/lib
	touch $(BYTECODE)

demo: $(STAMP)
	$(BIN)/python -m nba_cli.demo

test: $(STAMP) $(BYTECODE) system-packages
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy nba nba_cli simulators training serving experiments bench
	$(BIN)/python -m compileall -q -j 0 nba nba_cli simulators training serving experiments bench tests
	$(BIN)/python -m pytest -q --durations=15 -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy nba nba_cli simulators training serving experiments bench

bench: $(STAMP)
	$(BIN)/python bench/simulate.py

# Debian packages the tests use, installed only when missing (one apt-get call):
# wrk (the load generator of bench/serve.py, whose test runs it), postgresql
# (initdb/postgres for the tests that start a real server, tests/servers/pg_server.py)
# and chromium (the console's browser tests; never a downloaded browser), and a Java
# runtime (default-jre-headless) when `java` is missing: the Spark engine's tests.
# Without apt-get it only warns; those tests then skip, or fail under CI=true.
system-packages:
	@missing=""; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
	  || missing="$$missing postgresql"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	command -v java >/dev/null 2>&1 || missing="$$missing default-jre-headless"; \
	if [ -z "$$missing" ]; then \
	  echo "system packages: present"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else \
	  echo "system packages missing:$$missing (no apt-get); install them by hand" >&2; \
	fi

# Re-resolve exact pins from the ranges in pyproject.toml.
lock:
	$(BIN)/uv pip compile --quiet --python-version 3.11 --extra dev --extra test pyproject.toml -o requirements.lock

clean:
	rm -rf $(VENV) build *.egg-info
