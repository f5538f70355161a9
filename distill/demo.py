"""The demo: a miniature R1 distillation, end to end on a laptop CPU, through the real stages.

    distill demo                     # full size (about 3 min on 2 cores), run folder runs/demo
    distill demo --quick             # same teacher, fewer prompts/student steps/eval problems,
                                     # run folder runs/demo-quick
    distill demo --study             # the demo, then the sweep and other objectives
    make demo

Steps, each an ordinary `distill` command printed before it runs (re-run any one by hand):
  1. task data and tokenizer: additions of 2- to 5-digit numbers (`DemoSizes.digits`: mixed
     difficulty) with a column-by-column chain of thought whose lines write the two digits in either
     order (varied wording, as a real teacher's correct traces vary); a byte-level BPE tokenizer
     trained locally; random-init Qwen2 teacher (0.3M params) and student (0.13M), RoPE base 100
  2. `distill train --method full` the teacher on gold chain-of-thought traces
  3. `distill eval` the teacher (greedy, T=0.7); stop with a clear message if it has not learned the task
  4. `distill generate` new problems × 4 samples from the teacher sampled hot (T=1.3: it slips often,
     and more often on longer chains), with its top-8 logprobs per token (`--logprobs`, for the
     study's KD student)
  5. `distill filter` (complete, format, correct with math-verify, contamination against the held-out
     eval problems, duplicates); a few eval problems are planted in the prompt pool on purpose
  6. `distill train` three students side by side (one process and thread each on 2 cores): on the
     filtered traces, on the unfiltered traces, on answers only
  7. `distill eval` every model on the held-out problems (greedy and T=0.7)
  8. `distill report` the run folder; the final table is printed and written to the report
Re-running the demo resumes: each stage skips its finished output. With `--study`, `distill sweep
--jobs 2` then trains students on subsets of the kept traces (limo, s1, random; four budgets; two
seeds), then SFT + logit KD and on-policy distillation beside the full-data student; the report
gets their tables and the sweep's chart.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from distill.configs import DemoConfig
from distill.errors import UserError

DIGITS = (2, 3, 4, 5)  # digits per operand, drawn uniformly: easy 2-digit to hard 5-digit problems


@dataclass(frozen=True)
class DemoSizes:
    teacher_sft: int  # gold chain-of-thought examples for the teacher
    teacher_steps: int
    prompts: int  # new problems sampled from the teacher
    samples: int  # samples per problem
    student_steps: int
    eval_problems: int
    leaked: int  # eval problems planted in the prompt pool (decontamination must catch them)
    digits: tuple[int, ...] = DIGITS  # digits per operand, drawn uniformly: the task's difficulty range
    batch_size: int = 32
    teacher_lr: float = 3e-3
    student_lr: float = 3e-3  # at batch 16, 6e-3 left a seed's filtered student at 11% (3e-3: 96%)
    varied: bool = True  # gold traces write each column's two digits in either order (demo_task.reasoning)
    temperature: float = 1.3  # the teacher is sampled hot: it slips often, and more on longer chains


FULL = DemoSizes(
    teacher_sft=4000,
    teacher_steps=900,
    prompts=800,
    samples=4,
    student_steps=900,
    eval_problems=400,
    leaked=16,
    batch_size=16,
)
QUICK = DemoSizes(
    teacher_sft=4000,
    teacher_steps=900,
    prompts=400,
    samples=4,
    student_steps=600,
    eval_problems=100,
    leaked=5,
    batch_size=16,
)

# init std 0.06 instead of the usual 0.02: from 0.02 these models learn the task's position-dependent
# copying more slowly (benchmarks/demo_init.py: the teacher is 10% vs 95% correct greedy after 250 steps)
TEACHER = dict(arch="qwen2", hidden_size=96, num_layers=3, num_heads=4, num_kv_heads=2, intermediate_size=192,
               initializer_range=0.06, rope_theta=100.0)  # fmt: skip
STUDENT = dict(arch="qwen2", hidden_size=64, num_layers=3, num_heads=4, num_kv_heads=2, intermediate_size=128,
               initializer_range=0.06, rope_theta=100.0)  # fmt: skip
LOGPROBS = 8  # generate stores the teacher's top-8 logprobs per token (the study's KD student uses them)
MAX_TOKENS = 96  # the longest gold response (5 digits) is about 60 tokens
TEACHER_GREEDY_MIN = 0.30  # the teacher must have learned the task (its greedy pass@1) ...
TEACHER_SAMPLED_RANGE = (0.10, 0.90)  # ... and be imperfect when sampled (its share of correct traces)


@dataclass(frozen=True)
class StudySizes:
    """`distill demo --study`: the sweep over the demo's kept traces."""

    budgets: tuple[int, ...] = (100, 200, 400, 800)
    strategies: tuple[str, ...] = ("limo", "s1", "random")
    seeds: int = 2  # the demo's seed and the next ones
    steps_share: float = 1.0  # each point trains this share of the demo students' steps (equal steps)
    band: str = "1/4:3/4"  # limo: the teacher right on 1 to 3 of its 4 samples
    kd_weight: float = 1.0  # SFT + top-K logit KD on every kept trace, same steps as `all` (0: skip)
    opd_steps: int = 20  # on-policy distillation from the `all` student (0: skip)
    opd_batch: int = 16
    opd_lr: float = 1e-3
    jobs: int = 2  # trainings side by side (`distill sweep --jobs`), each with cores // jobs threads


