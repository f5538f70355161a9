#!/usr/bin/env bash
# GPU check: the paths no CPU test reaches, one line each: "ok", "failed: <reason>" or "skipped: <why>".
#
#   bash benchmarks/gpu_check.sh                  # a CUDA machine: pinned installs, then the checks (< 8 min, 1 GPU)
#   bash benchmarks/gpu_check.sh --no-install     # use the environment as it is
#   bash benchmarks/gpu_check.sh --wheels DIR     # install the pinned packages from a folder of wheels (offline)
#   bash benchmarks/gpu_check.sh --cpu-only       # no GPU: the same plumbing with CPU stand-ins, GPU paths skipped
#
# Paths (GPU): vLLM generate on the tiny model; bf16 full training with padding-free packing on
# FlashAttention (SDPA when flash-attn has no wheel for this machine: it is never compiled here);
# QLoRA (bitsandbytes 4-bit) on CUDA; `distill eval --backend vllm`. CPU stand-ins (--cpu-only, and
# always as a baseline): transformers generate, fp32 packed training, transformers eval.
# Nothing touches the Hub (HF_HUB_OFFLINE=1): the tiny tokenizer, model, prompts, traces and the eval
# set are built locally under --work (default: a temp folder). Logs: <work>/logs/<check>.log.
# Exit status: 0 when nothing failed. Prints no speed figures: it checks that the paths run.
set -uo pipefail

VLLM_VERSION=0.33.0
BITSANDBYTES_VERSION=0.50.2
FLASH_ATTN_VERSION=2.8.3.post2

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
INSTALL=1
CPU_ONLY=0
WHEELS=""
WORK=""
STEP_TIMEOUT=300

usage() { sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-install) INSTALL=0 ;;
        --cpu-only) CPU_ONLY=1; INSTALL=0 ;;
        --wheels) WHEELS="${2:?--wheels needs a folder}"; shift ;;
        --work) WORK="${2:?--work needs a folder}"; shift ;;
        --step-timeout) STEP_TIMEOUT="${2:?--step-timeout needs seconds}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_check: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [[ -z "$WORK" ]]; then WORK="$(mktemp -d -t distill-gpu-check-XXXXXX)"; fi
mkdir -p "$WORK/logs"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export DISTILL_CACHE="$WORK/cache"

OK=0; FAILED=0; SKIPPED=0
report() {  # name, status, detail
    case "$2" in
        ok) OK=$((OK + 1)); echo "$1: ok${3:+ ($3)}" ;;
        failed) FAILED=$((FAILED + 1)); echo "$1: failed: $3" ;;
        skipped) SKIPPED=$((SKIPPED + 1)); echo "$1: skipped: $3" ;;
    esac
}

reason() {  # the last error-looking line of a log, else its last line
    local line
    line="$(grep -E 'Error|error:|Traceback|No such|not found|CUDA|failed' "$1" 2>/dev/null | tail -n 1)"
    [[ -n "$line" ]] || line="$(tail -n 1 "$1" 2>/dev/null)"
    echo "${line:0:240}"
}

check() {  # name, verify-command, command...: run with a timeout; ok only when both succeed
    local name="$1" verify="$2"; shift 2
    local log="$WORK/logs/$name.log"
    timeout "$STEP_TIMEOUT" "$@" >"$log" 2>&1
    local rc=$?
    if [[ $rc -eq 124 ]]; then report "$name" failed "timed out after ${STEP_TIMEOUT}s (log: $log)"; return; fi
    if [[ $rc -ne 0 ]]; then report "$name" failed "exit $rc: $(reason "$log")"; return; fi
    local detail
    if ! detail="$(bash -c "$verify" 2>&1)"; then report "$name" failed "${detail:-output check failed}"; return; fi
    report "$name" ok "$detail"
}

# ---------------------------------------------------------------------------- environment

HAS_CUDA="$("$PYTHON" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)"
if [[ $CPU_ONLY -eq 0 && "$HAS_CUDA" != 1 ]]; then
    echo "gpu_check: no CUDA GPU visible to torch; run with --cpu-only for the CPU parts" >&2
    exit 2
fi

if [[ $INSTALL -eq 1 ]]; then
    pip_src=()
    [[ -n "$WHEELS" ]] && pip_src=(--no-index --find-links "$WHEELS")
    if "$PYTHON" -m pip install -q "${pip_src[@]}" "vllm==$VLLM_VERSION" "bitsandbytes==$BITSANDBYTES_VERSION" \
        >"$WORK/logs/install.log" 2>&1; then
        report install ok "vllm $VLLM_VERSION, bitsandbytes $BITSANDBYTES_VERSION"
    else
        report install failed "$(reason "$WORK/logs/install.log")"
    fi
    # a prebuilt wheel only: compiling flash-attn takes far longer than this whole check
    if "$PYTHON" -m pip install -q --only-binary=:all: "${pip_src[@]}" "flash-attn==$FLASH_ATTN_VERSION" \
        >"$WORK/logs/install-flash-attn.log" 2>&1; then
        report install-flash-attn ok "flash-attn $FLASH_ATTN_VERSION"
    else
        report install-flash-attn skipped "no flash-attn $FLASH_ATTN_VERSION wheel here: training uses SDPA"
    fi
fi

# ---------------------------------------------------------------------------- the tiny model and data

