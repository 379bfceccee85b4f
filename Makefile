# condseg-monai developer commands. `make demo` is the main job, `make test` runs lint and the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_INSTALL := $(PY) -m pip install -q -c constraints.txt
RUN_DIR ?= runs/demo

.PHONY: help venv test lint demo bench clean label-test

help:
	@echo "make demo   - train Stage 1 + Stage 2 on the built-in demo data and run inference (CPU, minutes)"
	@echo "make test   - ruff + pytest (creates $(VENV) if missing)"
	@echo "make bench  - speed / memory benchmark (results go to docs/benchmarks.md by hand)"

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e ".[test]"
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q

demo: venv
	$(PY) -m condseg_monai.demo --out $(RUN_DIR)

bench: venv
	$(PY) bench/speed.py

clean:
	rm -rf runs .pytest_cache .ruff_cache

# MONAI Label 0.8.5 contract tests in their own environment (.label-venv, ~7 GB, first build downloads ~3 GB;
# not part of `make test` / CI). LABEL_BUNDLE picks the bundle folder to test.
LABEL_VENV ?= .label-venv
LABEL_BUNDLE ?= bundle
label-test:
	LABEL_VENV=$(abspath $(LABEL_VENV)) bash tests/monailabel/setup_env.sh
	CONDSEG_LABEL_BUNDLE=$(abspath $(LABEL_BUNDLE)) $(LABEL_VENV)/bin/python -m pytest -q --disable-warnings tests/monailabel
	$(LABEL_VENV)/bin/python tests/monailabel/run_server_test.py --bundle $(LABEL_BUNDLE)
