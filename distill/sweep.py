"""The sweep stage: student accuracy against data budget, one line per selection strategy.

    distill sweep -i runs/filtered --student qwen2.5-math-1.5b --budgets 250,1000,4000,all \\
        --strategies limo,s1,random --benchmark math500 --output runs/sweep
    distill sweep ... --seeds 0,1 --equal-epochs --epochs 3      # equal epochs instead of equal steps
    distill sweep ... --plan                                      # points, steps, tokens, GPU hours
    python -c "from distill.sweep import SweepConfig, run; run(SweepConfig('filtered', 'stu', 'out', ['100', 'all']))"

For every (strategy, budget, seed) point it runs the existing stages through their entry functions,
exactly as their commands would: `distill select` (the budgeted subset of `--input`) → `distill train`
(the student on it) → `distill eval` (on the benchmarks). The `all` budget is the full-data student:
one point per seed on every kept trace, with no selection, drawn as the reference line. Each point
is its own folder, `<output>/<strategy>-<budget>-seed<seed>/{select,train,eval}` (`all-seed<seed>`
for the reference), plus `point.json` once it is finished; a re-run skips finished points and the
stages resume unfinished ones.

Training compute: by default every point trains the same number of optimizer steps (`steps`; by
default one epoch of the largest budget), so small subsets are seen for more epochs and points
differ only in which data they saw. `equal_epochs` trains every point for `epochs` epochs instead
(smaller subsets then get fewer steps). Either way sweep.json states steps and tokens per point.

Writes `<output>/sweep.json` (every point: traces, prompts, steps, epochs, tokens, pass@1 per
benchmark, copied from its eval's results.json; per (strategy, budget) the mean, min and max over
seeds), `<output>/sweep.png` (pass@1 against budget, log x-axis, one line per strategy, the full-data
student as a dashed line) and `<output>/sweep.md` (the table).

`--plan` runs nothing: it prints the points with their steps, training tokens and an estimate of
GPU hours for training (6·N FLOPs per token for full fine-tuning, 4·N for LoRA, at `gpu_tflops`
sustained bf16 TFLOP/s per GPU); eval cost depends on the backend and response lengths and is not
included.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from distill.configs import SweepConfig
from distill.errors import UserError
from distill.records import atomic_write_json, atomic_write_text, read_manifest, write_manifest

log = logging.getLogger("distill.sweep")

ALL = "all"
# fields each stage's config gets from the sweep itself (not settable through the overrides)
RESERVED = {
    "select": {"input", "output", "budget", "strategy", "seed", "overwrite"},
    "train": {"student", "data", "output", "seed", "max_steps", "epochs", "plan", "overwrite"},
    "eval": {"model", "output", "benchmarks", "benchmark_files", "benchmarks_dir", "seed", "overwrite"},
}


@dataclass(frozen=True)
class Point:
    strategy: str  # a select strategy, or "all" (every kept trace, no selection)
    budget: int | None  # traces; None for "all"
    seed: int

    @property
    def name(self) -> str:
        if self.budget is None:
            return f"{ALL}-seed{self.seed}"
        return f"{self.strategy}-{self.budget}-seed{self.seed}"


# ---------------------------------------------------------------------------- config


def parse_budgets(values: list[str]) -> tuple[list[int], bool]:
    """(sorted distinct trace budgets, whether `all` is asked for) from `['250', '1000', 'all']`."""
    budgets: set[int] = set()
    full = False
    for v in values:
        v = str(v).strip().lower()
        if v == ALL:
            full = True
            continue
        try:
            n = int(v.replace("_", ""))
        except ValueError:
            raise UserError(f"--budgets: expected trace counts or 'all', got '{v}'") from None
        if n < 1:
            raise UserError(f"--budgets: a budget must be >= 1 trace, got {n}")
        budgets.add(n)
    if not budgets and not full:
        raise UserError("--budgets: give at least one budget (e.g. 250,1000,all)")
    return sorted(budgets), full


def _check_overrides(stage: str, overrides: dict[str, Any], cls: type) -> None:
    names = {f.name for f in dataclasses.fields(cls)}
    for key in overrides:
        if key in RESERVED[stage]:
            raise UserError(f"--{stage} {key}=...: set by the sweep itself; use the sweep's own option")
        if key not in names:
            known = ", ".join(sorted(names - RESERVED[stage]))
            raise UserError(f"--{stage} {key}=...: not an option of distill {stage} (one of: {known})")


def validate(cfg: SweepConfig) -> tuple[list[int], bool]:
    from distill.evaluate import EvalConfig
    from distill.select import STRATEGIES, SelectConfig
    from distill.train import TrainConfig

    budgets, full = parse_budgets(cfg.budgets)
    if budgets and not cfg.strategies:
        raise UserError("--strategies: give at least one of " + ", ".join(STRATEGIES))
    for s in cfg.strategies:
        if s not in STRATEGIES:
            raise UserError(f"--strategies: unknown '{s}' (expected {', '.join(STRATEGIES)})")
    if not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds):
        raise UserError(f"--seeds: expected distinct seeds, got {cfg.seeds}")
    if cfg.steps is not None and cfg.steps < 1:
        raise UserError(f"--steps: expected >= 1, got {cfg.steps}")
    if cfg.jobs < 1:
        raise UserError(f"--jobs: expected >= 1, got {cfg.jobs}")
    if cfg.equal_epochs and cfg.steps is not None:
        raise UserError("--steps and --equal-epochs exclude each other (equal steps, or equal epochs)")
    if cfg.epochs is not None and cfg.epochs <= 0:
        raise UserError(f"--epochs: expected > 0, got {cfg.epochs}")
    if not cfg.plan and not cfg.benchmarks and not cfg.benchmark_files:
        raise UserError("no benchmark given: use --benchmark NAME[,NAME] or --benchmark-file PATH")
    _check_overrides("select", cfg.select, SelectConfig)
    _check_overrides("train", cfg.train, TrainConfig)
    _check_overrides("eval", cfg.eval, EvalConfig)
    return budgets, full


def points(cfg: SweepConfig, budgets: list[int], full: bool) -> list[Point]:
    """The reference points first (one per seed), then strategy × budget × seed."""
    out = [Point(ALL, None, s) for s in cfg.seeds] if (full or cfg.reference) else []
    out += [Point(st, b, s) for st in cfg.strategies for b in budgets for s in cfg.seeds]
    return out


def count_traces(kept: Path) -> int:
    """Records in a kept/ folder (non-empty lines of its shards)."""
    from distill.records import shard_paths

    n = 0
    for path in shard_paths(kept):
        with open(path, "rb") as f:
            n += sum(1 for line in f if line.strip())
    return n


def _train_base(cfg: SweepConfig) -> Any:
    """The TrainConfig shared by every point, resolved against the student card (nothing loaded)."""
    from distill import train

    base = train.TrainConfig(student=cfg.student, plan=True, **cfg.train)
    resolved, card, model = train.resolve(base)
    return resolved, card, model


def planned_steps(cfg: SweepConfig, resolved: Any, largest: int) -> int | None:
    """Optimizer steps every point trains (equal steps), or None with --equal-epochs."""
    if cfg.equal_epochs:
        return None
    if cfg.steps is not None:
        return cfg.steps
    per_step = resolved.batch_size * resolved.grad_accum * (resolved.num_processes or 1)
    return max(1, math.ceil(largest / per_step))


# ---------------------------------------------------------------------------- one point


def _point_spec(cfg: SweepConfig, pt: Point, steps: int | None) -> dict[str, Any]:
    return {
        "strategy": pt.strategy,
        "budget": pt.budget,
        "seed": pt.seed,
        "data": str(Path(cfg.data).resolve()),
        "student": cfg.student,
        "steps": steps,
        "epochs": cfg.epochs if cfg.equal_epochs else None,
        "select": cfg.select if pt.budget is not None else {},
        "train": cfg.train,
        "eval": cfg.eval,
        "benchmarks": cfg.benchmarks,
        "benchmark_files": [str(Path(p).resolve()) for p in cfg.benchmark_files],
    }


def run_point(cfg: SweepConfig, pt: Point, kept: Path, total: int, steps: int | None) -> dict[str, Any]:
    """select → train → eval for one point in `<output>/<point>`; returns its record (point.json)."""
    from distill import evaluate, train
    from distill import select as sel

    folder = Path(cfg.output) / pt.name
    spec = _point_spec(cfg, pt, steps)
    done_file = folder / "point.json"
    if done_file.exists() and not cfg.overwrite:
        old = json.loads(done_file.read_text())
        if old.get("spec") == json.loads(json.dumps(spec)):
            log.info("%s: finished; skipped", pt.name)
            return {**old, "skipped": True}  # "skipped" is for the progress line, not sweep.json
    t0 = time.time()
    record: dict[str, Any] = {"name": pt.name, "strategy": pt.strategy, "budget": pt.budget, "seed": pt.seed}
    if pt.budget is None:
        data, record["traces"], record["prompts"] = kept, total, None
    else:
        scfg = sel.SelectConfig(
            input=cfg.data, output=str(folder / "select"), budget=pt.budget, strategy=pt.strategy,
            seed=pt.seed, overwrite=cfg.overwrite, **cfg.select,
        )  # fmt: skip
        try:
            report = sel.run(scfg)
        except UserError as e:
            if "passes the rule" not in str(e):
                raise
            record.update(spec=spec, error=str(e), traces=0, prompts=0)
            log.warning("%s: %s", pt.name, e)
            return record  # not written: a re-run tries again
        data = folder / "select" / "kept"
        record["traces"], record["prompts"] = report["selected"]["traces"], report["selected"]["prompts"]
        record["budget_filled"] = report["budget_filled"]
    tcfg = train.TrainConfig(
        student=cfg.student, data=str(data), output=str(folder / "train"), seed=pt.seed,
        max_steps=steps, epochs=cfg.epochs if cfg.equal_epochs else None, overwrite=cfg.overwrite,
        **cfg.train,
    )  # fmt: skip
    summary = train.run(tcfg)
    model = summary.get("merged") or str(folder / "train")
    ecfg = evaluate.EvalConfig(
        model=model, output=str(folder / "eval"), benchmarks=list(cfg.benchmarks),
        benchmark_files=list(cfg.benchmark_files), benchmarks_dir=cfg.benchmarks_dir, seed=pt.seed,
        overwrite=cfg.overwrite, **cfg.eval,
    )  # fmt: skip
    results = evaluate.run(ecfg)
    per_bench = {name: r["pass@1"] for name, r in results["benchmarks"].items()}
    examples = summary.get("kept_examples") or summary.get("examples") or record["traces"]
    record.update(
        steps=summary.get("steps"),
        train_tokens=summary.get("train_tokens"),
        examples=examples,
        epochs=round(summary.get("steps", 0) * _per_step(tcfg) / examples, 3) if examples else None,
        final_loss=summary.get("final_loss"),
        pass_at_1=per_bench,
        mean_pass_at_1=sum(per_bench.values()) / len(per_bench),
        results=str(folder / "eval" / "results.json"),
        seconds=round(time.time() - t0, 1),
        spec=spec,
    )
    atomic_write_json(done_file, record)
    return record


def run_points(
    cfg: SweepConfig, pts: list[Point], kept: Path, total: int, steps: int | None
) -> list[dict[str, Any]]:
    """Every point's record (`run_point`), one after the other, or `cfg.jobs` side by side in worker
    processes (`distill.side_by_side`; each point's output in `<output>/logs/<point>.log`)."""
    from distill.side_by_side import run_side_by_side, threads_per_job

    jobs = min(cfg.jobs, len(pts))
    if jobs > 1:
        cores = os.cpu_count() or 1
        more = f" (more than this machine's {cores} cores: slower, not faster)" if jobs > cores else ""
        print(f"sweep: {len(pts)} points, {jobs} side by side with {threads_per_job(jobs)} thread(s) "
              f"each{more}; output in {Path(cfg.output) / 'logs'}/", file=sys.stderr, flush=True)  # fmt: skip
    finished = [0]

    def done(name: str, record: dict[str, Any]) -> None:
        finished[0] += 1
        score = record.get("mean_pass_at_1")
        shown = f"pass@1 {100 * score:.1f}%" if score is not None else record.get("error", "no data")
        took = "finished before, skipped" if record.get("skipped") else f"{record.get('seconds', 0):.0f} s"
        print(f"[sweep {finished[0]}/{len(pts)}] {name}: {shown} ({took})", file=sys.stderr, flush=True)

    calls = [(pt.name, (cfg, pt, kept, total, steps)) for pt in pts]
    return run_side_by_side(run_point_logged, calls, cfg.jobs, Path(cfg.output) / "logs", done)


def run_point_logged(
    cfg: SweepConfig, pt: Point, kept: Path, total: int, steps: int | None
) -> dict[str, Any]:
    """`run_point` in a side-by-side worker: the stages' progress logged as `distill sweep` logs it
    in its own process (select's and train's INFO lines: steps, loss, what was skipped)."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    return run_point(cfg, pt, kept, total, steps)


def _per_step(tcfg: Any) -> int:
    from distill import train

    r, _, _ = train.resolve(dataclasses.replace(tcfg, plan=True))
    return r.batch_size * r.grad_accum * (r.num_processes or 1)


# ---------------------------------------------------------------------------- summary, chart, table


def aggregate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (strategy, budget): mean, min and max over seeds of each benchmark's pass@1."""
    groups: dict[tuple[str, int | None], list[dict[str, Any]]] = {}
    for r in records:
        if "pass_at_1" in r:
            groups.setdefault((r["strategy"], r["budget"]), []).append(r)
    out = []
    for (strategy, budget), rs in groups.items():
        benches = sorted({b for r in rs for b in r["pass_at_1"]})
        out.append(
            {
                "strategy": strategy,
                "budget": budget,
                "seeds": [r["seed"] for r in rs],
                "traces": sum(r["traces"] for r in rs) / len(rs),
                "pass_at_1": {
                    b: {
                        "mean": sum(r["pass_at_1"][b] for r in rs) / len(rs),
                        "min": min(r["pass_at_1"][b] for r in rs),
                        "max": max(r["pass_at_1"][b] for r in rs),
                    }
                    for b in benches
                },
            }
        )
    return out


def draw_chart(summary: list[dict[str, Any]], path: Path, compute: str) -> None:
    """pass@1 against traces (log x), a line per strategy with min-max bars, `all` dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = sorted({b for s in summary for b in s["pass_at_1"]})
    fig, axes = plt.subplots(1, len(benches), figsize=(6.5 * len(benches), 4.2), squeeze=False)
    for ax, bench in zip(axes[0], benches, strict=True):
        for strategy in sorted({s["strategy"] for s in summary if s["budget"] is not None}):
            rows = sorted(
                (s for s in summary if s["strategy"] == strategy and bench in s["pass_at_1"]),
                key=lambda s: s["traces"],
            )
            rows = [s for s in rows if s["traces"] > 0]
            if not rows:
                continue
            x = [s["traces"] for s in rows]
            y = [100 * s["pass_at_1"][bench]["mean"] for s in rows]
            lo = [100 * (s["pass_at_1"][bench]["mean"] - s["pass_at_1"][bench]["min"]) for s in rows]
            hi = [100 * (s["pass_at_1"][bench]["max"] - s["pass_at_1"][bench]["mean"]) for s in rows]
            ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, label=strategy)
        for s in summary:
            if s["budget"] is None and bench in s["pass_at_1"]:
                ax.axhline(
                    100 * s["pass_at_1"][bench]["mean"],
                    linestyle="--",
                    color="grey",
                    label=f"all {s['traces']:.0f} traces",
                )
        ax.set_xscale("log")
        ax.set_xlabel("training traces (log scale)")
        ax.set_ylabel("pass@1 (%)")
        ax.set_title(f"{bench}: {compute}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def sweep_table(summary: list[dict[str, Any]], records: list[dict[str, Any]], compute: str) -> str:
    """Markdown: a row per (strategy, budget), pass@1 mean (min–max over seeds) per benchmark."""
    benches = sorted({b for s in summary for b in s["pass_at_1"]})
    lines = [
        "| strategy | budget | traces | seeds | " + " | ".join(f"{b} pass@1" for b in benches) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(benches),
    ]
    order = sorted(summary, key=lambda s: (s["budget"] is None, s["strategy"], s["budget"] or 0))
    for s in order:
        cells = []
        for b in benches:
            p = s["pass_at_1"].get(b)
            if p is None:
                cells.append("—")
            elif len(s["seeds"]) > 1:
                cells.append(f"{100 * p['mean']:.1f}% ({100 * p['min']:.1f}–{100 * p['max']:.1f})")
            else:
                cells.append(f"{100 * p['mean']:.1f}%")
        budget = ALL if s["budget"] is None else str(s["budget"])
        lines.append(
            f"| {s['strategy']} | {budget} | {s['traces']:.0f} | {len(s['seeds'])} | "
            + " | ".join(cells)
            + " |"
        )
    failed = [r for r in records if "error" in r]
    notes = [f"Training compute: {compute}. Cells: mean over seeds (min–max)."]
    notes += [f"{r['name']}: no data ({r['error']})" for r in failed]
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


# ---------------------------------------------------------------------------- plan


def plan(cfg: SweepConfig, pts: list[Point], total: int, steps: int | None, kept: Path) -> dict[str, Any]:
    """Steps, tokens and training GPU hours per point, printed as a table; nothing is run."""
    from distill import select as sel
    from distill import train_plan
    from distill.records import iter_lines

    resolved, card, model = _train_base(cfg)
    if card is not None and card.architecture.params_b > 0:
        params = card.architecture.params_b * 1e9
    else:
        params = train_plan.architecture_from_model(model).params_b * 1e9
    lengths = []
    for _, _, rec in iter_lines(kept):
        usage = rec.get("usage") or {}
        lengths.append(sel.trace_length(rec) + int(usage.get("prompt_tokens") or 0))
    mean_tokens = sum(lengths) / len(lengths) if lengths else 0.0
    per_step = resolved.batch_size * resolved.grad_accum * (resolved.num_processes or 1)
    flops_per_token = (6 if resolved.method == "full" else 4) * params
    rows = []
    for pt in pts:
        traces = total if pt.budget is None else min(pt.budget, total)
        n_steps = (
            steps if steps is not None else math.ceil((cfg.epochs or resolved.epochs) * traces / per_step)
        )
        tokens = n_steps * per_step * min(mean_tokens, resolved.max_length)
        hours = tokens * flops_per_token / (cfg.gpu_tflops * 1e12) / 3600
        rows.append({"point": pt.name, "traces": traces, "steps": n_steps, "train_tokens": int(tokens),
                     "gpu_hours": round(hours, 3)})  # fmt: skip
    total_hours = sum(r["gpu_hours"] for r in rows)
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"distill sweep --plan: {len(rows)} points, {total} kept traces, student {model}")
    for col in ("point", "traces (at most)", "steps", "train tokens", "train GPU hours"):
        t.add_column(col, justify="left" if col == "point" else "right", no_wrap=col == "point")
    for r in rows:
        t.add_row(
            r["point"], str(r["traces"]), str(r["steps"]), f"{r['train_tokens']:,}", f"{r['gpu_hours']:.2f}"
        )
    t.caption = (
        f"{params / 1e9:.2f}B params, {resolved.method}, {per_step} examples/step, mean example "
        f"{mean_tokens:.0f} tokens; {flops_per_token / params:.0f}·N FLOPs/token at {cfg.gpu_tflops:g} "
        f"TFLOP/s per GPU: {total_hours:.2f} GPU hours of training (eval not included)"
    )
    Console(stderr=True).print(t)
    return {"points": rows, "gpu_hours": round(total_hours, 3), "mean_example_tokens": mean_tokens,
            "params": params, "examples_per_step": per_step}  # fmt: skip


# ---------------------------------------------------------------------------- entry


def run(config: SweepConfig) -> dict[str, Any]:
    """Run (or resume, or plan) the sweep; returns sweep.json's content (or the plan)."""
    from distill import select as sel

    cfg = config
    budgets, full = validate(cfg)
    kept, _ = sel.resolve_input(cfg.data)
    if not Path(kept).exists():
        raise UserError(f"--input {cfg.data}: no such file or folder")
    total = count_traces(kept)
    resolved, _, _ = _train_base(cfg)
    # the largest subset a point trains on (a budget over the pool gets the whole pool at most)
    largest = max([min(b, total) for b in budgets] + ([total] if full or cfg.reference else []))
    steps = planned_steps(cfg, resolved, largest)
    pts = points(cfg, budgets, full)
    if cfg.plan:
        return plan(cfg, pts, total, steps, kept)
    compute = (
        f"equal epochs: {cfg.epochs or resolved.epochs:g} per point"
        if cfg.equal_epochs
        else f"equal steps: {steps} optimizer steps of {resolved.batch_size * resolved.grad_accum} "
        "examples per point"
    )
    out = Path(cfg.output)
    resolved_cfg = {k: v for k, v in asdict(cfg).items() if k not in ("overwrite", "plan", "gpu_tflops")}
    old = read_manifest(out)
    if old is not None and old.get("stage") != "sweep":
        raise UserError(
            f"{out}: holds the output of `distill {old.get('stage')}`, not a sweep; choose another --output"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(
        out, "sweep", resolved_cfg, inputs=[str(kept)], counts={"points": len(pts)}, complete=False
    )
    records = run_points(cfg, pts, kept, total, steps)
    if not any("pass_at_1" in r for r in records):
        raise UserError(f"sweep: no point had data to train on ({records[0].get('error', '')})")
    summary = aggregate(records)
    result = {
        "data": str(kept),
        "student": cfg.student,
        "kept_traces": total,
        "compute": compute,
        "steps": steps,
        "equal_epochs": cfg.equal_epochs,
        "seeds": cfg.seeds,
        "strategies": cfg.strategies,
        "budgets": budgets + ([ALL] if full or cfg.reference else []),
        "points": [{k: v for k, v in r.items() if k not in ("spec", "skipped")} for r in records],
        "summary": summary,
        "chart": str(out / "sweep.png"),
    }
    draw_chart(summary, out / "sweep.png", compute)
    atomic_write_text(out / "sweep.md", sweep_table(summary, records, compute))
    atomic_write_json(out / "sweep.json", result)
    write_manifest(out, "sweep", resolved_cfg, inputs=[str(kept)], counts={"points": len(pts)}, complete=True)
    print("\n" + sweep_table(summary, records, compute), file=sys.stderr)
    return result
