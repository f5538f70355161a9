"""Throughput of `distill filter` against the common baseline, and its peak memory.

    python benchmarks/filter_throughput.py                       # 20k traces, RSS at 10k and 100k
    python benchmarks/filter_throughput.py --n 4000 --rss 2000,8000 --baseline-rows 2000   # quick

Each side runs in its own fresh Python process and is timed from its launch to its exit
(interpreter start, imports, reading, the work, writing: what a user waits for), so neither
inherits the other's warm caches (math-verify's parser state, its parse cache of the golds):
- baseline: a single-process `datasets.map` calling math-verify `parse` on the gold and on the
  answer and `verify` on every row (what most distillation scripts do), loading included;
- ours: `distill filter` (checks complete, format, correct, duplicate) with `--workers` processes,
  pool start-up and all writing included.
Each side prints traces/s, CPU ms per trace (its process and its workers, start-up included;
a busy shared machine distorts it less than traces/s) and its start-up (launch to imports done).

Synthetic mode (`--n`): R1-like traces (4 samples per prompt, long-tailed lengths, boxed answers
in varied LaTeX forms, ~30% wrong, a few truncated). The baseline runs on the first
`--baseline-rows` of them (it is slow) and its time is projected to `--n`: its start-up once,
the rest per trace.

Real-shaped mode (`--real-n`, 0 to skip): long reasoning (thousands of words, a draft box now
and then), golds drawn from `../shared/benchmarks/*.jsonl` in their LaTeX forms, answers
correct (in an equivalent written form) or a near miss (one digit or sign off), mostly in one
box (list answers sometimes boxed element by element, a few unboxed), and one distinct answer
text per trace, so no verdict cache hit is free. Both sides run on every trace, and each side's
verdicts are scored against the known truth.

Then runs the stage alone on `--rss` sizes in fresh processes and prints their peak RSS
(main process and workers).
Not a test: numbers go in the README.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = (
    "so we need to compute the value then check it again wait let me reconsider the sum of terms "
    "factor equation substitute simplify therefore hence the answer should be correct maybe"
).split()


def _answers(rng: random.Random) -> tuple[str, str, str]:
    """(gold, an equivalent prediction, a wrong prediction) in varied LaTeX forms."""
    kind = rng.randrange(7)
    a, b = rng.randint(1, 40), rng.randint(2, 12)
    if kind == 0:
        return str(a * b), f"{a * b}", str(a * b + rng.randint(1, 9))
    if kind == 1:
        g = math.gcd(a, b)
        a, b = a // g, b // g
        if b == 1:
            b = 3
        return (
            f"\\frac{{{a}}}{{{b}}}",
            rng.choice(
                [
                    f"\\dfrac{{{a}}}{{{b}}}",
                    f"{a}/{b}",
                    f"\\frac{a}{b}" if a < 10 and b < 10 else f"\\frac{{{a}}}{{{b}}}",
                ]
            ),
            f"\\frac{{{a + 1}}}{{{b}}}",
        )
    if kind == 2:
        return f"{a}\\sqrt{{{b}}}", f"\\sqrt{{{a * a * b}}}", f"{a + 1}\\sqrt{{{b}}}"
    if kind == 3:
        return f"[{a}, {a + b})", f"[{a},{a + b})", f"({a}, {a + b})"
    if kind == 4:
        return f"\\{{{a}, {b}\\}}", f"\\{{{b},{a}\\}}", f"\\{{{a}, {b + 1}\\}}"
    if kind == 5:
        return f"{a}.5", f"\\frac{{{2 * a + 1}}}{{2}}", f"{a}.25"
    letter = "ABCDE"[a % 5]
    return f"\\text{{({letter})}}", letter, "ABCDE"[(a + 1) % 5]


def make_traces(folder: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    per_shard = 5000
    f = None
    for i in range(n):
        if i % per_shard == 0:
            if f:
                f.close()
            f = open(folder / f"shard-{i // per_shard:05d}.jsonl", "w", encoding="utf-8")
        p, s = divmod(i, 4)
        prng = random.Random(f"{seed}:{p}")
        gold, same, wrong = _answers(prng)
        length = min(8000, int(rng.lognormvariate(5.3, 0.9)))  # median ~200 words, long tail
        para = []
        for _ in range(max(1, length // 40)):
            para.append(" ".join(rng.choice(WORDS) for _ in range(40)) + ".")
        pred = wrong if rng.random() < 0.3 else same
        rec = {
            "id": f"p{p}:{s}",
            "prompt_id": f"p{p}",
            "sample": s,
            "problem": f"Problem {p}: find the value of the expression number {p} with parameters {prng.random():.6f}.",
            "answer": gold,
            "domain": "math",
            "source": "synthetic",
            "teacher": {"model": "synthetic-r1"},
            "reasoning": "\n\n".join(para),
            "content": f"Putting it together, the final answer is $\\boxed{{{pred}}}$.",
            "finish_reason": "length" if rng.random() < 0.05 else "stop",
            "reasoning_closed": True,
            "usage": {"prompt_tokens": 40, "completion_tokens": length},
        }
        f.write(json.dumps(rec) + "\n")  # type: ignore[union-attr]
    if f:
        f.close()


BENCH_DIR = ROOT.parent / "shared" / "benchmarks"
PROSE = (
    "so the key quantity here is the sum over all cases and we should double check the boundary "
    "values before moving on wait that is not right let me recompute the second term carefully "
    "using the identity from before then the total becomes consistent with the constraint"
).split()


def _correct_form(gold: str, k: int) -> str:
    """An equivalent way to write `gold`, distinct for each k (spacing and fraction commands)."""
    text = gold.replace("\\frac", "\\dfrac") if k % 2 and "\\frac" in gold else gold
    text = text.replace(", ", ",") if k % 3 == 1 else text
    return text + "\\;" * (k // 2) if k > 1 else text


def _near_miss(gold: str, k: int) -> str:
    """A wrong answer one edit away from `gold`: its last digit changed (or +1 where none)."""
    digits = [i for i, c in enumerate(gold) if c.isdigit()]
    if not digits:
        return f"{gold}+{k + 1}"
    i = digits[-1]
    return gold[:i] + str((int(gold[i]) + 1 + k % 8) % 10) + gold[i + 1 :]


def _answer_part(pred: str, rng: random.Random) -> str:
    """How R1 ends: mostly one box; a list answer boxed element by element; now and then no box."""
    parts = pred.split(", ")
    plain_list = len(parts) > 1 and not any(c in pred for c in "()[]{}")
    u = rng.random()
    if plain_list and u < 0.5:
        return "The solutions are " + " and ".join(f"$\\boxed{{{p}}}$" for p in parts) + "."
    if u > 0.85:
        return f"The final answer is ${pred}$."
    return f"The final answer is $\\boxed{{{pred}}}$."


def make_real_traces(folder: Path, n: int, seed: int = 0) -> dict[str, bool]:
    """Real-shaped traces (see the module docstring); returns id -> whether the answer is right."""
    import glob

    rows = [json.loads(line) for f in sorted(glob.glob(str(BENCH_DIR / "*.jsonl"))) for line in open(f)]
    if not rows:
        raise SystemExit(f"no benchmark files in {BENCH_DIR}")
    rng = random.Random(seed)
    rng.shuffle(rows)
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    with open(folder / "shard-00000.jsonl", "w", encoding="utf-8") as f:
        for i in range(n):
            p, s = divmod(i, 4)
            row = rows[p % len(rows)]
            gold = row["answer"]
            right = rng.random() < 0.6
            pred = _correct_form(gold, s + 4 * (p // len(rows))) if right else _near_miss(gold, s)
            words = min(12000, int(rng.lognormvariate(8.0, 0.5)))  # median ~3000 words
            paras = [" ".join(rng.choice(PROSE) for _ in range(60)) + "." for _ in range(max(1, words // 60))]
            if rng.random() < 0.3:  # a draft box somewhere in the reasoning
                paras.insert(
                    rng.randrange(len(paras)), f"so maybe it is \\boxed{{{_near_miss(gold, s + 1)}}}"
                )
            rid = f"{row['id']}:{s}:{p // len(rows)}"
            truth[rid] = right
            rec = {
                "id": rid,
                "prompt_id": f"{row['id']}:{p // len(rows)}",
                "sample": s,
                "problem": row["problem"],
                "answer": gold,
                "domain": "math",
                "source": "shared-benchmarks",
                "teacher": {"model": "synthetic-r1"},
                "reasoning": "\n\n".join(paras),
                "content": "We combine the cases above and simplify.\n\n**Final Answer**\n\n"
                + _answer_part(pred, rng),
                "finish_reason": "stop",
                "reasoning_closed": True,
                "usage": {"prompt_tokens": 80, "completion_tokens": words},
            }
            f.write(json.dumps(rec) + "\n")
    return truth


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (a side's process and its workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _startup(launched: float) -> dict[str, float]:
    """Wall seconds since the parent launched this process, and this process's CPU seconds so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {"startup_s": time.time() - launched, "startup_cpu_s": own.ru_utime + own.ru_stime}


