# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cvkd-installed
# torch / torchvision pinned to the builds these machines hold on local disk.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: venv test demo clean bench

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e '.[dev,onnx,tensorboard]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/cvkd demo

bench: $(STAMP)
	$(PY) benchmarks/bench_reader.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
