# Two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# pytest workers: 2 on the 2-core CI machine; `make test JOBS=0` runs in one process.
JOBS   ?= 2

.PHONY: install demo test test-all repro-mini report check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet "pip>=24"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The demo writes its runs and its report under runs/demo/ (git-ignored): the tree stays clean.
demo: $(STAMP)
	$(BIN)/repro run adabelief_2020 toy2d --scale mini --out runs/demo
	$(BIN)/repro compare adabelief_2020 toy2d --scale mini --out runs/demo --reports runs/demo/reports
	@echo "demo report: runs/demo/reports/adabelief_2020/toy2d.md (the committed one: reports/adabelief_2020/toy2d.md)"

test: $(STAMP)
	$(BIN)/python -m pytest -m "not repro and not gpu" -n $(JOBS) -q

# Everything, including the slow mini-scale reproductions with claim verdicts.
test-all: $(STAMP)
	$(BIN)/python -m pytest -q

check: $(STAMP)
	$(BIN)/repro check

report: $(STAMP)
	$(BIN)/repro report

clean:
	rm -rf runs .pytest_cache
