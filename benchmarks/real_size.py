"""Benchmark (not a test): a model of the size distill exists for, trained and scored on CPU.

    nice python benchmarks/real_size.py                   # ~15-30 min on 2 CPU cores, ~8 GB RAM
    python benchmarks/real_size.py --card qwen2.5-math-1.5b --steps 3 --max-length 512 --keep /tmp/rs
                                                          # --keep: work there, keep it, reuse the built model

Builds a random-init model from the student card's architecture (no download: `from_config`,
bf16, the card's real vocabulary size, saved as sharded safetensors) with the tiny stand-in
tokenizer, then runs as subprocesses, each measured on its own (peak RSS from `wait4`, wall):
  1. `distill train --method lora --merge --bf16` for `--steps` steps at `--max-length` tokens
     (batch 1, a checkpoint saved at the last step), against `distill train --plan`'s estimate
     for that setting (LoRA on one device);
  2. `distill eval` of the merged model on 2 MATH-500 problems, 16 new tokens;
  3. plain transformers loading the merged model (tied embeddings still tied, one forward pass).
Prints seconds per step, the saved sizes (model, adapter, checkpoint, merged) and the figures
as one JSON line. The README's "Scaling up" section quotes a run of this.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BENCHMARKS = ROOT.parent / "shared" / "benchmarks"
GB = 1e9


def build_student(card_name: str, folder: Path, max_positions: int) -> dict:
    """A random-init bf16 model of the card's architecture with the tiny tokenizer, sharded on disk."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, Qwen2Config

    from distill.cards import find_card, load_student
    from distill.tiny import build_tokenizer

    card = load_student(find_card(card_name, "students"))
    a = card.architecture
    tok = build_tokenizer(folder / "tokenizer", template="chatml", model_max_length=max_positions)
    eos, pad = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2Config(
        vocab_size=a.vocab_size,
        hidden_size=a.hidden_size,
        intermediate_size=a.intermediate_size,
        num_hidden_layers=a.num_layers,
        num_attention_heads=a.num_heads,
        num_key_value_heads=a.num_kv_heads,
        tie_word_embeddings=a.tie_embeddings,
        max_position_embeddings=max_positions,
        rope_theta=10000.0,
        eos_token_id=eos,
        pad_token_id=pad,
        bos_token_id=None,
    )
    t = time.perf_counter()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad, bos_token_id=None)
    params = sum(p.numel() for p in model.parameters())
    out = folder / "student"
    model.save_pretrained(out, max_shard_size="1GB")
    tok.save_pretrained(out)
    del model
    return {"params": params, "card_params_b": a.params_b, "build_s": round(time.perf_counter() - t, 1)}


def make_kept(folder: Path, n: int, seed: int = 0) -> Path:
    """`n` kept traces of step-by-step additions (about 150-400 tokens with the tiny tokenizer)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "shard-00000.jsonl", "w") as f:
        for i in range(n):
            a, b = rng.randint(10, 99), rng.randint(10, 99)
            steps = [f"Step {k}: {a + k} + {b} = {a + k + b}." for k in range(rng.randint(4, 10))]
            rec = {
                "id": f"r{i}:0", "prompt_id": f"r{i}", "sample": 0, "domain": "math", "source": "bench",
                "problem": f"What is {a} + {b}? Please reason step by step, and put your final answer "
                "within \\boxed{}.",
                "answer": str(a + b), "teacher": {}, "finish_reason": "stop", "reasoning_closed": True,
                "reasoning": " ".join(steps), "content": f"The answer is \\boxed{{{a + b}}}.",
                "usage": {"prompt_tokens": 0, "completion_tokens": 0}, "verdict": "kept",
            }  # fmt: skip
            f.write(json.dumps(rec) + "\n")
    return folder


def measured(cmd: list[str], env: dict[str, str], log: Path) -> dict:
    """Run `cmd`; its wall seconds, exit status and peak RSS (GB, from wait4's rusage)."""
    t = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "rc": proc.returncode,
        "wall_s": round(time.perf_counter() - t, 1),
        "peak_rss_gb": round(usage.ru_maxrss * 1024 / GB, 2),  # ru_maxrss is in KiB on Linux
    }


def size_gb(path: Path, pattern: str = "*") -> float:
    return round(sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file()) / GB, 3)


def plan_estimate(student: Path, kept: Path, max_length: int, lora_r: int) -> dict:
    import contextlib
    import io

    from distill.train import TrainConfig, run_plan

    with contextlib.redirect_stdout(io.StringIO()):
        plan = run_plan(
            TrainConfig(
                student=str(student),
                data=str(kept),
                output=str(kept.parent / "plan"),  # required by resolve(), not written by --plan
                method="lora",
                max_length=max_length,
                batch_size=1,
                lora_r=lora_r,
                num_processes=1,
                gradient_checkpointing=True,
            )  # fmt: skip
        )
    lora = next(e for e in plan["estimates"] if e["method"] == "lora" and e["strategy"] == "ddp")
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in lora.items()}


