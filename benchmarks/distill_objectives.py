"""Benchmark: beyond SFT in miniature: more SFT vs on-policy distillation, SFT vs SFT + top-K logit KD.

    nice python benchmarks/distill_objectives.py                 # ~30 min on 2 shared CPU cores
    python benchmarks/distill_objectives.py --seeds 0 1 --opd-steps 60 --keep runs/objectives

On the demo's task (distill/demo.py, quick sizes: 3-digit addition with a column-by-column chain of
thought; teacher 0.63M and student 0.13M parameters sharing one tokenizer):
  1. the demo's teacher is trained, and samples traces at T=1.0 with `generate --logprobs K`;
     `filter` keeps the correct ones (and their logprobs);
  2. a short SFT of the student (`--short-steps`, fewer than the demo's) gives a student with headroom;
  3. per seed, from that student: (a) on-policy distillation (`train --objective opd`) for
     `--opd-steps`, timed; (b) more SFT for as many steps as fit in the same wall time; (c) SFT with
     `--kd-weight` for the same steps as (b); each evaluated greedy and at T=0.7 on the held-out problems.
  4. a headroom check: the teacher's accuracy and a student SFT'd for the demo's full step budget.
Prints one table (pass@1 %, steps, training wall seconds), and the per-seed rows. With --keep, a re-run
with other settings reuses the teacher, traces and filter output (run folders are named by settings).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# one thread a process: on a shared CPU torch's default threads spin-wait (measured 6x slower here)
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _train_seconds(out: Path) -> float:
    """Training wall time of a finished `distill train` output (last time_s in its train_log.csv)."""
    with open(out / "train_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["time_s"]) if rows else 0.0


def main() -> None:
    from distill import demo
    from distill.cli import run_command

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--short-steps", type=int, default=200, help="the short SFT every method starts from")
    ap.add_argument("--opd-steps", type=int, default=60)
    ap.add_argument("--opd-lr", type=float, default=1e-3)
    ap.add_argument("--opd-batch", type=int, default=16)
    ap.add_argument("--kd-weight", type=float, default=1.0)
    ap.add_argument("--logprobs", type=int, default=8, help="K of the stored teacher top-K")
    ap.add_argument("--keep", help="keep the work folder here instead of a temporary one")
    args = ap.parse_args()
    cmd = demo.shown(run_command)  # each step printed as a `distill` command, then run in-process

    sizes = demo.QUICK
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="distill-objectives-"))
    data = work / "data"
    t0 = time.time()
    demo.prepare(work, sizes, 0)
    demo.train_model(cmd, work, "teacher", work / "teacher-init", data / "teacher_sft.jsonl", sizes.teacher_steps,
                     sizes.teacher_lr, 0, sizes.batch_size)  # fmt: skip
    cmd(["generate", "--teacher", str(work / "teacher.yaml"), "--prompts", str(data / "prompts.jsonl"),
               "--id-column", "id", "--domain", "math", "--num-samples", str(sizes.samples), "--temperature", "1.0",
               "--seed", "0", "--batch-size", "256", "--logprobs", str(args.logprobs), "--output",
               str(work / "traces")])  # fmt: skip
    cmd(["filter", "--input", str(work / "traces"), "--output", str(work / "filtered"),
               "--checks", "complete,format,contamination,correct,duplicate",
               "--decontaminate-file", str(data / "eval.jsonl")])  # fmt: skip
    kept = work / "filtered" / "kept"
    lr, batch = sizes.student_lr, sizes.batch_size
    short = f"sft-short-{args.short_steps}"  # run folders named by the settings: re-runs reuse the rest
    demo.train_model(cmd, work, short, work / "student-init", kept, args.short_steps, lr, 0, batch)
    demo.train_model(cmd, work, "sft-full", work / "student-init", kept, sizes.student_steps, lr, 0, batch)
    sft_step_s = _train_seconds(work / short) / args.short_steps

    acc: dict[str, dict[str, float]] = {}
    for name in ("teacher", short, "sft-full"):
        acc[name] = {m: demo.eval_model(cmd, work, work / name, m, 0) for m in ("greedy", "sampled")}
    rows = []
    for seed in args.seeds:
        tag = f"{args.short_steps}-s{seed}"
        opd = f"opd-{tag}-{args.opd_steps}x{args.opd_batch}-lr{args.opd_lr:g}"
        cmd(["train", "--objective", "opd", "--student", str(work / short), "--teacher",
                   str(work / "teacher"), "--prompts", str(data / "prompts.jsonl"), "--prompt-template", "{problem}",
                   "--output", str(work / opd), "--method", "full", "--max-steps", str(args.opd_steps),
                   "--learning-rate", str(args.opd_lr), "--batch-size", str(args.opd_batch), "--grad-accum", "1",
                   "--max-new-tokens", str(demo.MAX_TOKENS), "--max-length", "256", "--warmup-ratio", "0.05",
                   "--logging-steps", "5", "--save-steps", str(args.opd_steps), "--seed", str(seed),
                   "--no-gradient-checkpointing"])  # fmt: skip
        opd_s = _train_seconds(work / opd)
        steps = max(1, round(opd_s / sft_step_s))  # more SFT: as many steps as OPD's wall time buys
        more, kd = f"sft-more-{tag}-{steps}", f"sft-kd-{tag}-{steps}-w{args.kd_weight:g}"
        demo.train_model(cmd, work, more, work / short, kept, steps, lr, seed, batch)
        demo.train_model(cmd, work, kd, work / short, kept, steps, lr, seed, batch, "--kd-weight",
                         str(args.kd_weight))  # fmt: skip
        kd_summary = json.loads((work / kd / "manifest.json").read_text())["summary"]
        for name, label, n in ((opd, "on-policy distillation", args.opd_steps), (more, "more SFT", steps),
                               (kd, f"SFT + top-{args.logprobs} KD (w={args.kd_weight:g})", steps)):  # fmt: skip
            a = {m: demo.eval_model(cmd, work, work / name, m, seed) for m in ("greedy", "sampled")}
            rows.append((label, seed, n, _train_seconds(work / name), a["greedy"], a["sampled"]))
        rows.append(
            ("  (kd share of the loss)", seed, steps, 0.0, kd_summary.get("kd_share", 0.0), float("nan"))
        )

    print(f"\ndistill objectives in miniature (demo task, {sizes.eval_problems} held-out problems), "
          f"{time.time() - t0:.0f} s in all, work folder {work}")  # fmt: skip
    print(f"{'model':42} {'seed':>4} {'steps':>6} {'train s':>8} {'greedy':>7} {'T=0.7':>7}")
    for name, label in (("teacher", "teacher"), ("sft-full", f"student, full SFT ({sizes.student_steps} steps)"),
                        (short, f"start: short SFT ({args.short_steps} steps)")):  # fmt: skip
        print(
            f"{label:42} {'':>4} {'':>6} {'':>8} {100 * acc[name]['greedy']:7.1f} {100 * acc[name]['sampled']:7.1f}"
        )
    for label, seed, n, secs, g, s in rows:
        if label.startswith("  ("):
            print(f"{label:42} {seed:>4} {'':>6} {'':>8} {100 * g:6.1f}%")
            continue
        print(f"{label:42} {seed:>4} {n:>6} {secs:8.0f} {100 * g:7.1f} {100 * s:7.1f}")
    for label in sorted({r[0] for r in rows if not r[0].startswith("  (")}):
        mine = [r for r in rows if r[0] == label]
        g = sum(r[4] for r in mine) / len(mine)
        s = sum(r[5] for r in mine) / len(mine)
        print(f"mean over seeds: {label:30} greedy {100 * g:5.1f}  T=0.7 {100 * s:5.1f}")


if __name__ == "__main__":
    main()
