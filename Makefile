# The two commands of the README. Each sets up what it needs on a fresh machine: a virtual
# environment with this project installed, and (for the tests) Debian's LibreOffice, poppler
# and a CJK font, which the template's rendering checks use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# --no-compile: pip byte-compiles every module of every package it installs (half its CPU time on a
# fresh clone); Python compiles the modules a command imports the first time it imports them.
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile
# Byte-code is written on first import instead: a machine that sets PYTHONDONTWRITEBYTECODE (CI
# images do) would otherwise recompile pandas, openpyxl and this project in every process, and the
# suite starts hundreds (xdist workers, the command line under test; `import pandas, openpyxl`
# alone is 2.2 s of CPU without byte-code, 0.6 s with it). The byte-code goes to .venv and
# __pycache__/, both ignored.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# `make run` installs the product only: an analyst's first hour does not wait for the test tools.
$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e .
	touch $(STAMP)

# `make test` installs the product with its test tools in one pip run; that covers `make run`'s too.
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e ".[test]"
	touch $(TEST_STAMP) $(STAMP)

system-deps:
	@if ! command -v soffice >/dev/null || ! command -v pdftotext >/dev/null || ! fc-list 2>/dev/null | grep -qi "wqy" \
			|| ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "installing libreoffice-calc-nogui poppler-utils fonts-wqy-microhei postgresql"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			libreoffice-calc-nogui poppler-utils fonts-wqy-microhei postgresql >/dev/null; \
	fi
	@# node and npm: tests/test_lite.py fetches the pyodide npm package and runs the xlwings Lite edition in it
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
		echo "installing nodejs npm"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			nodejs npm >/dev/null; \
	fi

run: $(STAMP)
	$(BIN)/python -m addin show
	$(BIN)/python -m addin build -o out/xiaomi_1810hk_model.xlsm --force
	@echo "next: source .venv/bin/activate (or call .venv/bin/er-model), then er-model --help; README: the first hour"

test: system-deps $(TEST_STAMP)
	$(BIN)/python -m pytest
