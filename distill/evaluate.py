"""The eval stage: score a model on reasoning benchmarks the way the R1 paper does.

    distill eval -i runs/student --benchmark aime24,math500 --num-samples 4 --output runs/eval
    distill eval -i runs/student --benchmark-file ../shared/benchmarks/aime24.jsonl --output out

Benchmarks come from the registry in `distill/eval_sets.py` (HF dataset id online, local file
offline) or from `--benchmark-file` (jsonl with `id`, `problem`, `answer`). The model is sampled
through the same backends as `distill generate` (transformers, vllm, openai) with the R1 protocol by
default (temperature 0.6, top-p 0.95, long max tokens, n samples per problem) and every sample is
scored by the verifier of `distill filter`. Writes, per benchmark, `<output>/<bench>/samples-*.jsonl`
(one line per sample, resumable) and, for the run, `<output>/results.json`:
pass@1 (mean correctness over the n samples, averaged over problems), cons@n (majority-vote answer),
mean response tokens, the share truncated. A table beside the student card's published R1-Distill
scores is printed at the end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from distill.configs import EvalConfig
from distill.errors import UserError
from distill.records import ShardWriter, atomic_write_json, finished_output, read_records, write_manifest

# ---------------------------------------------------------------------------- metrics


def pass_at_1(correct: Sequence[Sequence[bool]]) -> float:
    """Mean over problems of the mean correctness of the problem's samples (R1's pass@1)."""
    per_problem = [sum(c) / len(c) for c in correct if len(c)]
    return sum(per_problem) / len(per_problem) if per_problem else 0.0


def majority_correct(answers: Sequence[str | None], correct: Sequence[bool], same=None) -> bool:
    """cons@n for one problem: is the most frequent extracted answer a correct one?

    Answers are grouped by `same(a, b)` (math equivalence; default string equality); samples with
    no answer do not vote. Ties go to the group seen first.
    """
    same = same or (lambda a, b: a == b)
    groups: list[list[int]] = []  # indices of samples in each answer group
    for i, a in enumerate(answers):
        if a is None or a == "":
            continue
        for g in groups:
            if same(answers[g[0]], a):
                g.append(i)
                break
        else:
            groups.append([i])
    if not groups:
        return False
    best = max(groups, key=len)  # max keeps the first of equal-length groups
    return any(correct[i] for i in best)


def cons_at_n(answers: Sequence[Sequence[str | None]], correct: Sequence[Sequence[bool]], same=None) -> float:
    votes = [majority_correct(a, c, same) for a, c in zip(answers, correct, strict=True)]
    return sum(votes) / len(votes) if votes else 0.0


def is_truncated(finish_reason: str | None, reasoning_closed: bool | None = True) -> bool:
    """A sample cut at the token limit (`finish_reason` "length"; "max_tokens" on some servers) or
    whose reasoning never closed."""
    return finish_reason in ("length", "max_tokens") or reasoning_closed is False


def _sample_truncated(s: dict[str, Any]) -> bool:
    if "truncated" in s:
        return bool(s["truncated"])
    return is_truncated(s.get("finish_reason"), s.get("reasoning_closed", True))


def summarize(samples: list[dict[str, Any]], same=None) -> dict[str, Any]:
    """Metrics for one benchmark from its per-sample records."""
    by_problem: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        by_problem.setdefault(s["problem_id"], []).append(s)
    for v in by_problem.values():
        v.sort(key=lambda s: s["sample"])
    correct = [[s["correct"] for s in v] for v in by_problem.values()]
    answers = [[s.get("extracted") for s in v] for v in by_problem.values()]
    n = max((len(v) for v in by_problem.values()), default=0)
    tokens = [s.get("completion_tokens", 0) for s in samples]
    return {
        "pass@1": pass_at_1(correct),
        f"cons@{n}": cons_at_n(answers, correct, same),
        "n": n,
        "problems": len(by_problem),
        "samples": len(samples),
        "correct_samples": sum(bool(s["correct"]) for s in samples),
        "unverifiable_samples": sum(s.get("status") == "unverifiable" for s in samples),
        "truncated_share": (sum(_sample_truncated(s) for s in samples) / len(samples)) if samples else 0.0,
        "mean_response_tokens": (sum(tokens) / len(tokens)) if tokens else 0.0,
        "completion_tokens": sum(tokens),
    }


# ---------------------------------------------------------------------------- stage


def _resolve_model(cfg: EvalConfig) -> tuple[str, Any]:
    """The model to load and the student card (if any) with published scores."""
    from distill.cards import is_card, load_student, load_teacher
    from distill.resolve import check_hub, locate

    card = None
    model = cfg.model
    if cfg.student_card:
        card = load_student(cfg.student_card)
    if cfg.backend == "openai":  # the name the server knows the model by, not a path or Hub id
        return model, card
    kind = locate(model, "--input", cards=("students", "teachers"), what="model folder")
    if kind == "local" and not Path(model).is_dir():
        raise UserError(f"--input {model}: not a model folder")
    if kind == "card":
        if is_card(model, "students"):
            student = load_student(model)
            card, model = card or student, student.model
        else:
            model = load_teacher(model).model
    if not Path(model).exists():
        local = "a local model folder (e.g. the output of `distill train`)"
        check_hub(model, "--input", local=local, card=cfg.model if kind == "card" else None)
    return model, card


@dataclass
class Item:
    """One benchmark problem as asked: id, prompt text (options included), gold, domain."""

    prompt_id: str
    problem: str
    answer: str | None
    domain: str


MATH_TEMPLATE = "{problem}\n" + "Please reason step by step, and put your final answer within \\boxed{}."
CHOICE_TEMPLATE = (
    "Answer the following multiple choice question. Think step by step, then put the letter of your "
    "final choice within \\boxed{}.\n\n{problem}"
)
TEMPLATES = {"math": MATH_TEMPLATE, "multiple_choice": CHOICE_TEMPLATE}


def _items(rows: list[dict[str, Any]], seed: int, limit: int | None) -> list[Item]:
    """Rows of `distill.eval_sets.load_benchmark` as eval items; choices are shuffled (seeded)."""
    import random

    items = []
    for r in rows[:limit] if limit else rows:
        problem, answer = r["problem"], r["answer"]
        if r.get("choices"):
            choices = list(r["choices"])  # gold first
            rng = random.Random(f"{seed}:{r['id']}")
            order = list(range(len(choices)))
            rng.shuffle(order)
            letters = "ABCDEFGHIJ"
            options = "\n".join(f"{letters[k]}) {choices[i]}" for k, i in enumerate(order))
            problem = f"{problem}\n\n{options}"
            answer = letters[order.index(0)]
        items.append(
            Item(prompt_id=str(r["id"]), problem=problem, answer=answer, domain=r.get("domain") or "math")
        )
    return items


def _benchmarks(cfg: EvalConfig) -> list[tuple[str, list[Item], str]]:
    """(name, items, template) for every benchmark asked for."""
    from distill.eval_sets import load_benchmark

    specs = [(name, name) for name in cfg.benchmarks] + [(Path(p).stem, p) for p in cfg.benchmark_files]
    if not specs:
        raise UserError("no benchmark given: use --benchmark NAME[,NAME] or --benchmark-file PATH")
    names = [n for n, _ in specs]
    if len(set(names)) != len(names):
        raise UserError(f"benchmark names repeat: {', '.join(names)}")
    out = []
    for name, spec in specs:
        items = _items(load_benchmark(spec, local_dir=cfg.benchmarks_dir), cfg.seed, cfg.limit)
        if not items:
            raise UserError(f"benchmark '{spec}' has no problems")
        ids = [i.prompt_id for i in items]
        if len(set(ids)) != len(ids):
            raise UserError(f"benchmark '{spec}': ids are not unique")
        domain = items[0].domain
        out.append((name, items, TEMPLATES.get(domain, "{problem}")))
    return out


def _score(item: Item, comp: Any, gold_cache: Any) -> dict[str, Any]:
    """The sample's verdict. A truncated sample has no final answer: whatever box its unfinished
    reasoning holds, it is scored incorrect (status `no_answer`) and counted as truncated."""
    from distill.verify import verify

    if is_truncated(comp.finish_reason, getattr(comp, "reasoning_closed", True)):
        return {"status": "no_answer", "correct": False, "extracted": None, "truncated": True}
    v = verify(
        comp.content,
        comp.reasoning,
        domain=item.domain,
        gold=item.answer,
        cache=gold_cache,
        problem=item.problem,
    )
    return {
        "status": v.status,
        "correct": v.status == "correct",
        "extracted": v.extracted,
        "truncated": False,
    }


def run(cfg: EvalConfig) -> dict[str, Any]:
    """Sample and score the model on every benchmark (resuming sample by sample); writes
    `<output>/<bench>/samples-*.jsonl` and `results.json`, prints the table, returns the results."""
    from rich.console import Console

    from distill.verify import same_answer

    console = Console(stderr=True)
    if cfg.num_samples < 1:
        raise UserError("--num-samples must be >= 1")
    out = Path(cfg.output)
    model, card = _resolve_model(cfg)
    benches = _benchmarks(cfg)
    resolved = {k: v for k, v in asdict(cfg).items() if k not in RUNTIME_FIELDS}
    resolved["model"] = model
    # resumes sample by sample (no finished short-cut); a fresh or overwritten folder is cleared
    finished_output(out, "eval", resolved, cfg.overwrite, clear=[*(b[0] for b in benches), "results.json"])
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, "eval", resolved, inputs=[b[0] for b in benches], counts={})

    params = _sampling_params(cfg)
    backend = None
    results: dict[str, Any] = {}
    started = time.time()
    for name, prompts, template in benches:
        bench_dir = out / name
        writer = ShardWriter(bench_dir, prefix="samples-")
        todo = [
            (i, p)
            for i, p in enumerate(prompts)
            if any(f"{p.prompt_id}:{s}" not in writer.done_ids for s in range(cfg.num_samples))
        ]
        if todo:
            if backend is None:
                backend = _make_backend(cfg, model)
            _sample(name, todo, cfg.prompt_template or template, backend, params, writer, console)
        writer.close()
        samples = list(read_records(bench_dir, prefix="samples-"))
        wanted = {p.prompt_id for p in prompts}
        samples = [s for s in samples if s["problem_id"] in wanted and s["sample"] < cfg.num_samples]
        results[name] = summarize(samples, same=same_answer)
    summary = {
        "model": model,
        "backend": cfg.backend,
        "sampling": {
            "temperature": cfg.temperature,
            "top_p": params.top_p,
            "max_tokens": cfg.max_tokens,
            "num_samples": cfg.num_samples,
            "seed": cfg.seed,
        },
        "benchmarks": results,
        "published": dict(card.published) if card else {},
        "published_model": card.distilled_model if card else None,
        "seconds": round(time.time() - started, 2),
    }
    atomic_write_json(out / "results.json", summary)
    counts = {k: {"problems": v["problems"], "samples": v["samples"]} for k, v in results.items()}
    write_manifest(out, "eval", resolved, inputs=[b[0] for b in benches], counts=counts)
    print_table(summary, console)
    return summary


# config fields that change no result (left out of the manifest's config)
RUNTIME_FIELDS = (
    "overwrite",
    "api_key_env",
    "student_card",
    "threads",
    "batch_size",
    "concurrency",
    "timeout",
)


def _sampling_params(cfg: EvalConfig) -> Any:
    """The backends' SamplingParams: n samples per problem; greedy (temperature 0) samples at top-p 1."""
    from distill.teachers import SamplingParams

    return SamplingParams(
        temperature=cfg.temperature,
        top_p=1.0 if cfg.temperature == 0 else cfg.top_p,
        top_k=None,
        max_tokens=cfg.max_tokens,
        n=cfg.num_samples,
        seed=cfg.seed,
    )


