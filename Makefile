# The two commands a new user needs: `make run` (serve, with a demo model) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: run test bench accuracy venv browser clean

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

# The accuracy suite (docs/ACCURACY.md): minutes on a laptop, so not part of `make test`;
# `python -m anomalia.accuracy --smoke` is the seconds-long version. Options go in ACCURACY_ARGS, e.g.
#   make accuracy ACCURACY_ARGS='--variant "l2=patch_norm=l2" --variant "none=patch_norm=none,aggregation=3"'
# --- reference hook (issue 17): anomalib's PatchCore on the same suite and weights file. ---
# Once `.venv-ref` and tools/accuracy_reference.py exist, the recipe runs first
#   $(PY) -m anomalia.accuracy --build-only
#   .venv-ref/bin/python tools/accuracy_reference.py --suite accuracy-results/suite \
#     --weights accuracy-results/weights/resnet18_random_seed0.pt --out accuracy-results/reference.json
# and its last line gains `--reference accuracy-results/reference.json`.
ACCURACY_ARGS ?=
accuracy: venv
	$(PY) -m anomalia.accuracy $(ACCURACY_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