STUDY = StudySizes()


RunCommand = Callable[[list[str]], None]
"""Runs one `distill` command in-process from its arguments (`["eval", "--input", …]`, without
`distill`) and raises `UserError` when it exits non-zero: the CLI passes `distill.cli.run_command`."""


def shown(run_command: RunCommand) -> RunCommand:
    """`run_command` that first prints the command (`$ distill …`, to re-run by hand), then its seconds."""

    def run(args: list[str]) -> None:
        print(f"\n$ distill {' '.join(shlex.quote(a) for a in args)}", file=sys.stderr, flush=True)
        t = time.time()
        try:
            run_command(args)
        except UserError as e:
            raise UserError(f"demo step failed: {e}") from None
        print(f"  ({time.time() - t:.1f} s)", file=sys.stderr, flush=True)

    return run


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    from distill.records import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def prepare(run: Path, sizes: DemoSizes, seed: int) -> None:
    """Task files, tokenizer, random-init teacher and student, and the teacher card."""
    import random

    from distill.demo_task import corpus, gold_trace, make_problems
    from distill.tiny import build_model, build_tokenizer

    data = run / "data"
    made_with = json.dumps({"sizes": asdict(sizes), "seed": seed}, sort_keys=True)
    if (data / "done").exists():
        if (data / "done").read_text().strip() != made_with:
            raise UserError(
                f"{run}: holds a demo run made with other sizes or another seed ({data / 'done'}); "
                "choose another --output or delete the folder"
            )
        return
    data.mkdir(parents=True, exist_ok=True)
    eval_set = make_problems(sizes.eval_problems, seed=seed + 1, digits=sizes.digits)
    held = set(eval_set)
    train = make_problems(sizes.teacher_sft, seed=seed + 2, exclude=held, digits=sizes.digits)
    pool = make_problems(
        sizes.prompts - sizes.leaked, seed=seed + 3, exclude=held | set(train), digits=sizes.digits
    )
    pool = pool + eval_set[: sizes.leaked]  # planted on purpose: the filter's decontamination drops them
    wording = random.Random(seed + 4) if sizes.varied else None
    _write_jsonl(data / "teacher_sft.jsonl", [gold_trace(p, rng=wording) for p in train])
    _write_jsonl(data / "prompts.jsonl", [p.as_prompt() for p in pool])
    _write_jsonl(data / "eval.jsonl", [p.as_prompt() for p in eval_set])
    build_tokenizer(run / "tokenizer", corpus=corpus(train[:2000]), vocab_size=320, individual_digits=True)
    build_model(run / "teacher-init", run / "tokenizer", seed=seed, max_position_embeddings=512, **TEACHER)
    build_model(run / "student-init", run / "tokenizer", seed=seed, max_position_embeddings=512, **STUDENT)
    (run / "teacher.yaml").write_text(
        f"# The demo's teacher: the tiny Qwen2 trained in step 2, sampled at temperature {sizes.temperature:g}.\n"
        "name: demo-teacher\n"
        f"model: {json.dumps(str((run / 'teacher').resolve()))}\n"
        "backend: transformers\n"
        f"temperature: {sizes.temperature:g}\n"
        "top_p: 1.0\n"
        f"max_tokens: {MAX_TOKENS}\n"
        'templates: {math: "{problem}"}\n'
    )
    (data / "done").write_text(made_with + "\n")


