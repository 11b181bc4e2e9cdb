# The two commands a fresh clone needs: `make run` (a search on the offline tuner, on the GPU when
# there is one) and `make test`. Both call `make setup`, which installs only what is missing: a
# second call costs one Python start-up.
PY ?= python3
PROBLEM ?= softmax
ROUNDS ?= 5
# The modules the dev extra brings; when one is not found (found, not imported: that is fast), the extra is installed.
DEV_MODULES = pytest pytest_timeout papermill ipykernel ipywidgets nbconvert nbformat nbclient optuna openai google.genai \
              tqdm matplotlib numpy ninja
# Where compiled candidates are cached (docs/cache.md); WORKBENCH_BUILD_CACHE moves it.
BUILD_CACHE ?= $(or $(WORKBENCH_BUILD_CACHE),$(HOME)/.cache/workbench/builds)

.PHONY: setup run test test-fast test-gpu batch report clean clean-cache

setup:
	@$(PY) -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is None)" || $(PY) -m pip install -q "torch==2.13.0"
	@$(PY) -c "import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in sys.argv[1:]))" $(DEV_MODULES) 2>/dev/null \
		|| $(PY) -m pip install -q -e ".[dev]"

run: setup
	$(PY) -m workbench search $(PROBLEM) --model tuner --rounds $(ROUNDS)

# Everything CI runs: the fast tier and the few `slow` tests (end-to-end searches, notebooks).
test: setup
	$(PY) -m pytest -q -m "not gpu" --timeout=900 --durations=15 tests

# The fast tier only, for editing: seconds per file.
test-fast: setup
	$(PY) -m pytest -q -m "not gpu and not slow" --timeout=300 tests

test-gpu: setup
	$(PY) -m pytest -q -m gpu --timeout=1800 tests

batch: setup
	$(PY) -m workbench batch softmax layernorm matmul_fp32 --model tuner

report: setup
	$(PY) -m workbench report

clean:
	rm -rf outputs/ .pytest_cache

# The build cache lives outside the repository and grows by every candidate built (GBs on a GPU machine).
clean-cache:
	@du -sh "$(BUILD_CACHE)" 2>/dev/null || echo "no build cache at $(BUILD_CACHE)"
	rm -rf "$(BUILD_CACHE)"
