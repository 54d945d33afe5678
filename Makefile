# debiaslab — `make demo` sets up and runs the offline demo; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first, on its own: Kaggle and Colab already have it; here the CPU build.
TORCH_SPEC ?= torch==2.13.0
# Real benchmark files for offline runs: ../shared/data when it lies beside the clone.
export DEBIASLAB_DATA_DIR ?= $(if $(wildcard ../shared/data/crows_pairs),$(abspath ../shared/data),)
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo paper report test test-fast lint format bench notebooks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml requirements.txt
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -r requirements.txt -e ".[dev]"
	touch $@

# The whole collection offline on tiny models (parallel where independent) beside a real-model
# slice (SmolLM2-135M-Instruct), then the results notebook and the report; executed notebooks,
# timings.json and the report under runs/demo/<time>/; a table of headline findings at the end.
demo: $(VENV)/.installed
	$(BIN)/debiaslab demo

# The paper: the real-model track (SmolLM2-135M-Instruct) at full size beside the tiny
# collection → results/paper/ (committed), adapters/, report/debiaslab-report.pdf (committed).
paper: $(VENV)/.installed
	$(BIN)/debiaslab paper

# Figures and a report from every result file under results/ (yours: runs/report/); the
# committed paper report/debiaslab-report.pdf is written by `make paper` only.
report: $(VENV)/.installed
	$(BIN)/debiaslab report --results results --figures figures --out runs/report

test: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest -q

# The inner loop, under 2 minutes: no tiny-model training (slow), no collection run (e2e).
test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m "not slow and not e2e" -x

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(VENV)/.installed
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

# Speed: each prints a ratio against a plain baseline measured in the same run, and writes a
# result file (results/speed/) that the report shows.
# On SmolLM2-135M-Instruct (offline): causal CrowS-Pairs scoring as % of peak matmul, StereoSet
# prefix KV reuse vs none, batched BOLD generation vs one prompt at a time; then the masked engine.
bench: $(VENV)/.installed
	$(BIN)/python benchmarks/crows_speed.py --model smollm2-135m-instruct --pairs 200 --output results/speed
	$(BIN)/python benchmarks/stereoset_speed.py --model smollm2-135m-instruct --examples 300 --output results/speed
	$(BIN)/python benchmarks/generation_speed.py --model smollm2-135m-instruct --prompts 32 --batch-size 16 --output results/speed
	$(BIN)/python benchmarks/crows_speed.py --output results/speed
	$(BIN)/python benchmarks/demo_time.py

# Notebooks are generated: edit notebooks/_templates/*.py, then render (tests check the result).
notebooks: $(VENV)/.installed
	$(BIN)/python -m debiaslab.notebooks

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
