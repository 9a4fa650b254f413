# The two commands a new user needs: `make run` (serve, with a demo model) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: run test bench mutation venv browser clean

venv: $(STAMP)

# Re-installs only when the pinned requirements or the package metadata change.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: venv
	$(VENV)/bin/anomalia serve --demo --host $(HOST) --port $(PORT)

# Debian's Chromium drives the browser tests (Playwright never downloads a browser here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "install Debian's chromium (sudo apt-get install chromium) for the browser tests" >&2; exit 1; fi; }

test: venv browser
	$(PY) -m pytest -q

BENCH_ARGS ?= --repeats 3 --large --accuracy
bench: venv
	$(PY) -m anomalia.bench $(BENCH_ARGS)

# Mutation testing of the rule-dense core modules (docs/TESTING.md): ~20-30 min on 2 cores, so it is
# not part of `make test` or CI. mutmut is installed here, not pinned with the test tools.
MUTMUT := mutmut==3.8.1
mutation: venv
	$(PY) -m pip install --quiet $(MUTMUT)
	rm -rf mutants
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1 $(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut results

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info mutants