def _params(model: Path) -> int:
    """Parameters stored in a saved model (tied embeddings counted once)."""
    import math

    from safetensors import safe_open

    with safe_open(str(model / "model.safetensors"), framework="pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def train_args(
    run: Path, name: str, init: Path, data: Path, steps: int, lr: float, seed: int, batch: int, *extra: str
) -> list[str]:
    """Arguments of `distill train --method full` from `init` on `data` into `run/name`, with the demo's settings."""
    return ["train", "--student", str(init), "--input", str(data), "--method", "full", "--output", str(run / name),
            "--max-steps", str(steps), "--learning-rate", str(lr), "--batch-size", str(batch), "--grad-accum", "1",
            "--warmup-ratio", "0.05", "--lr-scheduler", "cosine", "--max-length", "256", "--seed", str(seed),
            "--logging-steps", "10", "--save-steps", str(steps), "--no-gradient-checkpointing", *extra]  # fmt: skip


def train_model(
    cmd: RunCommand,
    run: Path,
    name: str,
    init: Path,
    data: Path,
    steps: int,
    lr: float,
    seed: int,
    batch: int,
    *extra: str,
) -> None:
    """`distill train --method full` from `init` on `data` into `run/name`, with the demo's settings."""
    cmd(train_args(run, name, init, data, steps, lr, seed, batch, *extra))


def side_by_side(run_command: RunCommand, commands: dict[str, list[str]], logs: Path, jobs: int = 0) -> None:
    """Run independent `distill` commands at once, each in its own process with a share of the cores
    (`distill.side_by_side`; each one's output in `logs/<name>.log`); prints each command and its seconds.

    `run_command` must pickle (a module-level function such as `distill.cli.run_command`). `jobs`:
    at most this many at once (0: all of them).
    """
    from distill.side_by_side import run_side_by_side, threads_per_job

    if not commands:
        return
    jobs = min(jobs or len(commands), len(commands))
    threads = threads_per_job(jobs)
    for _name, args in commands.items():
        print(f"\n$ distill {' '.join(shlex.quote(a) for a in args)}", file=sys.stderr, flush=True)
    print(f"  ({jobs} side by side, {threads} thread(s) each; output in {logs}/)", file=sys.stderr)
    t = time.time()

    def done(name: str, _: Any) -> None:
        print(f"  {name}: done ({time.time() - t:.1f} s)", file=sys.stderr, flush=True)

    try:
        run_side_by_side(run_command, [(n, (a,)) for n, a in commands.items()], jobs, logs, done)
    except UserError as e:
        raise UserError(f"demo step failed: {e}") from None


