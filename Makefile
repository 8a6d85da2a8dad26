# Two commands do all the set-up on a fresh machine with Python >= 3.10:
#   make demo   -- create .venv, install gpumatch, run the main job on the built-in demo field
#   make test   -- create .venv, install gpumatch with test extras, run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= demo-output

.PHONY: demo test venv kernels bench clean gpu-check

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,plots]'
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/gpumatch demo --out $(DEMO_OUT)

test: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 --durations=15

kernels:
	bash tools/compile_kernels.sh

bench: $(VENV)/.installed
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) build dist *.egg-info