def check_merged(merged: Path) -> dict:
    """Load the merged model with plain transformers; tied embeddings still tied; one forward pass."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.bfloat16)
    tok = AutoTokenizer.from_pretrained(merged)
    ids = tok("What is 12 + 30?", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        logits = model(input_ids=ids).logits
    tied = model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    return {
        "loads": True,
        "load_and_forward_s": round(time.perf_counter() - t, 1),
        "params": sum(p.numel() for p in model.parameters()),
        "tied_embeddings": tied,
        "logits_finite": bool(torch.isfinite(logits.float()).all()),
        "logits_shape": list(logits.shape),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--card", default="qwen2.5-math-1.5b")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--lora-r", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temp folder)")
    args = ap.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="distill-real-size-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    py = [sys.executable, "-m", "distill"]
    result: dict = {
        "card": args.card,
        "steps": args.steps,
        "max_length": args.max_length,
        "lora_r": args.lora_r,
    }
    try:
        student = work / "student"
        if args.keep and (student / "config.json").exists():  # built by an earlier run in --keep
            result["model"] = {"params": None, "build_s": "reused"}
        else:
            result["model"] = build_student(args.card, work, max_positions=4096)
        result["model"]["saved_gb"] = size_gb(student, "*.safetensors")
        result["model"]["shards"] = len(list(student.glob("*.safetensors")))
        print(f"built {result['model']}", flush=True)
        kept = make_kept(work / "kept", n=max(8, args.steps))
        result["plan"] = plan_estimate(student, kept, args.max_length, args.lora_r)

        out = work / "trained"
        train = measured(
            py
            + [
                "train",
                "--student",
                str(student),
                "--input",
                str(kept),
                "--output",
                str(out),
                "--method",
                "lora",
                "--merge",
                "--bf16",
                "--max-steps",
                str(args.steps),
                "--max-length",
                str(args.max_length),
                "--batch-size",
                "1",
                "--grad-accum",
                "1",
                "--lora-r",
                str(args.lora_r),
                "--lora-alpha",
                str(2 * args.lora_r),
                "--logging-steps",
                "1",
                "--save-steps",
                str(args.steps),
                "--warmup-ratio",
                "0",
                "--gradient-checkpointing",
                "--cache-dir",
                str(work / "cache"),
            ],  # fmt: skip
            env,
            work / "train.log",
        )
        result["train"] = train
        if train["rc"] != 0:
            raise SystemExit(f"train failed (rc {train['rc']}); see {work / 'train.log'}")
        rows = (out / "train_log.csv").read_text().splitlines()
        result["train"]["log"] = rows
        manifest = json.loads((out / "manifest.json").read_text())
        summary = manifest.get("summary") or {}
        result["train"]["tokens_per_s"] = summary.get("tokens_per_s")
        steps_s = (summary.get("train_tokens") or 0) / max(summary.get("tokens_per_s") or 1e-9, 1e-9)
        result["train"]["train_loop_s"] = round(steps_s, 1)
        result["train"]["s_per_step"] = round(steps_s / args.steps, 1)
        result["sizes_gb"] = {
            "adapter": round((out / "adapter_model.safetensors").stat().st_size / GB, 3),
            "checkpoints": size_gb(out / "checkpoints"),
            "merged": size_gb(out / "merged", "*.safetensors"),
            "merged_shards": len(list((out / "merged").glob("*.safetensors"))),
        }  # fmt: skip
        print(f"train {json.dumps(result['train'])}\nsizes {result['sizes_gb']}", flush=True)

        result["merged"] = check_merged(out / "merged")
        print(f"merged {result['merged']}", flush=True)

        ev = work / "eval"
        result["eval"] = measured(
            py
            + [
                "eval",
                "--input",
                str(out / "merged"),
                "--output",
                str(ev),
                "--benchmark",
                "math500",
                "--benchmarks-dir",
                str(BENCHMARKS),
                "--limit",
                "2",
                "--num-samples",
                "2",
                "--max-tokens",
                "16",
                "--batch-size",
                "4",
            ],  # fmt: skip
            env,
            work / "eval.log",
        )
        if result["eval"]["rc"] == 0:
            res = json.loads((ev / "results.json").read_text())
            result["eval"]["results"] = res.get("benchmarks", res)
        print(f"eval {result['eval']}", flush=True)
        print(
            f"\npeak RSS: train {train['peak_rss_gb']} GB (plan for LoRA on one device: "
            f"{result['plan']['total_gb']} GB incl. {1.5} GB CUDA overhead), eval {result['eval']['peak_rss_gb']} GB"
        )
        print(json.dumps(result, default=str))
    finally:
        (work / "result.json").write_text(json.dumps(result, indent=1, default=str))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
