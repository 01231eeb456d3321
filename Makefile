# cpvt_mm developer commands. `make test` sets everything up on first use.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cpvt_setup_stamp

.PHONY: setup test test-fast lint format demo experiments gpu-check clean

$(STAMP): scripts/setup_env.sh setup.py $(wildcard requirements/*.txt)
	bash scripts/setup_env.sh

setup: ## create .venv and install the pinned stack + cpvt_mm (idempotent)
	bash scripts/setup_env.sh

# One pytest-xdist worker per core (tests/conftest.py gives each worker, and the tools it starts, one thread, and
# starts the longest tests first); worksteal gives each worker half the tests and lets an idle one take over the
# end of another's queue.
XDIST  := -n auto --dist worksteal

test: $(STAMP) ## the full test suite (what CI runs), on every core
	$(PY) -m pytest -q $(XDIST)

test-fast: $(STAMP) ## skip the slow end-to-end tests
	$(PY) -m pytest -q $(XDIST) -m "not slow"

# Lint needs ruff only, not torch or the OpenMMLab stack: its own small venv, pinned like the main one.
LINT := .venv-lint/bin/ruff
$(LINT): requirements/lint.txt
	python3 -m venv .venv-lint
	.venv-lint/bin/pip install --quiet -r requirements/lint.txt
	touch $(LINT)

lint: $(LINT) ## ruff check + format check (sets up nothing else)
	$(LINT) check . && $(LINT) format --check .

format: $(LINT)
	$(LINT) format . && $(LINT) check --fix .

demo: $(STAMP) ## PEG vs learned table vs no position encoding on Fashion-MNIST at unseen sizes (~10 min CPU)
	bash scripts/get_fashion_mnist.sh
	$(PY) tools/demo.py

experiments: $(STAMP) ## the paper's claims re-measured: 10 variants x 3 seeds on Fashion-MNIST (~2.5 h on 2 CPU cores; reruns resume)
	bash scripts/get_fashion_mnist.sh
	$(PY) tools/analysis_tools/experiments.py

gpu-check: ## on a bare GPU host: install from the wheel folder (no compile), check the models, train every task, benchmark
	bash scripts/gpu_check.sh

clean:
	rm -rf work_dirs .pytest_cache .ruff_cache
