"""The select stage: pick the few thousand traces that matter (s1 / LIMO style small-data distillation).

    distill select --input runs/filtered --budget 8000 --output runs/selected --strategy s1 \\
        --student-results runs/eval-prompts
    distill select --input runs/filtered/kept --budget 1000 --output runs/limo --strategy limo --band 1/32:3/32
    python -c "from distill.select import SelectConfig, run; run(SelectConfig('filtered', 'out', budget=800))"

Reads a `distill filter` output folder (its `kept/` shards, and `rejected/` for the teacher's pass
rate per prompt: samples whose `correct` check passed / all samples of the prompt), or any trace or
chat dataset `distill.ingest` reads (`--format` and the column flags; a dataset's own labels,
`--label-column`, give the pass rate and only samples not labelled wrong are candidates), optionally a
`distill eval` folder run on the same prompts (student pass rate per prompt, matched by
`problem_id` == `prompt_id`), and optionally a local sentence-embedding model for topic clusters.

Strategies (`STRATEGIES`):
- `s1`: drop prompts the student already solves (pass rate >= `solved_at`); draw a domain (then a
  source, then a topic: the `balance` levels) uniformly at random, and within it a prompt with
  probability 2^-(rank+1) by reasoning length, longest first (the s1 recipe).
- `limo`: keep prompts that are hard but solvable: a pass rate inside `band`; balanced draw across
  the `balance` levels, hardest (then longest) first in each group. The pass rate is the
  `difficulty` signal: the student's own (`--student-results`, the s1 / Light-R1 signal; band
  0:1/4 by default) when given, else the teacher's (the LIMO recipe; band 1-3 of 32 samples by
  default, and prompts the student solves dropped first when student results are given).
- `random`: a seeded uniform sample of prompts, the baseline.

Length (`prefer`): which kept traces of a prompt, and which prompts first: `longest` (the s1 and
LIMO recipes), `shortest` (the shortest correct trace per prompt, short-reasoning prompts first:
reported to suit students below ~3B parameters), `mix` (alternately the longest and the shortest
trace), or `random`.

`budget` counts traces; `per_prompt` traces are taken per chosen prompt (1 by default). Writes
`<out>/kept/shard-*.jsonl` (the chosen records, with a `selection` field added) and
`<out>/kept/data.parquet` (`messages` column) exactly like `distill filter`'s `kept/`, so
`distill train` takes it unchanged; `<out>/selection.json` (the rule, what was dropped and why,
counts per domain/source/topic, length and difficulty histograms of the pool and of the subset);
and `<out>/manifest.json`. A finished folder with the same config makes a re-run a no-op.
"""

from __future__ import annotations

import logging
import os
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from distill.configs import SelectConfig
from distill.errors import UserError
from distill.ingest import ReadOptions, TraceReader
from distill.records import (
    ShardWriter,
    atomic_write_json,
    finished_output,
    iter_lines,
    sft_parquet_schema,
    shard_paths,
    to_messages,
    write_manifest,
)

log = logging.getLogger("distill.select")

BALANCE_LEVELS = ("domain", "source", "topic")
PREFER = ("longest", "shortest", "mix", "random")
DEFAULT_PREFER = {"s1": "longest", "limo": "longest", "random": "random"}
DIFFICULTY = ("auto", "teacher", "student")
DEFAULT_BAND = {"teacher": "1/32:3/32", "student": "0:1/4"}
LENGTH_BINS = [0, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768]
RATE_BINS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]

RUNTIME_ONLY = ("overwrite", "embed_batch_size")


# ---------------------------------------------------------------------------- signals


@dataclass
class Prompt:
    """What selection knows about one prompt: its kept traces and its difficulty signals."""

    prompt_id: str
    domain: str = ""
    source: str = ""
    samples: int = 0  # all teacher samples (kept + rejected)
    correct: int = 0  # samples whose `correct` check passed
    traces: list[tuple[int, str]] = field(default_factory=list)  # (length, id) of kept traces
    problem: str = ""
    student: float | None = None  # student pass rate, when known
    topic: int | None = None
    teacher: float | None = None  # teacher pass rate, set once every sample is counted

    @property
    def length(self) -> int:
        """Reasoning length of the prompt: its longest kept trace."""
        return max((n for n, _ in self.traces), default=0)

    @property
    def min_length(self) -> int:
        """Its shortest kept trace."""
        return min((n for n, _ in self.traces), default=0)

    def key(self, level: str) -> str:
        if level == "topic":
            return f"topic-{self.topic}"
        return getattr(self, level) or "(none)"


