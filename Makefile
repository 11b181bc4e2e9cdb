# The two commands a fresh machine needs: `make run` (a search on the offline tuner, on the GPU
# when there is one) and `make test`. `make setup` installs; the others call it.
PY ?= python3
PROBLEM ?= softmax
ROUNDS ?= 5

.PHONY: setup run test test-gpu batch report clean

setup:
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"

run: setup
	$(PY) -m workbench search $(PROBLEM) --model tuner --rounds $(ROUNDS)

test:
	$(PY) -m pytest -q -m "not gpu" --timeout=1800 tests

test-gpu:
	$(PY) -m pytest -q -m gpu --timeout=1800 tests

batch:
	$(PY) -m workbench batch softmax layernorm matmul_fp32 --model tuner

report:
	$(PY) -m workbench report

clean:
	rm -rf outputs/ .pytest_cache
