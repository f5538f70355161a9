"""Benchmark: the demo's student trainings side by side (one process each, cores // jobs threads)
against the same trainings one after the other with every core (torch's default).

    python benchmarks/side_by_side.py                 # ~3 min on 2 CPU cores
    python benchmarks/side_by_side.py --steps 300 --jobs 3

Prepares the demo's data, tokenizer and student (distill/demo.py, quick sizes) and gold traces, then
trains `--jobs` copies of the demo's student (`distill train`, the demo's settings and batch size,
different seeds) twice: one after the other in this process (the baseline, what the demo did
before), and side by side with `distill.side_by_side` (what `distill demo` and `distill sweep
--jobs` do). Prints both wall times and the ratio (baseline / side by side; above 1: side by side
is faster). Nothing is cached between the two: each training starts from the random init and
writes its own folder; both runs pay their imports (the side-by-side workers import torch
themselves; this process has already imported it).
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
    from distill.side_by_side import run_side_by_side, threads_per_job

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", help="keep the work folder here instead of a temporary one")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="distill-side-by-side-"))
    sizes = demo.QUICK
    try:
        demo.prepare(work, sizes, seed=0)
        data = work / "data" / "teacher_sft.jsonl"  # gold traces, shaped like the demo's kept traces

        def commands(tag: str) -> dict[str, list[str]]:
            return {f"{tag}-{i}": demo.train_args(work, f"{tag}-{i}", work / "student-init", data, args.steps,
                                                  sizes.student_lr, i, sizes.batch_size)
                    for i in range(args.jobs)}  # fmt: skip

        t = time.perf_counter()
        for a in commands("sequential").values():
            run_command(a)
        sequential = time.perf_counter() - t
        t = time.perf_counter()
        calls = [(name, (a,)) for name, a in commands("side").items()]
        run_side_by_side(run_command, calls, args.jobs, work / "logs")
        side = time.perf_counter() - t
        print(
            f"\n{args.jobs} trainings of the demo's student, {args.steps} steps each, batch {sizes.batch_size}:"
        )
        print(f"  one after the other, every core:      {sequential:6.1f} s")
        print(f"  side by side, {threads_per_job(args.jobs)} thread(s) each:       {side:6.1f} s")
        print(f"  ratio (baseline / side by side):      {sequential / side:6.2f}x")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