PREP=$(cat <<'PY'
import json, sys
from pathlib import Path
from distill.tiny import build_model, build_tokenizer
work = Path(sys.argv[1])
build_tokenizer(work / "tokenizer", template="chatml")
build_model(work / "model", work / "tokenizer", arch="qwen2", hidden_size=64, num_layers=2, max_position_embeddings=1024)
problems = [(f"What is {a} + {b}?", str(a + b)) for a, b in [(2, 3), (10, 7), (21, 21), (5, 8)]]
(work / "prompts.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "problem": p, "answer": a}) + "\n" for i, (p, a) in enumerate(problems)))
(work / "evalset.jsonl").write_text("".join(json.dumps({"id": f"e{i}", "problem": p, "answer": a}) + "\n" for i, (p, a) in enumerate(problems[:2])))
kept = work / "kept"
kept.mkdir(exist_ok=True)
with open(kept / "shard-00000.jsonl", "w") as f:
    for i in range(32):
        a, b = i + 2, 3 * i + 1
        f.write(json.dumps({"id": f"k{i}:0", "prompt_id": f"k{i}", "sample": 0, "problem": f"What is {a} + {b}?",
                            "answer": str(a + b), "domain": "math", "source": "gpu_check", "teacher": {},
                            "reasoning": " ".join(f"{a} + {k} = {a + k}." for k in range(1 + i % 7)),
                            "content": f"The answer is \\boxed{{{a + b}}}.", "finish_reason": "stop",
                            "reasoning_closed": True, "usage": {}, "verdict": "kept"}) + "\n")
print("tiny qwen2, 4 prompts, 32 kept traces, 2 eval problems")
PY
)
if "$PYTHON" -c "$PREP" "$WORK" >"$WORK/logs/prepare.log" 2>&1; then
    report prepare ok "$(tail -n 1 "$WORK/logs/prepare.log")"
else
    report prepare failed "$(reason "$WORK/logs/prepare.log")"
    echo "gpu_check: $OK ok, $FAILED failed, $SKIPPED skipped (logs: $WORK/logs)"
    exit 1
fi

M="$WORK/model"
records() {  # folder, expected count -> a check of the trace count
    echo "n=\$(cat $1/shard-*.jsonl | wc -l); [[ \$n -eq $2 ]] && echo \"\$n traces\" || { echo \"\$n traces, expected $2\"; exit 1; }"
}
SUMMARY_PY='import json, os, sys
s = json.load(open(sys.argv[1]))["summary"]
r = eval(os.environ["EXPR"], {"s": s})
print(r) if r else sys.exit("unexpected train summary: " + json.dumps(s)[:200])'
summary_field() {  # folder, python expression over the train manifest's summary `s` -> its check
    printf 'EXPR=%q %q -c %q %q' "$2" "$PYTHON" "$SUMMARY_PY" "$1/manifest.json"
}

# ---------------------------------------------------------------------------- CPU stand-ins (always)

check generate-transformers-cpu "$(records "$WORK/gen-cpu" 8)" \
    "$PYTHON" -m distill generate --teacher "$M" --prompts "$WORK/prompts.jsonl" --output "$WORK/gen-cpu" \
    --num-samples 2 --max-tokens 16 --temperature 1.0 --backend transformers --no-progress
check train-fp32-packed-cpu "$(summary_field "$WORK/train-cpu" "'packing' if s['packing'] and s['steps'] == 4 else ''")" \
    "$PYTHON" -m distill train --student "$M" --input "$WORK/kept" --output "$WORK/train-cpu" --method full \
    --fp32 --packing --max-steps 4 --batch-size 4 --grad-accum 1 --max-length 256 --learning-rate 1e-4
check eval-transformers-cpu "test -s $WORK/eval-cpu/results.json && echo results.json" \
    "$PYTHON" -m distill eval --input "$M" --output "$WORK/eval-cpu" --benchmark-file "$WORK/evalset.jsonl" \
    --num-samples 2 --max-tokens 16 --backend transformers

# ---------------------------------------------------------------------------- GPU paths

if [[ $CPU_ONLY -eq 1 ]]; then
    for name in generate-vllm train-bf16-packed-flash qlora-cuda eval-vllm; do report "$name" skipped "--cpu-only"; done
else
    ATTN="$("$PYTHON" -c 'import flash_attn' >/dev/null 2>&1 && echo flash_attention_2 || echo sdpa)"
    check generate-vllm "$(records "$WORK/gen-vllm" 8)" \
        "$PYTHON" -m distill generate --teacher "$M" --prompts "$WORK/prompts.jsonl" --output "$WORK/gen-vllm" \
        --num-samples 2 --max-tokens 16 --temperature 1.0 --backend vllm --gpu-memory-utilization 0.3 \
        --max-model-len 512 --no-progress
    check train-bf16-packed-flash "$(summary_field "$WORK/train-bf16" "'$ATTN, packing' if s['packing'] and s['steps'] == 4 else ''")" \
        "$PYTHON" -m distill train --student "$M" --input "$WORK/kept" --output "$WORK/train-bf16" --method full \
        --bf16 --packing --max-steps 4 --batch-size 4 --grad-accum 1 --max-length 256 --learning-rate 1e-4
    check qlora-cuda "$(summary_field "$WORK/train-qlora" "'4-bit, merged' if s['method'] == 'qlora' and s.get('merged') else ''")" \
        "$PYTHON" -m distill train --student "$M" --input "$WORK/kept" --output "$WORK/train-qlora" --method qlora \
        --bf16 --max-steps 4 --batch-size 4 --grad-accum 1 --max-length 256 --lora-r 8 --lora-alpha 16 --merge
    check eval-vllm "test -s $WORK/eval-vllm/results.json && echo results.json" \
        "$PYTHON" -m distill eval --input "$M" --output "$WORK/eval-vllm" --benchmark-file "$WORK/evalset.jsonl" \
        --num-samples 2 --max-tokens 16 --backend vllm --gpu-memory-utilization 0.3 --max-model-len 512
fi

echo "gpu_check: $OK ok, $FAILED failed, $SKIPPED skipped (logs: $WORK/logs)"
[[ $FAILED -eq 0 ]]