def _make_backend(cfg: EvalConfig, model: str) -> Any:
    """The sampling backend (`--backend`: transformers, vllm, openai) serving `model`."""
    from distill.teachers import make_backend

    return make_backend(
        cfg.backend,
        model,
        batch_size=cfg.batch_size,
        threads=cfg.threads,
        base_urls=cfg.base_urls,
        api_key_env=cfg.api_key_env,
        concurrency=cfg.concurrency,
        timeout=cfg.timeout,
        tensor_parallel_size=cfg.tensor_parallel_size,
        max_model_len=cfg.max_model_len,
        gpu_memory_utilization=cfg.gpu_memory_utilization,
    )


def _sample(
    name: str,
    todo: list[tuple[int, Item]],
    template: str,
    backend: Any,
    params: Any,
    writer: ShardWriter,
    console: Any,
) -> None:
    """Sample every problem in `todo` (prompt = `template` with {problem} filled in) and write each
    not-yet-written sample, scored, to `writer`; a progress bar shows problems per second."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from distill.verify import GoldCache

    gold_cache = GoldCache()
    messages = [[{"role": "user", "content": template.replace("{problem}", p.problem)}] for _, p in todo]
    with Progress(
        TextColumn(f"eval {name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(name, total=len(todo), rate="")
        t0 = time.time()
        for done, (j, comps) in enumerate(backend.generate(messages, params), 1):
            _, prompt = todo[j]
            for s, comp in enumerate(comps):
                sid = f"{prompt.prompt_id}:{s}"
                if sid not in writer.done_ids:
                    writer.write(_sample_record(sid, s, prompt, comp, gold_cache))
            bar.update(task, advance=1, rate=f"{done / max(time.time() - t0, 1e-9):.1f} problems/s")


def _sample_record(sid: str, s: int, prompt: Item, comp: Any, gold_cache: Any) -> dict[str, Any]:
    """One line of samples-*.jsonl: the sample as generated and its verdict (`_score`)."""
    return {
        "id": sid,
        "problem_id": prompt.prompt_id,
        "sample": s,
        "answer": prompt.answer,
        "reasoning": comp.reasoning,
        "content": comp.content,
        "finish_reason": comp.finish_reason,
        "reasoning_closed": comp.reasoning_closed,
        "completion_tokens": comp.completion_tokens,
        "prompt_tokens": comp.prompt_tokens,
        **_score(prompt, comp, gold_cache),
    }


def print_table(summary: dict[str, Any], console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(stderr=True)
    pub = summary.get("published") or {}
    table = Table(title=f"eval: {summary['model']}")
    for col in ("benchmark", "pass@1", "cons@n", "n", "problems", "mean tokens", "truncated"):
        table.add_column(col, justify="right" if col != "benchmark" else "left")
    if pub:
        table.add_column(f"published ({summary.get('published_model') or 'R1-Distill'})", justify="right")
    for name, r in summary["benchmarks"].items():
        cons = next(v for k, v in r.items() if k.startswith("cons@"))
        row = [
            name,
            f"{100 * r['pass@1']:.1f}",
            f"{100 * cons:.1f}",
            str(r["n"]),
            str(r["problems"]),
            f"{r['mean_response_tokens']:.0f}",
            f"{100 * r['truncated_share']:.1f}%",
        ]
        if pub:
            row.append(f"{pub[name]:.1f}" if name in pub else "—")
        table.add_row(*row)
    console.print(table)


def load_results(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "results.json" if Path(folder).is_dir() else Path(folder)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no eval results (run `distill eval` first)") from None
