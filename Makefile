# The two commands of the README:
#   make demo   set up .venv, simulate a day of logs, run the daily pipeline locally
#               (LLM=local-llm: with a real small LLM on the CPU instead of the stand-in)
#   make test   set up .venv (with dev + local-llm extras), lint, run the whole test suite
# Both work from a fresh clone with only Python 3.11 and Java 17 installed.

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
DS     ?= $(shell date -u -d yesterday +%F 2>/dev/null || date -u -v-1d +%F)
ROWS   ?= 100000
# LLM endpoint of the demo: empty = llm.endpoint of the config (the stand-in);
# local-llm = llama.cpp + the packaged Gemma 3 270M; or any URL.
LLM    ?=
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test lint bench clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (need Python 3.11)"; exit 1; }
	@command -v java >/dev/null || { echo "error: java not found (need Java 17 for Spark)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned: an unpinned torch (or one pulled by another package)
# downloads a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[dev,eval,airflow]"
	touch $@

# Extra local-llm: builds llama.cpp from source once (10-15 min on 2 cores; pip caches it).
$(VENV)/.local-llm: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[local-llm]"
	touch $@

setup: $(VENV)/.installed

demo: setup $(if $(filter local-llm,$(LLM)),$(VENV)/.local-llm)
	$(BIN)/coldstart simulate --ds $(DS) --rows $(ROWS)
	$(if $(LLM),COLDSTART_LLM_ENDPOINT=$(LLM) )$(BIN)/coldstart run-daily --ds $(DS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint $(VENV)/.local-llm
	$(BIN)/pytest -q

# Regenerate benchmarks/results/ (every benchmark; hours on 2 cores).
# ONLY=stage1,alignment to run some.
bench: setup
	$(BIN)/python benchmarks/regenerate.py $(if $(ONLY),--only $(ONLY))

clean:
	rm -rf warehouse runs dist build *.egg-info
