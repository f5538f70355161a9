"""The filter checks: each a plain function `(record, ctx) -> dict` with at least `ok: bool`.

    ctx = Context(think_tags=("<think>", "</think>"))
    check_complete(record, ctx)  -> {"ok": False, "why": "finish_reason=length"}

Per-record checks (run in worker processes, cheap ones first, in `RECORD_CHECKS` order):
`complete`, `format`, `length`, `language`, `readability`, `contamination`, `correct`.
Global checks run afterwards over the records that passed all of those, in input order:
`duplicate` (exact (prompt, response) duplicates after normalisation; optional MinHash
near-duplicate prompts) and `per_prompt` (at most k samples per prompt, shortest or seeded random).
`distill/filter.py` runs them; the README describes each.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from distill.ingest import ALL_MARKERS, find_marker, has_marker
from distill.verify import GoldCache, JudgeConfig, verify_record

# ---------------------------------------------------------------------------- context


@dataclass
class Context:
    """What the checks need, built once per worker from the stage config."""

    think_tags: tuple[str, str] = ("<think>", "</think>")
    count_tokens: Callable[[str], int] = lambda s: len(s.split())
    min_tokens: int | None = None
    max_tokens: int | None = None
    max_foreign_share: float = 0.02  # share of letters outside the prompt's script
    max_paragraph_words: int = 0  # 0: rule off
    allow_code_fences: bool = False  # in the reasoning of non-code domains
    keep_unverifiable: bool = False
    verify_timeout_s: float = 5.0
    judge: JudgeConfig | None = None
    sandbox_limits: Any = None
    ngram: int = 8
    bench: BenchIndex | None = None  # the benchmarks' n-grams (see `build_bench_index`)
    gold_cache: GoldCache = field(default_factory=GoldCache)


# ---------------------------------------------------------------------------- helpers


def split_think(text: str, tags: tuple[str, str]) -> tuple[str | None, str, bool]:
    """Split raw `<think>…</think>answer` text (tags in any case): (reasoning or None, answer, closed)."""
    open_t, close_t = tags
    body = text.lstrip()
    o0, o1 = find_marker(body, open_t)
    if o0 == 0:
        body = body[o1:]
    elif find_marker(body, close_t)[0] < 0:
        return None, text, True
    c0, c1 = find_marker(body, close_t)
    if c0 < 0:
        return body, "", False
    return body[:c0], body[c1:], True


def reasoning_and_answer(rec: dict[str, Any], tags: tuple[str, str]) -> tuple[str, str, bool]:
    """(reasoning, answer, closed) of a record, splitting tags left inside `content` if needed."""
    reasoning = rec.get("reasoning") or ""
    content = rec.get("content") or ""
    closed = rec.get("reasoning_closed")
    if not reasoning.strip():
        r, a, c = split_think(content, tags)
        if r is not None:
            return r, a, c if closed is None else bool(closed) and c
    return reasoning, content, True if closed is None else bool(closed)


_WS = re.compile(r"\s+")


def normalize_text(s: str) -> str:
    """Lower case, single spaces (open-r1's decontamination normalisation)."""
    return _WS.sub(" ", s.lower()).strip()


# ------------------------------------------------------------------ decontamination n-grams

_TOKEN_RE = re.compile(r"\w+")
MAX_PROBLEMS_PER_NGRAM = 3  # an n-gram in this many benchmark problems is a stock phrase: ignored
MIN_SHARE = 0.5  # share of a benchmark problem's n-grams a prompt must hold to be a copy of it


def ngram_tokens(text: str) -> list[str]:
    """Lower-cased word and number tokens; punctuation, `$`, `\\` and spacing are dropped, so
    `$x^2+1$` and `$x^2 + 1$` give the same tokens."""
    return _TOKEN_RE.findall(text.lower())


def _token_ngrams(tokens: list[str], n: int) -> set[str]:
    return {" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


@dataclass
class BenchIndex:
    """Benchmark problems' informative n-grams, for the contamination check.

    `grams`: n-gram -> indices into `problems`; `problems`: (label, number of informative n-grams);
    `short_lengths`: token counts of problems shorter than n (each is one n-gram, matched whole);
    `stock`: how many n-grams were dropped as stock phrases.
    """

    n: int
    grams: dict[str, list[int]]
    problems: list[tuple[str, int]]
    short_lengths: set[int]
    stock: int = 0


def build_bench_index(
    benchmarks: list[tuple[str, list[dict[str, Any]]]], n: int, max_problems: int = MAX_PROBLEMS_PER_NGRAM
) -> BenchIndex:
    """Index the problems of `(label, rows)` benchmarks by their word n-grams.

    An n-gram found in `max_problems` or more benchmark problems (all benchmarks together) is a
    stock phrase ("where $m$ and $n$ are relatively prime positive integers") and is ignored,
    unless a problem has nothing else. A problem shorter than n tokens is one n-gram.
    """
    per_problem: list[tuple[str, set[str]]] = []
    short: set[int] = set()
    for label, rows in benchmarks:
        for r in rows:
            toks = ngram_tokens(str(r.get("problem") or ""))
            if not toks:
                continue
            if len(toks) < n:
                short.add(len(toks))
                grams = {" ".join(toks)}
            else:
                grams = _token_ngrams(toks, n)
            per_problem.append((f"{label}:{r['id']}", grams))
    df: dict[str, int] = {}
    for _, grams in per_problem:
        for g in grams:
            df[g] = df.get(g, 0) + 1
    index: dict[str, list[int]] = {}
    problems: list[tuple[str, int]] = []
    for k, (label, grams) in enumerate(per_problem):
        informative = {g for g in grams if df[g] < max_problems} or grams
        problems.append((label, len(informative)))
        for g in informative:
            index.setdefault(g, []).append(k)
    stock = sum(c >= max_problems for c in df.values())
    return BenchIndex(n, index, problems, short, stock)


def contamination(prompt: str, bench: BenchIndex, min_share: float = MIN_SHARE) -> dict[str, Any] | None:
    """The benchmark problem `prompt` copies, or None.

    A prompt copies a benchmark problem when it holds at least `min_share` of that problem's
    informative n-grams (case, spacing and punctuation aside). Returns {"match": label, "share",
    "text": the longest run of the prompt's tokens covered by matching n-grams}.
    """
    toks = ngram_tokens(prompt)
    starts: dict[str, list[int]] = {}  # n-gram of the prompt -> where it starts
    for size in {bench.n, *bench.short_lengths}:
        for i in range(len(toks) - size + 1):
            starts.setdefault(" ".join(toks[i : i + size]), []).append(i)
    counts: dict[int, int] = {}
    for g in starts:
        for k in bench.grams.get(g, ()):
            counts[k] = counts.get(k, 0) + 1
    best, share = None, 0.0
    for k, c in counts.items():
        s = c / bench.problems[k][1]
        if s > share:
            best, share = k, s
    if best is None or share < min_share:
        return None
    covered = [False] * len(toks)
    for g, where in starts.items():
        if best in bench.grams.get(g, ()):
            size = g.count(" ") + 1
            for i in where:
                covered[i : i + size] = [True] * size
    span, start = (0, 0), 0
    for i, c in enumerate([*covered, False]):
        if not c:
            if i - start > span[1] - span[0]:
                span = (start, i)
            start = i + 1
    text = " ".join(toks[span[0] : span[1]])[:300]
    return {"match": bench.problems[best][0], "share": round(share, 3), "text": text}


def _script(ch: str) -> str | None:
    """A coarse script for a letter: latin, cjk, cyrillic, arabic, ... (Greek counts as math)."""
    if not ch.isalpha():
        return None
    o = ord(ch)
    if o < 0x250 or 0x1E00 <= o <= 0x1EFF:
        return "latin"
    if 0x370 <= o <= 0x3FF or 0x1D400 <= o <= 0x1D7FF:
        return None  # Greek letters and math alphanumerics: notation, not language
    if (
        0x4E00 <= o <= 0x9FFF
        or 0x3400 <= o <= 0x4DBF
        or 0x3040 <= o <= 0x30FF
        or 0xAC00 <= o <= 0xD7AF
        or 0xF900 <= o <= 0xFAFF
        or 0x20000 <= o <= 0x2FFFF
    ):
        return "cjk"
    try:
        return unicodedata.name(ch).split(" ")[0].lower()
    except ValueError:
        return "other"


def script_counts(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ch in text:
        s = _script(ch)
        if s is not None:
            counts[s] = counts.get(s, 0) + 1
    return counts


# ---------------------------------------------------------------------------- per-record checks


def check_complete(rec: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """The teacher stopped on its own and closed its reasoning block."""
    fr = rec.get("finish_reason")
    if fr != "stop":
        return {"ok": False, "why": f"finish_reason={fr}"}
    _, _, closed = reasoning_and_answer(rec, ctx.think_tags)
    if not closed:
        return {"ok": False, "why": "reasoning block not closed"}
    return {"ok": True}


# Special-token text of chat tokenizers: `<|im_end|>`, `<|eot_id|>`, `<|start_header_id|>` (ChatML,
# Llama 3, Phi, gpt-oss), `<｜end▁of▁sentence｜>`, `<｜Assistant｜>` (DeepSeek, full-width bars),
# Gemma's turn markers and `<eos>`/`<bos>`, Mistral's `[INST]`. A student trained on it learns to
# write it. Not `<s>`/`</s>` (HTML strike-through in code) nor operators like Haskell's `<|>`.
SPECIAL_TOKEN_TEXT = re.compile(
    r"<\|[^\s|<>]{1,64}\|>|<｜[^\s｜<>]{1,64}｜>|<(?:start|end)_of_turn>|<(?:eos|bos)>|\[/?INST\]"
)


def check_format(rec: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """One well-formed reasoning block, non-empty reasoning and answer, no stray tags (in any case),
    no special-token text (`SPECIAL_TOKEN_TEXT`: end-of-sequence/turn markers a server left in), and
    the same for every earlier assistant turn of a conversation (`history`).

    Answer-only data (`answer_only`: the input had no reasoning block at all, e.g. an eval dump of a
    non-reasoning model) needs no reasoning; its answer must still be there.
    """
    reasoning, answer, _ = reasoning_and_answer(rec, ctx.think_tags)
    if not reasoning.strip() and not rec.get("answer_only"):
        return {"ok": False, "why": "empty reasoning"}
    if not answer.strip():
        return {"ok": False, "why": "empty answer"}
    stray = _stray_marker(reasoning + "\n" + answer, ctx.think_tags)
    if stray:
        return {"ok": False, "why": f"stray {stray}"}
    found = SPECIAL_TOKEN_TEXT.search(reasoning) or SPECIAL_TOKEN_TEXT.search(answer)
    if found:
        return {"ok": False, "why": f"special-token text {found.group(0)}"}
    for i, turn in enumerate(rec.get("history") or []):
        if turn.get("role") != "assistant":
            continue
        text = f"{turn.get('reasoning') or ''}\n{turn.get('content') or ''}"
        stray = _stray_marker(text, ctx.think_tags)
        if stray:
            return {"ok": False, "why": f"stray {stray} in history turn {i}"}
        found = SPECIAL_TOKEN_TEXT.search(text)
        if found:
            return {"ok": False, "why": f"special-token text {found.group(0)} in history turn {i}"}
        if not str(turn.get("content") or "").strip():
            return {"ok": False, "why": f"empty answer in history turn {i}"}
    return {"ok": True}


def _stray_marker(text: str, think_tags: tuple[str, str]) -> str | None:
    """The first reasoning/solution marker (any case) left in split text, or None."""
    return next((t for t in (*think_tags, *ALL_MARKERS) if has_marker(text, t)), None)


def check_length(rec: dict[str, Any], ctx: Context) -> dict[str, Any]:
    n = rec["_tokens"]
    if ctx.min_tokens is not None and n < ctx.min_tokens:
        return {"ok": False, "why": f"{n} < min {ctx.min_tokens}", "tokens": n}
    if ctx.max_tokens is not None and n > ctx.max_tokens:
        return {"ok": False, "why": f"{n} > max {ctx.max_tokens}", "tokens": n}
    return {"ok": True, "tokens": n}


def check_language(rec: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """The reasoning is written in the prompt's script: foreign-script letters under a threshold."""
    prompt = script_counts(rec.get("problem") or "")
    lang = max(prompt, key=prompt.get) if prompt else "latin"  # type: ignore[arg-type]
    reasoning, _, _ = reasoning_and_answer(rec, ctx.think_tags)
    counts = script_counts(reasoning)
    total = sum(counts.values())
    if not total:
        return {"ok": True, "script": lang, "foreign": 0.0}
    share = 1.0 - counts.get(lang, 0) / total
    res = {"ok": share <= ctx.max_foreign_share, "script": lang, "foreign": round(share, 4)}
    if not res["ok"]:
        others = sorted((k for k in counts if k != lang), key=lambda k: -counts[k])
        res["why"] = f"{share:.1%} of reasoning letters not {lang} ({', '.join(others[:3])})"
    return res


def longest_paragraph(text: str) -> int:
    """Words in the longest run of text without a line break.

    R1 writes one paragraph per line and lays computations out one step per line with single line
    breaks, so a block between blank lines can hold hundreds of short lines and still read well;
    a wall of text is a long run with no break at all (measured: README, `readability`).
    """
    return max((len(line.split()) for line in text.splitlines()), default=0)


def check_readability(rec: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """R1's readability rules: no wall of text (`longest_paragraph`); no code fences in non-code reasoning."""
    reasoning, _, _ = reasoning_and_answer(rec, ctx.think_tags)
    if not ctx.allow_code_fences and (rec.get("domain") or "") != "code" and "```" in reasoning:
        return {"ok": False, "why": "code block in reasoning"}
    if ctx.max_paragraph_words:
        longest = longest_paragraph(reasoning)
        if longest > ctx.max_paragraph_words:
            return {
                "ok": False,
                "why": f"{longest} words without a line break > {ctx.max_paragraph_words}",
            }
    return {"ok": True}


def check_contamination(rec: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """The prompt is not a copy of a benchmark problem (see `contamination`)."""
    if ctx.bench is None:
        return {"ok": True}
    hit = contamination(rec.get("problem") or "", ctx.bench)
    if hit is None:
        return {"ok": True}
    why = f"holds {hit['share']:.0%} of the {ctx.bench.n}-grams of {hit['match']}"
    return {"ok": False, "why": why, **hit}


def check_correct(rec: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """The final answer verified against the gold by domain (distill.verify)."""
    from distill.verify import verifier_for

    kind = verifier_for(rec.get("domain"), rec.get("answer"))
    if kind == "none" and ctx.judge is None:
        return {"ok": True, "status": "unverifiable", "verifier": "none"}
    reasoning, answer, _ = reasoning_and_answer(rec, ctx.think_tags)
    rec2 = dict(rec, reasoning=reasoning, content=answer)
    v = verify_record(
        rec2,
        cache=ctx.gold_cache,
        timeout_s=ctx.verify_timeout_s,
        judge_cfg=ctx.judge,
        sandbox_limits=ctx.sandbox_limits,
    )
    ok = v.status == "correct" or (v.status == "unverifiable" and ctx.keep_unverifiable)
    res: dict[str, Any] = {"ok": ok, "verifier": kind, **v.to_dict()}
    if ctx.judge is not None and v.detail.startswith("judge"):
        res["judge"] = ctx.judge.model
    if not ok:
        res["why"] = f"{v.status}: {v.detail}"
    return res


RECORD_CHECKS: dict[str, Callable[[dict[str, Any], Context], dict[str, Any]]] = {
    "complete": check_complete,
    "format": check_format,
    "length": check_length,
    "language": check_language,
    "readability": check_readability,
    "contamination": check_contamination,
    "correct": check_correct,
}
GLOBAL_CHECKS = ("duplicate", "per_prompt")
ALL_CHECKS = tuple(RECORD_CHECKS) + GLOBAL_CHECKS
EXPENSIVE = {"correct"}  # skipped once a cheaper check failed


def run_record_checks(
    rec: dict[str, Any], checks: list[str], ctx: Context
) -> tuple[str | None, dict[str, Any]]:
    """Run the per-record checks in order; returns (first failing check or None, every result).

    Cheap checks always run (so `checks` shows everything wrong with a record); the expensive
    `correct` check is skipped (`{"ok": None, "skipped": True}`) once an earlier check failed.
    """
    reasoning, answer, _ = reasoning_and_answer(rec, ctx.think_tags)
    rec["_tokens"] = ctx.count_tokens(reasoning + "\n" + answer)
    first: str | None = None
    results: dict[str, Any] = {}
    for name in checks:
        if name in EXPENSIVE and first is not None:
            results[name] = {"ok": None, "skipped": True}
            continue
        try:
            r = RECORD_CHECKS[name](rec, ctx)
        except Exception as e:  # a check must never crash the stage
            r = {"ok": False, "why": f"check error: {type(e).__name__}: {e}"}
        results[name] = r
        if not r["ok"] and first is None:
            first = name
    return first, results


def dedup_key(rec: dict[str, Any], tags: tuple[str, str]) -> str:
    reasoning, answer, _ = reasoning_and_answer(rec, tags)
    text = normalize_text(rec.get("problem") or "") + "\x00" + normalize_text(reasoning + "\n" + answer)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
