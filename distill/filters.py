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
    bench_ngrams: dict[str, str] = field(default_factory=dict)  # n-gram -> benchmark row id
    gold_cache: GoldCache = field(default_factory=GoldCache)


# ---------------------------------------------------------------------------- helpers


def split_think(text: str, tags: tuple[str, str]) -> tuple[str | None, str, bool]:
    """Split raw `<think>…</think>answer` text: (reasoning or None, answer, closed)."""
    open_t, close_t = tags
    body = text.lstrip()
    if body.startswith(open_t):
        body = body[len(open_t) :]
    elif close_t not in body:
        return None, text, True
    if close_t not in body:
        return body, "", False
    reasoning, _, answer = body.partition(close_t)
    return reasoning, answer, True


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


def word_ngrams(text: str, n: int) -> set[str]:
    words = normalize_text(text).split()
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def build_ngram_index(rows: list[dict[str, Any]], n: int, label: str) -> dict[str, str]:
    index: dict[str, str] = {}
    for r in rows:
        for g in word_ngrams(r["problem"], n):
            index.setdefault(g, f"{label}:{r['id']}")
    return index


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
    """One well-formed reasoning block, non-empty reasoning and answer, no stray tags, no
    special-token text (`SPECIAL_TOKEN_TEXT`: end-of-sequence/turn markers a server left in)."""
    reasoning, answer, _ = reasoning_and_answer(rec, ctx.think_tags)
    if not reasoning.strip():
        return {"ok": False, "why": "empty reasoning"}
    if not answer.strip():
        return {"ok": False, "why": "empty answer"}
    for t in ctx.think_tags:
        if t in reasoning or t in answer:
            return {"ok": False, "why": f"stray {t}"}
    found = SPECIAL_TOKEN_TEXT.search(reasoning) or SPECIAL_TOKEN_TEXT.search(answer)
    if found:
        return {"ok": False, "why": f"special-token text {found.group(0)}"}
    return {"ok": True}


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


def check_readability(rec: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """R1's readability rules: no overlong paragraph; no code fences in non-code reasoning."""
    reasoning, _, _ = reasoning_and_answer(rec, ctx.think_tags)
    if not ctx.allow_code_fences and (rec.get("domain") or "") != "code" and "```" in reasoning:
        return {"ok": False, "why": "code block in reasoning"}
    if ctx.max_paragraph_words:
        longest = max((len(p.split()) for p in re.split(r"\n\s*\n", reasoning)), default=0)
        if longest > ctx.max_paragraph_words:
            return {"ok": False, "why": f"paragraph of {longest} words > {ctx.max_paragraph_words}"}
    return {"ok": True}


def check_contamination(rec: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Any word n-gram of the prompt shared with a benchmark problem."""
    for g in word_ngrams(rec.get("problem") or "", ctx.ngram):
        hit = ctx.bench_ngrams.get(g)
        if hit is not None:
            return {"ok": False, "why": f"{ctx.ngram}-gram overlap with {hit}", "match": hit}
    return {"ok": True}


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