def eval_model(
    cmd: RunCommand, run: Path, model: Path, mode: str, seed: int, name: str | None = None
) -> float:
    """`distill eval` of `model` on the run's held-out problems (greedy or T=0.7) into
    `run/eval/<name>-<mode>` (name: the model folder's); returns pass@1."""
    temp = "0" if mode == "greedy" else "0.7"
    out = run / "eval" / f"{name or model.name}-{mode}"
    cmd(["eval", "--input", str(model), "--benchmark-file", str(run / "data" / "eval.jsonl"), "--num-samples", "1",
          "--temperature", temp, "--top-p", "1.0", "--max-tokens", str(MAX_TOKENS), "--prompt-template", "{problem}",
          "--batch-size", "256", "--seed", str(seed), "--output", str(out)])  # fmt: skip
    res = json.loads((out / "results.json").read_text())
    return res["benchmarks"]["eval"]["pass@1"]


def accuracy_by_digits(eval_dir: Path) -> dict[int, float]:
    """pass@1 per problem difficulty (digits per operand) from an eval folder's samples."""
    from distill.demo_task import digits_of
    from distill.records import read_records

    by: dict[int, list[bool]] = {}
    for rec in read_records(eval_dir / "eval", prefix="samples-"):
        by.setdefault(digits_of(str(rec["problem_id"])), []).append(bool(rec["correct"]))
    return {d: sum(v) / len(v) for d, v in sorted(by.items())}


def teacher_sampled_accuracy(funnel: dict[str, Any]) -> float:
    """Share of the teacher's verified samples that were correct (from the filter's funnel)."""
    status = funnel.get("correct_status") or {}
    checked = sum(status.values())
    return status.get("correct", 0) / checked if checked else 0.0


def run(cfg: DemoConfig, run_command: RunCommand) -> dict[str, Any]:
    """The demo into `cfg.output`, each step a `distill` command run by `run_command`; returns its numbers."""
    cmd = shown(run_command)
    sizes = QUICK if cfg.quick else FULL
    run_dir, seed, t0 = Path(cfg.output), cfg.seed, time.time()
    print(
        f"distill demo: miniature R1 distillation in {run_dir} ({'quick' if cfg.quick else 'full'})",
        file=sys.stderr,
    )
    print("\n[1/8] task data, tokenizer, random-init teacher and student", file=sys.stderr)
    prepare(run_dir, sizes, seed)
    n_teacher, n_student = _params(run_dir / "teacher-init"), _params(run_dir / "student-init")
    print(f"  teacher {n_teacher / 1e6:.2f}M params, student {n_student / 1e6:.2f}M params", file=sys.stderr)
    acc = {"teacher": make_teacher(cmd, run_dir, sizes, seed)}
    funnel = sample_and_filter(cmd, run_dir, sizes, seed)
    students = train_students(run_command, run_dir, sizes, seed)
    print("\n[7/8] evaluate every model on the held-out problems", file=sys.stderr)
    for name in ("student-init", *students):
        acc[name] = {
            mode: eval_model(cmd, run_dir, run_dir / name, mode, seed) for mode in ("greedy", "sampled")
        }
    by_digits = {
        f"teacher (T={sizes.temperature:g} samples)": teacher_sampled_by_digits(run_dir / "filtered")
    }
    for name in ("teacher", "student-filtered", "student-unfiltered", "student-answers-only"):
        by_digits[name] = accuracy_by_digits(run_dir / "eval" / f"{name}-greedy")
    table = demo_table(acc, sizes, funnel, n_teacher, n_student, time.time() - t0, cfg.quick, by_digits)
    (run_dir / "demo.md").write_text(table)
    result: dict[str, Any] = {"accuracy": acc, "funnel": funnel, "by_digits": by_digits}
    if cfg.study:
        print("\n[study] accuracy against data budget: distill sweep on the kept traces", file=sys.stderr)
        result["study"] = study(run_command, run_dir, sizes, STUDY, seed)
        (run_dir / "demo.md").write_text(table + "\n" + objectives_table(result["study"]["objectives"]))
    print("\n[8/8] report", file=sys.stderr)
    cmd(["report", "--input", str(run_dir)])
    print("\n" + table)
    result["seconds"] = time.time() - t0
    return result


