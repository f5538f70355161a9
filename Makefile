# distill — make targets. `make setup` once, then `make test` / `make demo`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test lint fmt demo demo-quick clean pipeline push

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU wheel of torch first (CPU build), so nothing pulls a multi-GB CUDA build
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

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
# A stage re-runs when its input is newer. A failed or interrupted stage keeps its output (the
# stage resumes) and its manifest is aged, so the next `make pipeline` re-runs it.
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

pipeline: $(OUT)/eval/manifest.json $(if $(REPO),push)

$(OUT)/traces/manifest.json: $(wildcard $(PROMPTS) $(TEACHER))
	$(call STAGE,$(DISTILL) generate --teacher $(TEACHER) --prompts $(PROMPTS) --num-samples $(NUM_SAMPLES) --output $(OUT)/traces --no-progress $(GENERATE_ARGS))

$(OUT)/filtered/manifest.json: $(OUT)/traces/manifest.json
	$(call STAGE,$(DISTILL) filter $(OUT)/traces --output $(OUT)/filtered $(FILTER_ARGS))

$(OUT)/student/manifest.json: $(OUT)/filtered/manifest.json
	$(call STAGE,$(DISTILL) train --student $(STUDENT) --data $(OUT)/filtered/kept --output $(OUT)/student $(TRAIN_ARGS))

$(OUT)/eval/manifest.json: $(OUT)/student/manifest.json
	$(call STAGE,$(DISTILL) eval --model $(EVAL_MODEL) --output $(OUT)/eval $(EVAL_ARGS))

push: $(OUT)/eval/manifest.json
	@test -n "$(REPO)" || { echo "make push: set REPO=user/name" >&2; exit 2; }
	$(DISTILL) push --model $(EVAL_MODEL) --repo $(REPO) --data $(OUT)/filtered --results $(OUT)/eval $(PUSH_ARGS)

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
