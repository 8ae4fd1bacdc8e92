# Two commands on a fresh machine: `make demo` and `make test`. Both first make the
# virtual environment in .venv (idempotent). Versions live in constraints.txt only.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
# GPU machines: make venv TORCH_INDEX=<the PyTorch wheel index of your CUDA version>
TORCH_INDEX ?=
DEMO_OUT ?= output/demo
PYTEST_ARGS ?=

.PHONY: venv demo test bench clean

venv: $(STAMP)

# torch goes first and alone, pinned by constraints.txt: an unpinned torch resolved
# with the rest would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) install -q -c constraints.txt -e ".[test]"
	@touch $(STAMP)

demo: venv
	$(PY) -m neonet_ext.demo --out $(DEMO_OUT)

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

bench: venv
	$(PY) benchmarks/bench_tlcr.py

clean:
	rm -rf $(VENV) output .pytest_cache