def make_teacher(cmd: RunCommand, run_dir: Path, sizes: DemoSizes, seed: int) -> dict[str, float]:
    """Steps 2-3: train the teacher on gold chain-of-thought and check it has learned the task;
    returns its accuracy {"greedy": fraction, "sampled": fraction}."""
    print("\n[2/8] train the teacher on gold chain-of-thought", file=sys.stderr)
    train_model(cmd, run_dir, "teacher", run_dir / "teacher-init", run_dir / "data" / "teacher_sft.jsonl",
                sizes.teacher_steps, sizes.teacher_lr, seed, sizes.batch_size)  # fmt: skip
    print("\n[3/8] evaluate the teacher (greedy and T=0.7); it must have learned the task", file=sys.stderr)
    acc = {mode: eval_model(cmd, run_dir, run_dir / "teacher", mode, seed) for mode in ("greedy", "sampled")}
    if acc["greedy"] < TEACHER_GREEDY_MIN:
        raise UserError(
            f"demo teacher is {100 * acc['greedy']:.1f}% correct greedy; the demo needs >= "
            f"{100 * TEACHER_GREEDY_MIN:.0f}% (its accuracy jumps sharply with training steps): "
            f"try another --seed, or delete {run_dir / 'teacher'} and re-run"
        )
    return acc


def sample_and_filter(cmd: RunCommand, run_dir: Path, sizes: DemoSizes, seed: int) -> dict[str, Any]:
    """Steps 4-5: sample traces from the teacher (hot: `sizes.temperature`) and filter them; returns the
    funnel and stops when the teacher's sampled accuracy leaves rejection sampling nothing to do."""
    t = f"{sizes.temperature:g}"
    print(f"\n[4/8] sample traces from the teacher at T={t}", file=sys.stderr)
    cmd(["generate", "--teacher", str(run_dir / "teacher.yaml"), "--prompts", str(run_dir / "data" / "prompts.jsonl"),
          "--id-column", "id", "--domain", "math", "--num-samples", str(sizes.samples), "--temperature", t,
          "--seed", str(seed), "--batch-size", "256", "--logprobs", str(LOGPROBS), "--output", str(run_dir / "traces")])  # fmt: skip
    print("\n[5/8] filter: rejection sampling, decontamination, dedup", file=sys.stderr)
    cmd(["filter", "--input", str(run_dir / "traces"), "--output", str(run_dir / "filtered"),
          "--checks", "complete,format,contamination,correct,duplicate",
          "--decontaminate-file", str(run_dir / "data" / "eval.jsonl")])  # fmt: skip
    funnel = json.loads((run_dir / "filtered" / "funnel.json").read_text())
    share = teacher_sampled_accuracy(funnel)
    print(f"  teacher accuracy at T={t} on the sampled traces: {100 * share:.1f}%", file=sys.stderr)
    lo, hi = TEACHER_SAMPLED_RANGE
    if not lo <= share <= hi:
        raise UserError(
            f"demo teacher is {100 * share:.1f}% correct at T={t}; the demo needs {100 * lo:.0f}-{100 * hi:.0f}% "
            "so that rejection sampling has something to reject and enough to keep: try another --seed"
        )
    return funnel


def train_students(run_command: RunCommand, run_dir: Path, sizes: DemoSizes, seed: int) -> list[str]:
    """Step 6: the same student trained on the filtered traces, on all finished traces (right or
    wrong), and on the filtered traces' final answers only, side by side; returns their folder names."""
    print("\n[6/8] train three students (side by side)", file=sys.stderr)
    students = {
        "student-filtered": (run_dir / "filtered" / "kept", ()),
        "student-unfiltered": (run_dir / "traces", ("--allow-unfiltered",)),
        "student-answers-only": (run_dir / "filtered" / "kept", ("--no-reasoning",)),
    }
    commands = {
        name: train_args(
            run_dir,
            name,
            run_dir / "student-init",
            data,
            sizes.student_steps,
            sizes.student_lr,
            seed,
            sizes.batch_size,
            *extra,
        )  # fmt: skip
        for name, (data, extra) in students.items()
    }
    side_by_side(run_command, commands, run_dir / "logs")
    return list(students)


