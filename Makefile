# Two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# pytest workers: 2 on the 2-core CI machine; `make test JOBS=0` runs in one process.
JOBS   ?= 2

.PHONY: install demo test test-all repro-mini report check clean

install: $(STAMP)

# torchgfn 2.4.1 (the TB reference of gflownet_local_credit_2023) pins numpy < 2 in its metadata but runs with
# this project's numpy: it and its import chain are installed without dependency resolution, pinned here.
TORCHGFN := torchgfn==2.4.1 tensordict==0.15.3 pyvers==0.2.3 torch_geometric==2.8.1 \
	linear-attention-transformer==0.19.1 axial_positional_embedding==0.3.12 local-attention==1.11.2 \
	linformer==0.2.3 product_key_memory==0.3.0 CoLT5-attention==0.11.2 hyper-connections==0.4.11 \
	torch-einops-utils==0.2.0

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet "pip>=24"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps $(TORCHGFN)
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