def baseline_side(folder: Path, verdicts_out: Path, launched: float) -> dict[str, float]:
    """The baseline, run as its own process: a single-process datasets.map that parses the gold,
    parses the answer and verifies, per row (what most distillation scripts do)."""
    import datasets
    from math_verify import parse, verify

    started = _startup(launched)
    datasets.disable_progress_bars()
    files = sorted(str(p) for p in folder.glob("shard-*.jsonl"))
    ds = datasets.load_dataset("json", data_files=files, split="train")

    def score(row):
        gold = parse(f"${row['answer']}$")
        pred = parse(row["content"])
        return {"correct": bool(verify(gold, pred))}

    out = ds.map(score, num_proc=None, load_from_cache_file=False)
    verdicts_out.write_text(json.dumps(dict(zip(out["id"], out["correct"], strict=True))))
    return started


def ours(folder: Path, out: Path, workers: int) -> tuple[float, dict, float]:
    """(traces/s, funnel, CPU ms/trace) of `distill filter` in this process (main and workers)."""
    from distill.filter import FilterConfig, run

    n = sum(1 for p in folder.glob("shard-*.jsonl") for _ in open(p, encoding="utf-8"))
    t, cpu = time.perf_counter(), _cpu_s()
    funnel = run(
        FilterConfig(
            input=str(folder),
            output=str(out),
            checks=["complete", "format", "correct", "duplicate"],
            workers=workers,
        )
    )
    return n / (time.perf_counter() - t), funnel, (_cpu_s() - cpu) * 1000 / n


