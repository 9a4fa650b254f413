# The two commands a new user needs: `make run` (serve, with a demo model) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: run test lint bench accuracy mutation venv browser postgres clean reference-venv reference

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

# Debian's PostgreSQL server: the records tests start a throwaway one (initdb + pg_ctl on a loopback port).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "install Debian's postgresql (sudo apt-get install postgresql) for the records tests" >&2; exit 1; fi; }

test: venv browser postgres
	$(PY) -m pytest -q

# Type checks of the whole package (CI runs it before `make test`).
lint: venv
	$(PY) -m mypy src/anomalia

BENCH_ARGS ?= --repeats 3 --large --accuracy
# anomalia batch on Ray against anomalia predict in one process, then 1 vs 2 local nodes (~5 min on 2 cores).
BENCH_BATCH_ARGS ?= --images 500 --nodes
bench: venv postgres
	$(PY) -m anomalia.bench $(BENCH_ARGS)
	$(PY) -m anomalia.bench_records
	$(PY) -m anomalia.bench_runtimes
	$(PY) -m anomalia.bench_batch $(BENCH_BATCH_ARGS)

# Dev-only: anomalib's PatchCore as the accuracy reference, in its own environment (never
# imported by the package). torch/torchvision share pip's command line with anomalib, so pip
# keeps our local-disk releases. 2.5-6 min on 2 busy cores, 6.5 GB (torch's CUDA wheels included).
REF_VENV ?= .venv-ref
REF_STAMP := $(REF_VENV)/.installed
reference-venv: $(REF_STAMP)

$(REF_STAMP): requirements-reference.txt pyproject.toml
	test -x $(REF_VENV)/bin/python || $(PYTHON) -m venv $(REF_VENV)
	$(REF_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(REF_VENV)/bin/python -m pip install --quiet -r requirements-reference.txt torch==2.14.1 torchvision==0.29.1
	$(REF_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(REF_STAMP)

# Resumable: surfaces already in the --out file for the same suite and weights are skipped.
REF_ARGS ?=
reference: reference-venv
	@test -n "$(REF_ARGS)" || { echo 'set REF_ARGS, e.g. REF_ARGS="--suite DIR --weights resnet18.pt --out accuracy-results/reference.json"' >&2; exit 2; }
	$(REF_VENV)/bin/python tools/accuracy_reference.py $(REF_ARGS)

# The accuracy suite (docs/ACCURACY.md): tens of minutes (the reference's coreset is slow), so not
# part of `make test`; `python -m anomalia.accuracy --smoke` is the seconds-long version. It builds the
# suite, runs anomalib's PatchCore on it with the same weights file once per seed in REF_SEEDS
# (resumable, cached in docs/accuracy/reference-seedN.json; about 40 single-thread minutes per seed),
# then ours, and rewrites docs/ACCURACY.md with the reference's runs averaged per surface. The JSON
# records in docs/accuracy are committed with the page, so `python -m anomalia.accuracy --results
# docs/accuracy/results.json --reference ...` renders it again without hours of fitting.
# Options go in ACCURACY_ARGS, e.g.
# ACCURACY_ARGS='--variant "l2=patch_norm=l2" --variant "paper=patch_norm=none,aggregation=3"'
SUITE := accuracy-results/suite
SUITE_WEIGHTS := accuracy-results/weights/resnet18_random_seed0.pt
REF_SEEDS ?= 0 1 2 3 4
REF_FILE = docs/accuracy/reference-seed$(1).json
ACCURACY_ARGS ?= --seeds 0,1,2,3,4 --markdown docs/ACCURACY.md --json docs/accuracy/results.json
accuracy: venv reference-venv
	$(PY) -m anomalia.accuracy --suite $(SUITE) --build-only
	$(foreach seed,$(REF_SEEDS),$(REF_VENV)/bin/python tools/accuracy_reference.py --suite $(SUITE) \
	  --weights $(SUITE_WEIGHTS) --seed $(seed) --out $(call REF_FILE,$(seed)) &&) true
	$(PY) -m anomalia.accuracy --suite $(SUITE) $(foreach seed,$(REF_SEEDS),--reference $(call REF_FILE,$(seed))) \
	  $(ACCURACY_ARGS)
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