def trace_length(rec: dict[str, Any]) -> int:
    """Tokens of a trace: usage.completion_tokens, else the filter's length count, else words."""
    usage = rec.get("usage") or {}
    n = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if isinstance(n, int) and n > 0:
        return n
    length = (rec.get("checks") or {}).get("length") or {}
    if isinstance(length, dict) and isinstance(length.get("tokens"), int):
        return int(length["tokens"])
    return len(((rec.get("reasoning") or "") + " " + (rec.get("content") or "")).split())


def resolve_input(path: str | os.PathLike) -> tuple[str, Path | None]:
    """(candidate traces, rejected folder or None): a filter output folder gives its kept/ and
    rejected/; a kept/ folder itself, or any other input `distill.ingest` reads, gives itself."""
    p = Path(path)
    if p.is_dir() and (p / "kept").is_dir():
        kept = p / "kept"
        if not shard_paths(kept):
            raise UserError(f"{kept}: no shard-*.jsonl files (is this a `distill filter` output?)")
        rejected = p / "rejected"
        return str(kept), rejected if rejected.is_dir() else None
    if p.is_dir() and shard_paths(p) and (p.parent / "rejected").is_dir():
        return str(p), p.parent / "rejected"
    return str(path), None


def _progress():  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not sys.stderr.isatty(),
    )


def load_prompts(
    kept: str | os.PathLike,
    rejected: Path | None,
    keep_problem: bool = False,
    read: ReadOptions | None = None,
    dropped: Counter[str] | None = None,
) -> tuple[dict[str, Prompt], bool]:
    """Per-prompt signals; returns (prompts with candidate traces, pass rates known).

    A record `distill filter` never checked (no `checks` field: a raw dump) must pass filter's
    `complete` and `format` checks to be a candidate (unfinished or malformed traces never reach the
    subset); the others are counted in the denominator and, by reason, in `dropped`.

    The teacher pass rate is known when the filter ran the `correct` check and `rejected/` is
    there (the samples it dropped count in the denominator), or when the input carries its own
    correctness labels (then a sample labelled wrong is counted but never selected).
    """
    from distill.checks import Context

    ctx = Context()
    dropped = dropped if dropped is not None else Counter()
    prompts: dict[str, Prompt] = {}
    others: dict[str, list[int]] = {}  # prompt_id -> [samples, correct] of non-candidate samples
    seen_correct = labelled = False
    reader = TraceReader(kept, read or ReadOptions())
    with _progress() as prog:
        task = prog.add_task("read traces", total=None)
        for item in reader:
            rec = item.record
            assert rec is not None
            prog.advance(task)
            pid = str(rec["prompt_id"])
            label = rec.get("label")
            c = (rec.get("checks") or {}).get("correct")
            if isinstance(c, dict):
                seen_correct = True
                good = c.get("ok") is True
            elif label is not None:
                labelled = True
                good = bool(label)
            else:
                good = False
            why = _unfiltered_problem(rec, ctx) if "checks" not in rec else None
            if why is not None:
                dropped[why] += 1
            if rec.get("verdict", "kept") != "kept" or label is False or why is not None:
                acc = others.setdefault(pid, [0, 0])
                acc[0] += 1
                acc[1] += good
                continue
            p = prompts.get(pid)
            if p is None:
                p = prompts[pid] = Prompt(pid, str(rec.get("domain") or ""), str(rec.get("source") or ""))
                if keep_problem:
                    p.problem = str(rec["problem"])
            p.traces.append((trace_length(rec), str(rec["id"])))
            p.samples += 1
            p.correct += good
        if rejected is not None and shard_paths(rejected):
            seen_correct = _count_rejected(rejected, others, prog) or seen_correct
    for note in reader.stats.notes():
        log.info("select: %s", note)
    for pid, (n, c) in others.items():
        if pid in prompts:
            prompts[pid].samples += n
            prompts[pid].correct += c
    known = (seen_correct and rejected is not None) or labelled
    for p in prompts.values():
        p.teacher = p.correct / p.samples if known and p.samples else None
    return prompts, known


def _count_rejected(rejected: Path, others: dict[str, list[int]], prog: Any) -> bool:
    """Add the traces in `rejected/` to `others` (prompt_id -> [samples, correct]); returns whether
    any was judged by filter's `correct` check."""
    seen_correct = False
    task = prog.add_task("read rejected", total=None)
    for item in TraceReader(rejected, allow_empty=True):  # an empty rejected/: none rejected
        rec = item.record
        assert rec is not None
        prog.advance(task)
        acc = others.setdefault(str(rec["prompt_id"]), [0, 0])
        acc[0] += 1
        c = (rec.get("checks") or {}).get("correct")
        if isinstance(c, dict):
            seen_correct = True
            acc[1] += c.get("ok") is True
    return seen_correct