def ours_side(folder: Path, out: Path, workers: int, launched: float) -> dict[str, float]:
    """`distill filter` run as its own process, the way the CLI runs it."""
    from distill.filter import FilterConfig, run

    started = _startup(launched)
    run(
        FilterConfig(
            input=str(folder),
            output=str(out),
            checks=["complete", "format", "correct", "duplicate"],
            workers=workers,
        )
    )
    return started


def run_side(args: list[str]) -> dict[str, float]:
    """Run one side in a fresh Python process, timed from its launch to its exit (interpreter start,
    imports, reading, the work, writing: what a user waits for). Returns wall_s, cpu_s (the process
    and the workers it waited for), startup_s and startup_cpu_s (launch to imports done)."""
    t, cpu = time.perf_counter(), _cpu_s()
    proc = subprocess.run(
        [sys.executable, __file__, "--_side", *args, repr(time.time())],
        capture_output=True,
        text=True,
    )
    wall, cpu = time.perf_counter() - t, _cpu_s() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"{args[0]} side failed:\n{proc.stderr[-3000:]}")
    return {"wall_s": wall, "cpu_s": cpu, **json.loads(proc.stdout.strip().splitlines()[-1])}


def _side(args: list[str]) -> None:
    kind, launched = args[0], float(args[-1])
    if kind == "baseline":
        started = baseline_side(Path(args[1]), Path(args[2]), launched)
    else:
        started = ours_side(Path(args[1]), Path(args[2]), int(args[3]), launched)
    print(json.dumps(started))


def our_verdicts(out: Path) -> dict[str, bool]:
    """id -> whether `distill filter` judged the answer correct (from kept/ and rejected/)."""
    verdicts = {}
    for sub in ("kept", "rejected"):
        for p in sorted((out / sub).glob("shard-*.jsonl")):
            for line in open(p, encoding="utf-8"):
                r = json.loads(line)
                verdicts[r["id"]] = r["checks"].get("correct", {}).get("status") == "correct"
    return verdicts


def _right(verdicts: dict[str, bool], truth: dict[str, bool]) -> str:
    hits = sum(verdicts[i] == truth[i] for i in verdicts)
    return f"{hits}/{len(verdicts)} verdicts right ({100 * hits / max(len(verdicts), 1):.1f}%)"


def _scaled(m: dict[str, float], rows: int, n: int) -> tuple[float, float]:
    """(wall s, CPU s) of a side measured on `rows` traces, projected to `n`: its start-up once,
    the rest per trace."""
    per_wall = (m["wall_s"] - m["startup_s"]) / rows
    per_cpu = (m["cpu_s"] - m["startup_cpu_s"]) / rows
    return m["startup_s"] + per_wall * n, m["startup_cpu_s"] + per_cpu * n


def _line(name: str, n: int, wall: float, cpu: float, startup: float, extra: str = "") -> str:
    return (
        f"{name:<36}: {n / wall:8.1f} traces/s  {1000 * cpu / n:5.2f} CPU ms/trace"
        f"  (start-up {startup:.2f} s){extra}"
    )


