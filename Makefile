# The two commands a fresh clone needs (see README.md):
#   make run    install everything, then open the dashboard on the bundled model
#   make test   install everything, then run the whole test suite
# (make test-quick leaves out the slow tests: the inner loop while developing)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test test-quick bench install clean

run: $(VENV)/.installed
	$(VENV)/bin/tpw-desktop

test: $(VENV)/.installed-test
	$(PY) -m pytest

# The inner loop: everything but the slow tests (the benchmarks' smoke runs, the soak, the bundled model).
test-quick: $(VENV)/.installed-test
	$(PY) -m pytest -m "not slow"

# Every benchmark, alternating what it compares; writes docs/performance.md and .json.
# LLAMA_BENCH=path/to/llama-bench adds the comparison with llama-bench (README).
bench: $(VENV)/.installed-test
	$(PY) benchmarks/run_all.py $(if $(LLAMA_BENCH),--llama-bench $(LLAMA_BENCH))

install: $(VENV)/.installed

# scripts/install.sh leaves these stamps itself, so an install run by hand counts too.
$(VENV)/.installed: pyproject.toml packaging/constraints.txt scripts/install.sh
	scripts/install.sh

$(VENV)/.installed-test: pyproject.toml packaging/constraints.txt scripts/install.sh
	scripts/install.sh test

clean:
	rm -rf $(VENV) build *.egg-info