def _unfiltered_problem(rec: dict[str, Any], ctx: Any) -> str | None:
    """Why a record filter never saw cannot be selected (filter's `complete`/`format` check), or None."""
    from distill.checks import check_complete, check_format

    for name, check in (("complete", check_complete), ("format", check_format)):
        r = check(rec, ctx)
        if not r["ok"]:
            return f"{name}: {r.get('why', 'failed')}"
    return None


def _student_files(root: Path) -> list[Path]:
    """The `samples-*.jsonl` files of an eval folder (its benchmark subfolders, or itself)."""
    if not root.is_dir():
        return []
    dirs = [root] + sorted(d for d in root.iterdir() if d.is_dir())
    return [f for d in dirs for f in shard_paths(d, prefix="samples-")]


def load_student_results(folder: str | os.PathLike) -> dict[str, float]:
    """Student pass rate per problem id from a `distill eval` folder (every `<bench>/samples-*.jsonl`)."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"--student-results {root}: no such folder")
    files = _student_files(root)
    scores: dict[str, list[int]] = {}
    for f in files:
        for path, lineno, rec in iter_lines(f):
            if "problem_id" not in rec or "correct" not in rec:
                raise UserError(f"{path}:{lineno}: eval sample is missing 'problem_id' or 'correct'")
            acc = scores.setdefault(str(rec["problem_id"]), [0, 0])
            acc[0] += 1
            acc[1] += bool(rec["correct"])
    if not files:
        raise UserError(
            f"--student-results {root}: no <benchmark>/samples-*.jsonl (is this a `distill eval` output?)"
        )
    return {pid: c / n for pid, (n, c) in scores.items() if n}


def parse_band(text: str) -> tuple[float, float]:
    """`LO:HI` with fractions (`1/32`) or decimals (`0.05`), 0 <= LO <= HI <= 1."""
    parts = text.replace(",", ":").split(":")
    if len(parts) != 2:
        raise UserError(f"--band: expected LO:HI such as 1/32:3/32 or 0.03:0.1, got '{text}'")
    try:
        lo, hi = (float(Fraction(x.strip())) for x in parts)
    except (ValueError, ZeroDivisionError):
        raise UserError(f"--band: expected LO:HI such as 1/32:3/32 or 0.03:0.1, got '{text}'") from None
    if not 0.0 <= lo <= hi <= 1.0:
        raise UserError(f"--band: need 0 <= LO <= HI <= 1, got '{text}'")
    return lo, hi


# ---------------------------------------------------------------------------- topics


def embed_texts(
    model_path: str, texts: list[str], batch_size: int = 32, max_length: int = 512
) -> Any:  # numpy array (n, d), L2-normalised
    """Mean-pooled last hidden states of a local model folder (AutoModel + AutoTokenizer)."""
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    if not Path(model_path).is_dir():
        raise UserError(f"--topic-model {model_path}: not a local model folder")
    try:
        tok = AutoTokenizer.from_pretrained(model_path)
        model = AutoModel.from_pretrained(model_path)
    except (OSError, ValueError) as e:
        raise UserError(f"--topic-model {model_path}: cannot load model/tokenizer ({e})") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).eval()
    out = []
    with _progress() as prog, torch.inference_mode():
        task = prog.add_task("embed prompts", total=len(texts))
        for i in range(0, len(texts), batch_size):
            batch = tok(
                texts[i : i + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            hidden = model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy())
            prog.advance(task, len(texts[i : i + batch_size]))
    return np.concatenate(out) if out else np.zeros((0, 1), dtype=np.float32)


def kmeans(x: Any, k: int, seed: int = 0, iters: int = 100) -> Any:
    """Plain numpy k-means (k-means++ init, Lloyd iterations); returns a label per row."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    centers = [x[rng.integers(n)]]
    d2 = ((x - centers[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        idx = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        centers.append(x[idx])
        d2 = np.minimum(d2, ((x - x[idx]) ** 2).sum(1))
    c = np.stack(centers)
    labels = np.full(n, -1)
    for _ in range(iters):
        dist = (x**2).sum(1)[:, None] - 2 * x @ c.T + (c**2).sum(1)[None, :]
        new = dist.argmin(1)
        if (new == labels).all():
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c[j] = members.mean(0)
    return labels


def assign_topics(prompts: list[Prompt], cfg: SelectConfig) -> None:
    if not prompts:
        return
    assert cfg.topic_model is not None
    order = sorted(prompts, key=lambda p: p.prompt_id)
    emb = embed_texts(cfg.topic_model, [p.problem for p in order], cfg.embed_batch_size, cfg.embed_max_length)
    for p, label in zip(order, kmeans(emb, cfg.topics, cfg.seed), strict=True):
        p.topic = int(label)


# ---------------------------------------------------------------------------- balanced drawing


class _Tree:
    """Prompts grouped by the balance levels; draws a leaf group uniformly level by level."""

    def __init__(self, prompts: list[Prompt], levels: list[str]) -> None:
        self.levels = levels
        self.root: dict[str, Any] | list[Prompt] = self._build(prompts, 0)

    def _build(self, prompts: list[Prompt], depth: int) -> dict[str, Any] | list[Prompt]:
        if depth == len(self.levels):
            return list(prompts)
        groups: dict[str, list[Prompt]] = {}
        for p in prompts:
            groups.setdefault(p.key(self.levels[depth]), []).append(p)
        return {k: self._build(groups[k], depth + 1) for k in sorted(groups)}

    def draw(self, rng: random.Random, pick: Callable[[list[Prompt]], int]) -> Prompt | None:
        """Take one prompt: a uniform child at each level, then `pick(leaf)` inside the leaf."""
        path: list[tuple[dict[str, Any], str]] = []
        node = self.root
        while isinstance(node, dict):
            if not node:
                return None
            key = rng.choice(sorted(node))
            path.append((node, key))
            node = node[key]
        if not node:
            return None
        chosen = node.pop(pick(node))
        # prune emptied groups bottom-up
        child: Any = node
        for parent, key in reversed(path):
            if child:
                break
            del parent[key]
            child = parent
        return chosen


def _geometric(rng: random.Random) -> Callable[[list[Prompt]], int]:
    """s1's within-domain pick: rank r (longest first) with probability 2^-(r+1); the last takes the rest."""

    def pick(leaf: list[Prompt]) -> int:
        i = 0
        while i < len(leaf) - 1 and rng.random() >= 0.5:
            i += 1
        return i

    return pick


def _balanced_order(prompts: list[Prompt], cfg: SelectConfig, rng: random.Random, sort_key, pick_first: bool):
    leaves_sorted = sorted(prompts, key=sort_key)
    tree = _Tree(leaves_sorted, cfg.balance)
    pick = (lambda leaf: 0) if pick_first else _geometric(rng)
    while True:
        p = tree.draw(rng, pick)
        if p is None:
            return
        yield p


# ---------------------------------------------------------------------------- strategies


@dataclass
class Plan:
    """A strategy's answer: the eligible prompts in the order to take them, and what it dropped."""

    order: Iterator[Prompt]
    eligible: list[Prompt]
    dropped: dict[str, int]
    rule: str


def difficulty_signal(cfg: SelectConfig) -> str:
    """Which pass rate drives limo's band and order: `teacher`, or `student` (auto: student if known)."""
    if cfg.difficulty == "auto":
        return "student" if cfg.student_results else "teacher"
    return cfg.difficulty


def band_of(cfg: SelectConfig) -> str:
    """The limo band as given, else the default for the difficulty signal."""
    return cfg.band or DEFAULT_BAND[difficulty_signal(cfg)]


def prefer_of(cfg: SelectConfig) -> str:
    return cfg.prefer or DEFAULT_PREFER[cfg.strategy]


LENGTH_ORDER = {
    "longest": "longest reasoning first",
    "mix": "longest reasoning first",
    "shortest": "shortest reasoning first",
    "random": "in random order",
}


def length_key(prefer: str, prompts: list[Prompt], rng: random.Random) -> Callable[[Prompt], float]:
    """Prompt order by reasoning length for `prefer` (ascending key = taken first).

    longest / mix: by the prompt's longest kept trace, longest first (the s1 and LIMO recipes);
    shortest: by its shortest kept trace, shortest first (small students learn more from short
    traces); random: a seeded random order.
    """
    if prefer == "shortest":
        return lambda p: p.min_length
    if prefer == "random":
        ticket = {p.prompt_id: rng.random() for p in prompts}
        return lambda p: ticket[p.prompt_id]
    return lambda p: -p.length


def strategy_s1(prompts: list[Prompt], cfg: SelectConfig, rng: random.Random) -> Plan:
    dropped = {"student_solved": 0}
    eligible = []
    for p in prompts:
        if p.student is not None and p.student >= cfg.solved_at:
            dropped["student_solved"] += 1
        else:
            eligible.append(p)
    unknown = sum(p.student is None for p in eligible)
    prefer = prefer_of(cfg)
    rule = (
        f"s1: drop prompts the student solves (student pass rate >= {cfg.solved_at}"
        + (
            f"; {unknown} prompts without student results kept"
            if cfg.student_results
            else "; no --student-results: none dropped"
        )
        + f"); draw {' > '.join(cfg.balance) or 'all'} uniformly, then a prompt with probability 2^-(rank+1) "
        f"by reasoning length, {LENGTH_ORDER[prefer]}"
    )
    length = length_key(prefer, eligible, rng)
    order = _balanced_order(eligible, cfg, rng, lambda p: (length(p), p.prompt_id), pick_first=False)
    return Plan(order, eligible, dropped, rule)


def strategy_limo(prompts: list[Prompt], cfg: SelectConfig, rng: random.Random) -> Plan:
    """Hard but solvable: the difficulty signal's pass rate inside the band, hardest first.

    With the teacher signal (the LIMO recipe), prompts the student solves are dropped first when
    student results are given. With the student signal (s1 / Light-R1 style), the band applies
    to the student's own pass rate, and prompts the teacher never solved are still dropped.
    """
    which = difficulty_signal(cfg)
    band = band_of(cfg)
    lo, hi = parse_band(band)
    eps = 1e-9
    dropped = {"too_easy": 0, "too_hard": 0}
    check_solved = which == "teacher" and cfg.student_results is not None
    if check_solved:
        dropped["student_solved"] = 0
    if which == "student":
        dropped["no_student_result"] = 0
    eligible = []
    for p in prompts:
        rate = p.teacher if which == "teacher" else p.student
        if check_solved and p.student is not None and p.student >= cfg.solved_at:
            dropped["student_solved"] += 1
        elif rate is None:
            dropped["no_student_result"] += 1
        elif rate > hi + eps:
            dropped["too_easy"] += 1
        elif rate < lo - eps or (p.teacher is not None and p.correct == 0):
            dropped["too_hard"] += 1
        else:
            eligible.append(p)
    prefer = prefer_of(cfg)
    solved = f"drop prompts the student solves (pass rate >= {cfg.solved_at}); " if check_solved else ""
    rule = (
        f"limo: {solved}keep prompts the {which} solves in {band} of its samples (pass rate in "
        f"[{lo:.4g}, {hi:.4g}]"
        + (", at least one correct" if which == "teacher" else ", the teacher right at least once")
        + f"); draw {' > '.join(cfg.balance) or 'all'} uniformly, hardest for the {which} first, "
        f"then {LENGTH_ORDER[prefer]}"
    )
    length = length_key(prefer, eligible, rng)

    def hardest(p: Prompt) -> tuple[float, float, str]:
        rate = p.teacher if which == "teacher" else p.student
        assert rate is not None
        return (rate, length(p), p.prompt_id)

    order = _balanced_order(eligible, cfg, rng, hardest, pick_first=True)
    return Plan(order, eligible, dropped, rule)


def strategy_random(prompts: list[Prompt], cfg: SelectConfig, rng: random.Random) -> Plan:
    order = sorted(prompts, key=lambda p: p.prompt_id)
    rng.shuffle(order)
    return Plan(iter(order), list(prompts), {}, f"random: a uniform sample of prompts, seed {cfg.seed}")


STRATEGIES: dict[str, Callable[[list[Prompt], SelectConfig, random.Random], Plan]] = {
    "s1": strategy_s1,
    "limo": strategy_limo,
    "random": strategy_random,
}


def choose_traces(p: Prompt, k: int, prefer: str, seed: int, rank: int = 0) -> list[str]:
    """Ids of up to `k` kept traces of a prompt: longest, shortest, mix or a seeded random few.

    `mix` alternates long and short: the longest, then the shortest, then the next longest ...,
    starting with the longest on even pick ranks and the shortest on odd ones, so that one trace
    per prompt gives a subset half long, half short.
    """
    if prefer == "mix":
        by_length = sorted(p.traces, key=lambda x: (x[0], x[1]))
        out: list[str] = []
        lo, hi, take_long = 0, len(by_length) - 1, rank % 2 == 0
        while len(out) < k and lo <= hi:
            if take_long:
                out.append(by_length[hi][1])
                hi -= 1
            else:
                out.append(by_length[lo][1])
                lo += 1
            take_long = not take_long
        return out
    if prefer == "random":
        ids = sorted(t for _, t in p.traces)
        random.Random(f"{seed}:{p.prompt_id}").shuffle(ids)
        return ids[:k]
    sign = -1 if prefer == "longest" else 1
    return [t for _, t in sorted(p.traces, key=lambda x: (sign * x[0], x[1]))[:k]]


def select(prompts: dict[str, Prompt], cfg: SelectConfig) -> tuple[dict[str, tuple[int, Prompt]], Plan]:
    """Run the strategy; returns trace id -> (pick rank, prompt) for the subset, and the plan."""
    rng = random.Random(cfg.seed)
    plan = STRATEGIES[cfg.strategy](sorted(prompts.values(), key=lambda p: p.prompt_id), cfg, rng)
    prefer = prefer_of(cfg)
    chosen: dict[str, tuple[int, Prompt]] = {}
    rank = 0
    for p in plan.order:
        room = cfg.budget - len(chosen)
        if room <= 0:
            break
        for tid in choose_traces(p, min(cfg.per_prompt, room), prefer, cfg.seed, rank):
            chosen[tid] = (rank, p)
        rank += 1
    return chosen, plan


# ---------------------------------------------------------------------------- report


def histogram(values: list[float], edges: list[float], overflow: bool = False) -> dict[str, int]:
    """Counts per bin `[a, b)`, the last bin closed; with `overflow`, a `>last` bin too."""
    out = {}
    for i in range(len(edges) - 1):
        a, b = edges[i], edges[i + 1]
        last = i == len(edges) - 2
        out[f"{a:g}-{b:g}"] = sum(1 for v in values if a <= v < b or (last and v == b))
    if overflow:
        out[f">{edges[-1]}"] = sum(1 for v in values if v > edges[-1])
    return out


def _describe(prompts: list[Prompt], lengths: list[int], levels: list[str]) -> dict[str, Any]:
    teacher = [p.teacher for p in prompts if p.teacher is not None]
    student = [p.student for p in prompts if p.student is not None]
    d: dict[str, Any] = {
        "prompts": len(prompts),
        "traces": len(lengths),
        "domains": dict(sorted(Counter(p.domain or "(none)" for p in prompts).items())),
        "sources": dict(sorted(Counter(p.source or "(none)" for p in prompts).items())),
        "length": {
            "mean": round(sum(lengths) / len(lengths), 1) if lengths else 0.0,
            "histogram": histogram(lengths, LENGTH_BINS, overflow=True),
        },
        "teacher_pass_rate": {
            "known": len(teacher),
            "mean": round(sum(teacher) / len(teacher), 4) if teacher else None,
            "histogram": histogram(teacher, RATE_BINS),
        },
        "student_pass_rate": {
            "known": len(student),
            "mean": round(sum(student) / len(student), 4) if student else None,
            "histogram": histogram(student, RATE_BINS),
        },
    }
    if "topic" in levels:
        d["topics"] = dict(sorted(Counter(p.key("topic") for p in prompts).items()))
    return d


def build_report(
    cfg: SelectConfig,
    prompts: dict[str, Prompt],
    plan: Plan,
    chosen: dict[str, tuple[int, Prompt]],
    extra: dict,
) -> dict[str, Any]:
    lengths = {tid: n for p in prompts.values() for n, tid in p.traces}
    picked = list({id(p): p for _, p in chosen.values()}.values())
    return {
        "strategy": cfg.strategy,
        "rule": plan.rule,
        "budget": cfg.budget,
        "seed": cfg.seed,
        "per_prompt": cfg.per_prompt,
        "prefer": prefer_of(cfg),
        "difficulty": difficulty_signal(cfg) if cfg.strategy == "limo" else None,
        "band": band_of(cfg) if cfg.strategy == "limo" else None,
        "balance": cfg.balance,
        "length_unit": "tokens (usage.completion_tokens, else the filter's length count, else words)",
        "dropped_by_rule": plan.dropped,
        "budget_filled": len(chosen) >= cfg.budget,
        **extra,
        "pool": _describe(list(prompts.values()), list(lengths.values()), cfg.balance),
        "eligible": _describe(plan.eligible, [n for p in plan.eligible for n, _ in p.traces], cfg.balance),
        "selected": _describe(picked, [lengths[t] for t in chosen], cfg.balance),
    }


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    sel, pool = report["selected"], report["pool"]
    t = Table(
        title=f"distill select ({report['strategy']}): {sel['traces']} traces / budget {report['budget']}"
    )
    t.add_column("domain")
    t.add_column("pool prompts", justify="right")
    t.add_column("selected prompts", justify="right")
    for dom, n in pool["domains"].items():
        t.add_row(dom, str(n), str(sel["domains"].get(dom, 0)))
    t.caption = (
        f"{report['rule']}\nmean length: pool {pool['length']['mean']}, selected {sel['length']['mean']}; "
        f"dropped by rule: {report['dropped_by_rule'] or 'none'}"
    )
    Console(stderr=True).print(t)


# ---------------------------------------------------------------------------- writing


def _chosen_records(
    kept: str, chosen: dict[str, tuple[int, Prompt]], read: ReadOptions
) -> Iterator[dict[str, Any]]:
    """The chosen records in input order (the input read again, the same way)."""
    with _progress() as prog:
        task = prog.add_task("write subset", total=len(chosen))
        for item in TraceReader(kept, read):
            rec = item.record
            if rec is not None and str(rec["id"]) in chosen:
                prog.advance(task)
                yield rec


def write_subset(kept: str, out_kept: Path, chosen: dict[str, tuple[int, Prompt]], cfg: SelectConfig) -> int:
    """Read the input again and write the chosen records (input order) + data.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_kept.mkdir(parents=True, exist_ok=True)
    for p in shard_paths(out_kept):
        p.unlink()
    schema = sft_parquet_schema()
    tmp = out_kept / ".data.parquet.tmp"
    pw = pq.ParquetWriter(tmp, schema)
    rows: list[dict[str, Any]] = []
    n = 0
    try:
        with ShardWriter(out_kept) as w:
            for rec in _chosen_records(kept, chosen, cfg.read):
                rank, p = chosen[str(rec["id"])]
                rec["selection"] = {
                    "strategy": cfg.strategy,
                    "rank": rank,
                    "teacher_pass_rate": p.teacher,
                    "student_pass_rate": p.student,
                    "length": trace_length(rec),
                    "group": {lvl: p.key(lvl) for lvl in cfg.balance},
                }
                w.write(rec)
                n += 1
                rows.append(
                    {
                        "id": str(rec["id"]),
                        "prompt_id": p.prompt_id,
                        "domain": str(rec.get("domain", "")),
                        "source": str(rec.get("source", "")),
                        "messages": to_messages(rec),
                    }
                )
                if len(rows) >= 1000:
                    pw.write_table(pa.Table.from_pylist(rows, schema=schema))
                    rows = []
        if rows:
            pw.write_table(pa.Table.from_pylist(rows, schema=schema))
        pw.close()
        os.replace(tmp, out_kept / "data.parquet")
    finally:
        if tmp.exists():
            pw.close()
            tmp.unlink()
    return n


# ---------------------------------------------------------------------------- entry


def _validate(cfg: SelectConfig) -> None:
    if cfg.strategy not in STRATEGIES:
        raise UserError(f"--strategy: unknown '{cfg.strategy}' (expected {', '.join(STRATEGIES)})")
    if cfg.budget < 1:
        raise UserError(f"--budget: expected a positive number of traces, got {cfg.budget}")
    if cfg.per_prompt < 1:
        raise UserError(f"--per-prompt: expected >= 1, got {cfg.per_prompt}")
    if cfg.prefer is not None and cfg.prefer not in PREFER:
        raise UserError(f"--prefer: expected one of {', '.join(PREFER)}, got '{cfg.prefer}'")
    if not 0.0 < cfg.solved_at <= 1.0:
        raise UserError(f"--solved-at: expected a pass rate in (0, 1], got {cfg.solved_at}")
    for lvl in cfg.balance:
        if lvl not in BALANCE_LEVELS:
            raise UserError(f"--balance: unknown level '{lvl}' (expected {', '.join(BALANCE_LEVELS)})")
    if "topic" in cfg.balance and cfg.topic_model is None:
        raise UserError("--balance topic needs --topic-model (a local sentence-embedding model folder)")
    if cfg.topics < 1:
        raise UserError(f"--topics: expected >= 1, got {cfg.topics}")
    if cfg.difficulty not in DIFFICULTY:
        raise UserError(f"--difficulty: expected one of {', '.join(DIFFICULTY)}, got '{cfg.difficulty}'")
    if cfg.difficulty == "student" and not cfg.student_results:
        raise UserError(
            "--difficulty student needs --student-results (a `distill eval` folder run on the prompts)"
        )
    if cfg.strategy == "limo":
        parse_band(band_of(cfg))
    if Path(cfg.output).resolve() == Path(cfg.input).resolve():
        raise UserError("--output: must differ from --input")


def run(config: SelectConfig) -> dict[str, Any]:
    """Select a budgeted subset of `config.input` into `config.output`; returns the report."""
    cfg = config
    if cfg.topic_model is not None and "topic" not in cfg.balance:
        cfg.balance = [*cfg.balance, "topic"]
    _validate(cfg)
    kept, rejected = resolve_input(cfg.input)
    out = Path(cfg.output)
    resolved = _manifest_config(cfg, kept, rejected)
    done = finished_output(out, "select", resolved, cfg.overwrite, result="selection.json")
    if done is not None:
        log.info("%s: already selected with this config; nothing to do", out)
        print_report(done)
        return done

    prompts, extra, dropped = _load_pool(cfg, kept, rejected)
    chosen, plan = select(prompts, cfg)
    report = build_report(cfg, prompts, plan, chosen, extra)
    if not chosen:
        raise UserError(
            f"{cfg.strategy}: no prompt of {kept} passes the rule ({plan.rule}); dropped: {plan.dropped}; "
            f"unfinished/malformed traces: {dict(dropped) or 'none'}; "
            f"teacher pass rates in the pool: {report['pool']['teacher_pass_rate']['histogram']}"
        )
    input_files = [str(i[0]) for i in resolved["input_files"]]
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, "select", resolved, inputs=input_files, complete=False)
    n = write_subset(kept, out / "kept", chosen, cfg)
    from distill import logit_kd

    if carried := logit_kd.carry([kept], out / "kept"):  # teacher logprobs (generate --logprobs)
        log.info("carried the teacher logprobs of %d selected traces", carried)
    atomic_write_json(out / "selection.json", report)
    counts = {
        "prompts_in": len(prompts),
        "eligible_prompts": len(plan.eligible),
        "selected_prompts": report["selected"]["prompts"],
        "selected_traces": n,
    }
    write_manifest(out, "select", resolved, inputs=input_files, counts=counts, complete=True)
    if not report["budget_filled"]:
        log.warning("select: only %d traces pass the %s rule (budget %d)", n, cfg.strategy, cfg.budget)
    print_report(report)
    return report


def _manifest_config(cfg: SelectConfig, kept: str, rejected: Path | None) -> dict[str, Any]:
    """The config a finished output must match: the options (runtime ones left out) and every input
    file with its size (`input_files`), so changed inputs select afresh."""
    inputs = TraceReader(kept, cfg.read).inputs()
    files = (shard_paths(rejected) if rejected else []) + (
        _student_files(Path(cfg.student_results)) if cfg.student_results else []
    )
    inputs += [[str(p), p.stat().st_size] for p in files]
    resolved = {k: v for k, v in asdict(cfg).items() if k not in RUNTIME_ONLY}
    resolved["input_files"] = inputs
    return resolved


def _load_pool(
    cfg: SelectConfig, kept: str, rejected: Path | None
) -> tuple[dict[str, Prompt], dict[str, Any], Counter[str]]:
    """(prompts by id, the report's notes on them, unfiltered traces dropped by reason): the prompts
    with their traces, teacher pass rates, and (when asked) student pass rates and topics."""
    dropped: Counter[str] = Counter()
    prompts, known = load_prompts(
        kept, rejected, keep_problem=cfg.topic_model is not None, read=cfg.read, dropped=dropped
    )
    extra: dict[str, Any] = {"teacher_pass_rate_known": known}
    if dropped:
        extra["unfiltered_dropped"] = dict(dropped.most_common())
        log.warning(
            "select: %d unfiltered traces fail filter's complete/format checks and are never selected (%s); "
            "run `distill filter` first for the full checks",
            sum(dropped.values()),
            ", ".join(f"{n} {why}" for why, n in dropped.most_common()),
        )
    if cfg.strategy == "limo" and difficulty_signal(cfg) == "teacher" and not known:
        why = (
            "the input has neither a rejected/ folder beside kept/ nor correctness labels (--label-column)"
            if rejected is None
            else "the filter ran without the `correct` check"
        )
        raise UserError(
            f"--strategy limo needs the teacher pass rate per prompt, but {why} ({kept}); "
            "or give --student-results to use the student's pass rate"
        )
    if cfg.student_results:
        extra["student_results"] = _attach_student_results(prompts, cfg.student_results, kept)
    if cfg.topic_model is not None:
        assign_topics(list(prompts.values()), cfg)
        extra["topics"] = {"model": cfg.topic_model, "k": cfg.topics}
    return prompts, extra, dropped


def _attach_student_results(prompts: dict[str, Prompt], results: str, kept: str) -> dict[str, int]:
    """Set each prompt's student pass rate from an eval folder (by problem_id = prompt_id); returns
    {problems, matched_prompts}; none matching is an error."""
    student = load_student_results(results)
    matched = 0
    for p in prompts.values():
        if p.prompt_id in student:
            p.student = student[p.prompt_id]
            matched += 1
    if not matched:
        raise UserError(
            f"--student-results {results}: no problem_id matches a prompt_id of {kept} "
            "(run `distill eval` on the same prompts)"
        )
    return {"problems": len(student), "matched_prompts": matched}