def study(run_command: RunCommand, run: Path, sizes: DemoSizes, st: StudySizes, seed: int) -> dict[str, Any]:
    """`distill sweep` over the demo's kept traces: limo, s1 and random at several budgets and seeds.

    The student-aware signal (s1's "drop what the student solves", and limo's first filter) is the
    pass rate on the prompt pool of the student trained on answers only: what the student gets
    right without learning any reasoning (s1 used non-reasoning models of the student's family).
    Points run `st.jobs` side by side (`distill sweep --jobs`).
    """
    cmd = shown(run_command)
    pool_eval = run / "eval" / "pool-student-answers-only"
    cmd(["eval", "--input", str(run / "student-answers-only"), "--benchmark-file",
          str(run / "data" / "prompts.jsonl"), "--num-samples", "4", "--temperature", "0.7", "--top-p", "1.0",
          "--max-tokens", str(MAX_TOKENS), "--prompt-template", "{problem}", "--batch-size", "256",
          "--seed", str(seed), "--output", str(pool_eval)])  # fmt: skip
    steps = max(1, round(sizes.student_steps * st.steps_share))
    train = {"method": "full", "learning_rate": sizes.student_lr, "batch_size": sizes.batch_size, "grad_accum": 1,
             "warmup_ratio": 0.05, "lr_scheduler": "cosine", "max_length": 256, "logging_steps": 10,
             "save_steps": steps, "gradient_checkpointing": False}  # fmt: skip
    evals = {"num_samples": 1, "temperature": 0, "top_p": 1.0, "max_tokens": MAX_TOKENS,
             "prompt_template": "{problem}", "batch_size": 256}  # fmt: skip
    args = ["sweep", "--input", str(run / "filtered"), "--student", str(run / "student-init"),
            "--output", str(run / "study"), "--budgets", ",".join(map(str, st.budgets)) + ",all",
            "--strategies", ",".join(st.strategies), "--seeds", ",".join(str(seed + i) for i in range(st.seeds)),
            "--benchmark-file", str(run / "data" / "eval.jsonl"), "--steps", str(steps), "--jobs", str(st.jobs),
            "--student-results", str(pool_eval), "--select", "difficulty=teacher", "--select", f"band={st.band}"]  # fmt: skip
    for k, v in train.items():
        args += ["--train", f"{k}={json.dumps(v)}"]
    for k, v in evals.items():
        args += ["--eval", f"{k}={v if isinstance(v, str) else json.dumps(v)}"]
    cmd(args)
    result = json.loads((run / "study" / "sweep.json").read_text())
    seeds = [seed + i for i in range(st.seeds)]
    result["objectives"] = objectives(run_command, run, sizes, st, seeds, steps)
    return result


