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

# Extra local-llm: llama.cpp built from source once (10-15 min on 2 cores) for a
# portable x86-64 baseline (GGML_NATIVE=OFF: AVX2, FMA, F16C), kept as a wheel in
# LLAMA_WHEELS, keyed by the pin and the build flags. Not pip's own wheel cache:
# that one outlives the machine and is keyed by the sdist alone, so it hands a
# wheel built with -march=native on one CPU (AVX-512, AMX) to another. A CI run
# on such a wheel saw the server die with SIGSEGV (-11) at its first completion.
LLAMA_PIN    := $(shell sed -n 's/.*"\(llama-cpp-python\)\[server\]\(==[0-9.]*\)".*/\1\2/p' pyproject.toml)
LLAMA_CMAKE  ?= -DGGML_NATIVE=OFF
LLAMA_WHEELS ?= $(HOME)/.cache/coldstart/wheels/$(subst ==,-,$(LLAMA_PIN))-$(shell echo '$(LLAMA_CMAKE)' | md5sum | cut -c1-8)
$(VENV)/.local-llm: $(VENV)/.installed
	@test -n "$(LLAMA_PIN)" || { echo "error: pyproject.toml: no llama-cpp-python[server]==X pin in the local-llm extra"; exit 1; }
	@ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || { \
	  echo "building $(LLAMA_PIN) with CMAKE_ARGS='$(LLAMA_CMAKE)' into $(LLAMA_WHEELS) (10-15 min, once)"; \
	  rm -rf $(LLAMA_WHEELS).tmp && \
	  CMAKE_ARGS="$(LLAMA_CMAKE)" $(BIN)/pip wheel -q --no-deps --no-cache-dir \
	    --no-binary llama-cpp-python -w $(LLAMA_WHEELS).tmp "$(LLAMA_PIN)" && \
	  mv $(LLAMA_WHEELS).tmp $(LLAMA_WHEELS); }
	$(BIN)/pip install -q --no-deps --force-reinstall $(LLAMA_WHEELS)/llama_cpp_python-*.whl
	$(BIN)/pip install -q --find-links $(LLAMA_WHEELS) --only-binary llama-cpp-python \
	  -e ".[local-llm]"
	touch $@

setup: $(VENV)/.installed

demo: setup $(if $(filter local-llm,$(LLM)),$(VENV)/.local-llm)
	$(BIN)/coldstart simulate --ds $(DS) --rows $(ROWS)
	$(if $(LLM),COLDSTART_LLM_ENDPOINT=$(LLM) )$(BIN)/coldstart run-daily --ds $(DS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Two workers, a test file at a time each (module fixtures stay per file); the
# cluster and Airflow files are collected first (tests/conftest.py) so neither
# worker ends on them. Measured times: README, "Set up and run the tests".
PYTEST_WORKERS ?= 2
test: lint $(VENV)/.local-llm
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=20

# Regenerate benchmarks/results/ (every benchmark; hours on 2 cores).
# ONLY=stage1,alignment to run some.
bench: setup
	$(BIN)/python benchmarks/regenerate.py $(if $(ONLY),--only $(ONLY))

clean:
	rm -rf warehouse runs dist build *.egg-info