def _copy_rows(src: Path, dst: Path, rows: int) -> None:
    """The first `rows` traces of the shards in `src`, as one shard in `dst`."""
    dst.mkdir(parents=True, exist_ok=True)
    with open(dst / "shard-00000.jsonl", "w", encoding="utf-8") as f:
        left = rows
        for p in sorted(src.glob("shard-*.jsonl")):
            for line in open(p, encoding="utf-8"):
                if left == 0:
                    return
                f.write(line)
                left -= 1


def synthetic_mode(tmp: Path, n: int, baseline_rows: int, workers: int) -> None:
    print(f"building {n} synthetic traces ...", file=sys.stderr)
    make_traces(tmp / "traces", n)
    rows = min(baseline_rows, n)
    _copy_rows(tmp / "traces", tmp / "traces-base", rows)
    print(f"baseline on {rows} rows (own process) ...", file=sys.stderr)
    base = run_side(["baseline", str(tmp / "traces-base"), str(tmp / "base-verdicts.json")])
    print(f"ours on {n} traces, {workers} workers (own process) ...", file=sys.stderr)
    mine = run_side(["ours", str(tmp / "traces"), str(tmp / "out"), str(workers)])
    funnel = json.loads((tmp / "out" / "funnel.json").read_text())
    b_wall, b_cpu = _scaled(base, rows, n)
    print(f"\nsynthetic traces (baseline measured on {rows} rows, projected to {n}):")
    print(_line("baseline datasets.map + math-verify", n, b_wall, b_cpu, base["startup_s"], "  1 process"))
    print(
        _line("distill filter", n, mine["wall_s"], mine["cpu_s"], mine["startup_s"], f"  {workers} workers")
    )
    print(
        f"{'ratio (synthetic)':<36}: {b_wall / mine['wall_s']:8.2f}x   (kept {funnel['kept']}/{funnel['input']})"
    )


def real_mode(tmp: Path, n: int, workers: int) -> None:
    print(f"building {n} real-shaped traces ...", file=sys.stderr)
    truth = make_real_traces(tmp / "real", n)
    print(f"baseline on {n} rows (own process) ...", file=sys.stderr)
    base = run_side(["baseline", str(tmp / "real"), str(tmp / "real-base-verdicts.json")])
    base_v = json.loads((tmp / "real-base-verdicts.json").read_text())
    print(f"ours on {n} traces, {workers} workers (own process) ...", file=sys.stderr)
    mine = run_side(["ours", str(tmp / "real"), str(tmp / "real-out"), str(workers)])
    funnel = json.loads((tmp / "real-out" / "funnel.json").read_text())
    ours_v = our_verdicts(tmp / "real-out")
    print(f"\nreal-shaped traces (long reasoning, golds from {BENCH_DIR.name}/*.jsonl):")
    print(
        _line("baseline datasets.map + math-verify", n, base["wall_s"], base["cpu_s"], base["startup_s"])
        + f"  {_right(base_v, truth)}"
    )
    print(
        _line("distill filter", n, mine["wall_s"], mine["cpu_s"], mine["startup_s"])
        + f"  {_right(ours_v, truth)}"
    )
    print(
        f"{'ratio (real-shaped)':<36}: {base['wall_s'] / mine['wall_s']:8.2f}x"
        f"   (kept {funnel['kept']}/{funnel['input']})"
    )


def _measure(folder: str, out: str, workers: int) -> None:
    rate, funnel, _ = ours(Path(folder), Path(out), workers)
    rss = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    print(json.dumps({"rate": rate, "rss_mb": rss / 1024, "kept": funnel["kept"]}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="traces for the throughput comparison")
    ap.add_argument("--baseline-rows", type=int, default=4000, help="rows the baseline is timed on")
    ap.add_argument("--rss", default="10000,100000", help="sizes for the peak-RSS runs (comma-separated)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--real-n", type=int, default=600, help="real-shaped traces (0: skip that mode)")
    ap.add_argument("--_measure", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--_side", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._side:
        _side(args._side)
        return
    if args._measure:
        _measure(args._measure[0], args._measure[1], int(args._measure[2]))
        return
    with tempfile.TemporaryDirectory(prefix="distill-bench-") as tmp:
        tmp = Path(tmp)
        if args.n:
            synthetic_mode(tmp, args.n, args.baseline_rows, args.workers)
        if args.real_n:
            real_mode(tmp, args.real_n, args.workers)
        for size in [int(x) for x in args.rss.split(",") if x]:
            folder = tmp / f"rss-{size}"
            make_traces(folder, size, seed=size)
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--_measure",
                    str(folder),
                    str(tmp / f"out-{size}"),
                    str(args.workers),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            m = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"peak RSS at {size:>7} traces        : {m['rss_mb']:8.1f} MB  ({m['rate']:.1f} traces/s)")


if __name__ == "__main__":
    main()
