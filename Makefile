# distill — make targets. `make setup` once, then `make test` / `make demo`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup torch test lint fmt demo demo-quick clean pipeline push

setup: sandbox-tools $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(MAKE) --no-print-directory torch
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

# torch first, so nothing pulls a build we do not want: with an NVIDIA GPU (nvidia-smi works) the
# default index's CUDA build; else the CPU build from PyTorch's CPU index (TORCH_INDEX= for the
# default index), or from the default index when that one cannot be reached. Says which it got.
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
torch:
	@if nvidia-smi -L >/dev/null 2>&1 || [ -z "$(TORCH_INDEX)" ]; then \
	  $(BIN)/python -m pip install -q "torch==$(TORCH_VERSION)"; \
	elif ! $(BIN)/python -m pip install -q --retries 1 --timeout 30 --index-url "$(TORCH_INDEX)" "torch==$(TORCH_VERSION)"; then \
	  echo "make: $(TORCH_INDEX) cannot be reached; torch from the default index instead" >&2; \
	  $(BIN)/python -m pip install -q "torch==$(TORCH_VERSION)"; \
	fi
	@$(BIN)/python -c "import torch; print('make: installed torch', torch.__version__, '(CUDA ' + torch.version.cuda + ' build)' if torch.version.cuda else '(CPU build)')"

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/distill demo --output runs/demo

demo-quick: $(STAMP)
	$(BIN)/distill demo --quick --output runs/demo-quick

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache

# ---------------------------------------------------------------------------- pipeline
# generate → filter → train → eval (→ push when REPO is set), each stage's manifest.json the target:
#   make pipeline TEACHER=teachers/deepseek-r1.yaml PROMPTS=data/numina-math.yaml \
#        STUDENT=qwen2.5-math-1.5b OUT=runs/r1-math GENERATE_ARGS="--backend openai --base-url http://h:8000/v1"
#   make pipeline ... REPO=me/qwen-1.5b-r1-distill      # and push model + traces to the Hub
# A stage re-runs when its input is newer or its arguments changed. A failed or interrupted stage
# keeps its output (the stage resumes) and its manifest is aged, so the next `make pipeline` re-runs it.
TEACHER ?= teachers/deepseek-r1.yaml
PROMPTS ?= data/numina-math.yaml
STUDENT ?= qwen2.5-math-1.5b
OUT ?= runs/pipeline
NUM_SAMPLES ?= 4
GENERATE_ARGS ?=
FILTER_ARGS ?=
TRAIN_ARGS ?=
EVAL_ARGS ?= --benchmark aime24,math500
EVAL_MODEL ?= $(OUT)/student
PUSH_ARGS ?=
REPO ?=
DISTILL ?= $(if $(wildcard $(BIN)/distill),$(BIN)/distill,distill)

# keep a stage's output on failure or Ctrl-C (it resumes) and age its manifest so make re-runs it
STAGE = trap : INT TERM; $(1) || { test ! -e $@ || touch -t 197101010000 $@; exit 1; }
.PRECIOUS: $(OUT)/traces/manifest.json $(OUT)/filtered/manifest.json $(OUT)/student/manifest.json $(OUT)/eval/manifest.json

GENERATE_CMD = $(DISTILL) generate --teacher $(TEACHER) --prompts $(PROMPTS) --num-samples $(NUM_SAMPLES) --output $(OUT)/traces --no-progress $(GENERATE_ARGS)
FILTER_CMD = $(DISTILL) filter --input $(OUT)/traces --output $(OUT)/filtered $(FILTER_ARGS)
TRAIN_CMD = $(DISTILL) train --student $(STUDENT) --input $(OUT)/filtered/kept --output $(OUT)/student $(TRAIN_ARGS)
EVAL_CMD = $(DISTILL) eval --input $(EVAL_MODEL) --output $(OUT)/eval $(EVAL_ARGS)

# A stage's command line is part of its target: $(OUT)/.args/<stage> holds it and is rewritten (so
# made newer than the stage's manifest) only when it changes, so changed *_ARGS re-run that stage
# and the ones after it. Written when make reads this file, for pipeline goals only.
ARGS := $(OUT)/.args
args_stamp = $(shell mkdir -p $(ARGS))$(file >$(ARGS)/$(1).new,$(2))$(shell cmp -s $(ARGS)/$(1).new $(ARGS)/$(1) && rm -f $(ARGS)/$(1).new || mv -f $(ARGS)/$(1).new $(ARGS)/$(1))
ifneq ($(filter pipeline push $(OUT)/%,$(MAKECMDGOALS)),)
$(call args_stamp,generate,$(GENERATE_CMD))$(call args_stamp,filter,$(FILTER_CMD))$(call args_stamp,train,$(TRAIN_CMD))$(call args_stamp,eval,$(EVAL_CMD))
endif
$(ARGS)/%:
	mkdir -p $(@D) && touch $@

pipeline: $(OUT)/eval/manifest.json $(if $(REPO),push)

$(OUT)/traces/manifest.json: $(wildcard $(PROMPTS) $(TEACHER)) $(ARGS)/generate
	$(call STAGE,$(GENERATE_CMD))

$(OUT)/filtered/manifest.json: $(OUT)/traces/manifest.json $(ARGS)/filter
	$(call STAGE,$(FILTER_CMD))

$(OUT)/student/manifest.json: $(OUT)/filtered/manifest.json $(ARGS)/train
	$(call STAGE,$(TRAIN_CMD))

$(OUT)/eval/manifest.json: $(OUT)/student/manifest.json $(ARGS)/eval
	$(call STAGE,$(EVAL_CMD))

push: $(OUT)/eval/manifest.json
	@test -n "$(REPO)" || { echo "make push: set REPO=user/name" >&2; exit 2; }
	$(DISTILL) push --input $(EVAL_MODEL) --repo $(REPO) --traces $(OUT)/filtered --results $(OUT)/eval $(PUSH_ARGS)

# ---------------------------------------------------------------------------- code sandbox
# bubblewrap, the code sandbox's preferred back-end (distill/sandbox.py): installed with apt when
# run as root (CI), else a hint; without it the sandbox uses its weaker fallback (and says so).
.PHONY: sandbox-tools
sandbox-tools:
	@command -v bwrap >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q bubblewrap || { apt-get update -q && apt-get install -y -q bubblewrap; } \
	  || echo "make sandbox-tools: could not install bubblewrap; the sandbox uses its fallback" >&2; \
	else \
	  echo "make sandbox-tools: install bubblewrap (sudo apt-get install bubblewrap / dnf install bubblewrap) for the code sandbox" >&2; \
	fi
