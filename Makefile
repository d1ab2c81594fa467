# make run   : set up .venv, build the core, start the engine server on the embedded config
# make test  : set up .venv, build the core, run the whole test suite
# make bench : the benchmarks (engine bench core + the pytest-benchmark suite)
# make fuzz  : the differential property test with many more examples
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench fuzz build clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml setup.py
	$(PY) -m pip install --quiet "setuptools>=68" wheel "Cython>=3.0.10,<3.3" "numpy>=1.26"
	$(PY) -m pip install --quiet --no-build-isolation -e ".[dev]"
	touch $(STAMP)

# Rebuild the extension whenever a .pyx/.pxd changed (.py edits need no rebuild).
build: $(STAMP)
	$(PY) setup.py build_ext --inplace --quiet 2>&1 | grep -v "^$$" || true
	$(PY) -c "import engine._core"

run: build
	$(VENV)/bin/engine serve

test: build
	$(PY) -m pytest tests

bench: build
	$(VENV)/bin/engine bench core
	$(VENV)/bin/engine bench route
	$(PY) -m pytest benchmarks -o python_files="bench_*.py" --benchmark-only -q

fuzz: build
	ENGINE_FUZZ_EXAMPLES=20000 $(PY) -m pytest tests/core/test_differential.py tests/core/test_differential_risk.py tests/core/test_differential_routing.py -q

clean:
	rm -rf build engine/*.c engine/*.so engine/*.html $(VENV)