def _train_seconds(model: Path) -> float:
    """Training wall time of a finished `distill train` output (the last time_s of its train_log.csv)."""
    import csv

    with open(model / "train_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["time_s"]) if rows else 0.0


def _opd_args(run: Path, st: StudySizes, start: Path, out: Path, seed: int) -> list[str]:
    """`distill train --objective opd` from `start` (the sweep's `all` student) with the demo's teacher."""
    return ["train", "--objective", "opd", "--student", str(start), "--teacher", str(run / "teacher"),
            "--prompts", str(run / "data" / "prompts.jsonl"), "--prompt-template", "{problem}",
            "--output", str(out), "--method", "full", "--max-steps", str(st.opd_steps),
            "--learning-rate", str(st.opd_lr), "--batch-size", str(st.opd_batch), "--grad-accum", "1",
            "--max-new-tokens", str(MAX_TOKENS), "--max-length", "256", "--warmup-ratio", "0.05",
            "--logging-steps", "5", "--save-steps", str(st.opd_steps), "--seed", str(seed),
            "--no-gradient-checkpointing"]  # fmt: skip


def objectives(
    run_command: RunCommand, run: Path, sizes: DemoSizes, st: StudySizes, seeds: list[int], steps: int
) -> list[dict[str, Any]]:
    """Issue 16's objectives beside the sweep's full-data student (`all`), per seed; rows for the table.

    kd: SFT plus KL to the teacher's top-K logprobs (stored by the demo's `generate --logprobs`) on
    every kept trace, from the same init for the same steps as `all`: the same data and steps, plus
    the teacher's distributions. opd: `train --objective opd` from the `all` student for
    `opd_steps` steps (the student samples, the teacher scores every token); beside it, more SFT
    from `all` for as many steps as the same wall time buys, the fair comparison at equal compute
    (every training here runs `st.jobs` side by side, as the sweep's points did).
    """
    cmd = shown(run_command)
    folder = run / "objectives"
    kept = run / "filtered" / "kept"
    lr, batch = sizes.student_lr, sizes.batch_size
    start = {s: run / "study" / f"all-seed{s}" / "train" for s in seeds}
    first: dict[str, list[str]] = {}
    for s in seeds:
        if st.kd_weight > 0:
            first[f"kd-seed{s}"] = train_args(folder, f"kd-seed{s}", run / "student-init", kept, steps, lr, s, batch,
                                              "--kd-weight", str(st.kd_weight))  # fmt: skip
        if st.opd_steps > 0:
            first[f"opd-seed{s}"] = _opd_args(run, st, start[s], folder / f"opd-seed{s}", s)
    side_by_side(run_command, first, folder / "logs", st.jobs)
    more = {s: max(1, round(_train_seconds(folder / f"opd-seed{s}") * steps / max(_train_seconds(start[s]), 1e-6)))
            for s in seeds if st.opd_steps > 0}  # fmt: skip
    then = {f"sft-more-seed{s}": train_args(folder, f"sft-more-seed{s}", start[s], kept, more[s], lr, s, batch)
            for s in more}  # fmt: skip
    side_by_side(run_command, then, folder / "logs", st.jobs)

    def row(model: Path, name: str, label: str, seed: int, n: int) -> dict[str, Any]:
        acc = {m: eval_model(cmd, run, model, m, seed, name) for m in ("greedy", "sampled")}
        return {"name": name, "label": label, "seed": seed, "steps": n,
                "train_seconds": round(_train_seconds(model), 1), **acc}  # fmt: skip

    rows: list[dict[str, Any]] = []
    for s in seeds:
        rows.append(row(start[s], f"all-seed{s}", "SFT on every kept trace (the sweep's all)", s, steps))
        if st.kd_weight > 0:
            label = f"SFT + top-{LOGPROBS} logit KD (weight {st.kd_weight:g}), same steps"
            rows.append(row(folder / f"kd-seed{s}", f"kd-seed{s}", label, s, steps))
        if st.opd_steps > 0:
            label = f"all + on-policy distillation ({st.opd_steps} steps)"
            rows.append(row(folder / f"opd-seed{s}", f"opd-seed{s}", label, s, st.opd_steps))
            label = "all + more SFT (the same wall time as on-policy)"
            rows.append(row(folder / f"sft-more-seed{s}", f"sft-more-seed{s}", label, s, more[s]))
    return rows


def objectives_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: each objective's pass@1 per seed and the mean, with steps and training seconds."""
    lines = [
        "## Study: other objectives beside the full-data SFT student",
        "",
        "| model | seed | steps | train s | greedy pass@1 | sampled pass@1 (T=0.7) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['label']} | {r['seed']} | {r['steps']} | {r['train_seconds']:.0f} | "
                     f"{100 * r['greedy']:.1f}% | {100 * r['sampled']:.1f}% |")  # fmt: skip
    for label in dict.fromkeys(r["label"] for r in rows):
        mine = [r for r in rows if r["label"] == label]
        g = sum(r["greedy"] for r in mine) / len(mine)
        t = sum(r["sampled"] for r in mine) / len(mine)
        lines.append(f"| {label}: mean of {len(mine)} seeds | | | | {100 * g:.1f}% | {100 * t:.1f}% |")
    return "\n".join(lines) + "\n"


LABELS = {
    "teacher": "teacher (trained on gold CoT)",
    "student-init": "student, untrained",
    "student-filtered": "student on filtered traces",
    "student-unfiltered": "student on unfiltered traces",
    "student-answers-only": "student on answers only",
}


def teacher_sampled_by_digits(filtered: Path) -> dict[int, float]:
    """Share of the teacher's sampled traces that were correct, per digits (planted eval problems left out)."""
    from distill.demo_task import digits_of
    from distill.records import read_records

    by: dict[int, list[bool]] = {}
    for part in ("kept", "rejected"):
        for rec in read_records(filtered / part):
            if rec.get("verdict") == "contamination":
                continue
            ok = ((rec.get("checks") or {}).get("correct") or {}).get("ok") is True
            by.setdefault(digits_of(str(rec["prompt_id"])), []).append(ok)
    return {d: sum(v) / len(v) for d, v in sorted(by.items())}


def demo_table(acc: dict[str, dict[str, float]], sizes: DemoSizes, funnel: dict[str, Any], n_t: int, n_s: int,
               seconds: float, quick: bool = False, by_digits: dict[str, dict[int, float]] | None = None,
               ) -> str:  # fmt: skip
    digits = f"{min(sizes.digits)} to {max(sizes.digits)}" if len(sizes.digits) > 1 else str(sizes.digits[0])
    lines = [
        "## Demo: a miniature R1 distillation",
        "",
        f"Task: additions of two {digits}-digit numbers with a column-by-column chain of thought (one line "
        f"per digit: more digits, a longer chain); {sizes.eval_problems} held-out problems.",
        f"Teacher: Qwen2, {n_t / 1e6:.2f}M params; students: Qwen2, {n_s / 1e6:.2f}M params. "
        f"Traces: {sizes.prompts} problems × {sizes.samples} samples at T={sizes.temperature:g} → "
        f"{funnel.get('kept', 0)} of {funnel.get('input', 0)} kept by the filter "
        f"(the teacher's samples were {100 * teacher_sampled_accuracy(funnel):.1f}% correct).",
        "",
        "| model | greedy pass@1 | sampled pass@1 (T=0.7) |",
        "|---|---:|---:|",
    ]
    for key, label in LABELS.items():
        if key in acc:
            lines.append(f"| {label} | {100 * acc[key]['greedy']:.1f}% | {100 * acc[key]['sampled']:.1f}% |")
    cols = sorted({d for v in (by_digits or {}).values() for d in v})
    if by_digits and len(cols) > 1:
        lines += [
            "",
            "By difficulty (pass@1 per digits of the operands; greedy unless said):",
            "",
            "| model | " + " | ".join(f"{d} digits" for d in cols) + " |",
            "|---|" + "---:|" * len(cols),
        ]
        for key, row in by_digits.items():
            label = LABELS.get(key, key)
            lines.append(
                f"| {label} | " + " | ".join(f"{100 * row[d]:.0f}%" if d in row else "—" for d in cols) + " |"
            )
    lines += [
        "",
        "What to look for: the student trained on the teacher's verified reasoning (rejection sampling "
        "keeps only traces whose answer is correct) should be the best student, and on the hardest problems "
        "it can beat its teacher's hot samples; the student on unfiltered traces also learns the teacher's "
        "mistakes, which shows most when sampling; without the reasoning, a model this small barely learns "
        "the task. "
        + (
            "Quick mode trains on fewer traces for fewer steps: its numbers are lower and noisier. "
            if quick
            else ""
        )
        + f"This invocation ran {seconds / 60:.1f} min (a re-run skips the steps already done).",
        "",
    ]
    return "\n".join(lines)
