# condseg-monai developer commands. `make demo` is the main job, `make test` runs lint and the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_INSTALL := $(PY) -m pip install -q -c constraints.txt
RUN_DIR ?= runs/demo

.PHONY: help venv test lint demo bench clean

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
