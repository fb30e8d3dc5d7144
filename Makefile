# The two commands a fresh clone needs (see README.md):
#   make run    install everything, then open the dashboard on the bundled model
#   make test   install everything, then run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test bench install clean

run: $(VENV)/.installed
	$(VENV)/bin/tpw-desktop

test: $(VENV)/.installed-test
	$(PY) -m pytest

# The headless benchmark on the bundled model (no window needed).
bench: $(VENV)/.installed
	$(VENV)/bin/tpw bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml packaging/constraints.txt scripts/install.sh
	scripts/install.sh
	touch $@

$(VENV)/.installed-test: pyproject.toml packaging/constraints.txt scripts/install.sh
	scripts/install.sh test
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) build *.egg-info
