"""Benchmark: how fast the demo's teacher learns its task from init std 0.06 vs the usual 0.02.

    python benchmarks/demo_init.py                  # ~1 min on 2 CPU cores
    python benchmarks/demo_init.py --steps 300 --seed 1

Prepares the demo's data, tokenizer and teacher (distill/demo.py, quick sizes), builds a second
random-init teacher that differs only in `initializer_range` (0.02, the transformers default), trains
both with the same `distill train` command and steps, and evaluates both greedy and at T=0.7 on
the held-out problems with `distill eval`. Prints both accuracies, the wall time of each training
run and the ratio of greedy accuracies (ours / baseline). The demo relies on ours learning the
task within its step budget; the baseline shows what the wider init buys.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from distill import demo
    from distill.cli import run_command
    from distill.tiny import build_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=demo.QUICK.teacher_steps)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="keep the work folder here instead of a temporary one")
    args = ap.parse_args()
    cmd = demo.shown(run_command)  # each step printed as a `distill` command, then run in-process

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="distill-demo-init-"))
    sizes = demo.QUICK
    try:
        demo.prepare(work, sizes, args.seed)
        baseline = {**demo.TEACHER, "initializer_range": 0.02}
        build_model(work / "teacher-init-0.02", work / "tokenizer", seed=args.seed, max_position_embeddings=512,
                    **baseline)  # fmt: skip
        rows = []
        for label, init in (
            ("init 0.06 (demo)", "teacher-init"),
            ("init 0.02 (default)", "teacher-init-0.02"),
        ):
            name = f"teacher-{init}"
            t = time.time()
            demo.train_model(cmd, work, name, work / init, work / "data" / "teacher_sft.jsonl", args.steps,
                             sizes.teacher_lr, args.seed, sizes.batch_size)  # fmt: skip
            seconds = time.time() - t
            acc = {
                mode: demo.eval_model(cmd, work, work / name, mode, args.seed)
                for mode in ("greedy", "sampled")
            }
            rows.append((label, acc["greedy"], acc["sampled"], seconds))
        print(
            f"\nteacher after {args.steps} steps, {sizes.eval_problems} held-out problems, seed {args.seed}"
        )
        print(f"{'':22} {'greedy':>8} {'T=0.7':>8} {'train s':>8}")
        for label, g, smp, sec in rows:
            print(f"{label:22} {100 * g:7.1f}% {100 * smp:7.1f}% {sec:8.1f}")
        ours, base = rows[0][1], rows[1][1]
        ratio = f"{ours / base:.2f}x" if base else "inf (baseline 0%)"
        print(f"greedy accuracy ratio (ours / baseline): {ratio}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
