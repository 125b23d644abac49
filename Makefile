# `make demo` and `make test` work on a fresh clone: they create .venv when it is
# missing and install the project into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is installed first and pinned, so the resolver never swaps in another build.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
# No pip cache: the CUDA build of torch alone is about 5.5 GB in the venv, and a cached copy of every download
# on top of it once filled a CI machine's disk (stop 31: "No space left on device" while installing).
export PIP_NO_CACHE_DIR := 1

.PHONY: demo test install zoo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/distillbench run

test: $(STAMP)
	$(BIN)/python -m pytest -q

zoo: $(STAMP)
	$(BIN)/distillbench zoo build

clean:
	rm -rf $(VENV) runs
