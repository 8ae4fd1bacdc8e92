# Two commands on a fresh machine: `make demo` and `make test`. Both first make the
# virtual environment in .venv (idempotent). Versions live in constraints.txt; the MONAI Label
# and MONAI Deploy environments (their own venvs, made by their install scripts) take those pins
# and change only the ones their tools conflict with, each saying why.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
# GPU machines: make venv TORCH_INDEX=<the PyTorch wheel index of your CUDA version>
TORCH_INDEX ?=
DEMO_OUT ?= output/demo
PYTEST_ARGS ?=
LABEL_VENV := .venv-label
DEPLOY_VENV := .venv-deploy
RELEASE_DIR ?= dist

.PHONY: venv demo test test-slow bench clean label test-label deploy test-deploy test-all release

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

# The default suite leaves out the tests marked slow (each repeats a path a faster test
# covers, on other networks or through the full CLI); test-all runs them.
test: venv
	@echo "== make $@ started $$(date +%T)"
	$(PY) -m pytest -m "not slow" --durations=10 $(PYTEST_ARGS)

test-slow: venv
	@echo "== make $@ started $$(date +%T)"
	$(PY) -m pytest -m slow --durations=10 $(PYTEST_ARGS)

# MONAI Label 0.8.5 (apps/monailabel): a lean install beside the project, its own venv.
label:
	@echo "== make $@ started $$(date +%T)"
	bash apps/monailabel/install.sh $(LABEL_VENV)

test-label: label
	@echo "== make $@ started $$(date +%T)"
	$(LABEL_VENV)/bin/python -m pytest apps/monailabel/tests $(PYTEST_ARGS)

# MONAI Deploy App SDK 4.0 (apps/deploy): about 1.8 GB (holoscan, cupy, tritonclient), its own venv.
deploy:
	@echo "== make $@ started $$(date +%T)"
	bash apps/deploy/install.sh $(DEPLOY_VENV)

test-deploy: deploy
	@echo "== make $@ started $$(date +%T)"
	$(DEPLOY_VENV)/bin/python -m pytest apps/deploy/tests $(PYTEST_ARGS)

# What CI runs: the core suite, its slow tests, then the two integrations against the real tools.
test-all: test test-slow test-label test-deploy
	@echo "== make $@ finished $$(date +%T)"

# Model-zoo releases: <name>_v<version>.zip for every bundle and the model_info.json index.
release: venv
	$(PY) -m neonet_ext.zoo --out $(RELEASE_DIR) $(if $(BASE_URL),--base-url $(BASE_URL))

bench: venv
	$(PY) benchmarks/bench_tlcr.py

clean:
	rm -rf $(VENV) $(LABEL_VENV) $(DEPLOY_VENV) output .pytest_cache $(RELEASE_DIR)
