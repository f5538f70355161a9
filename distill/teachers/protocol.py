"""The teacher backends' shared contract: sampling parameters, completions, the Protocol, reasoning split.

    params = SamplingParams(temperature=0.6, top_p=0.95, max_tokens=32768, n=4, seed=0)
    reasoning, content, closed = split_reasoning("<think>1+1=2</think>The answer is 2.")
    sample_seed(0, "q17", 3)                       # sample 3 of prompt q17's own seed
    strip_end_tokens("x = 2.<｜end▁of▁sentence｜>")  # -> "x = 2."

Every backend module builds on these; nothing here imports a backend.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

Messages = list[dict[str, str]]
ErrorHook = Callable[[int, str], None]
Seeds = list[list[int]]  # per prompt, one seed per sample

# End-of-sequence / end-of-turn text of common reasoning-model tokenizers, as servers leak it
# when they decode with special tokens kept (`transformers serve`, vLLM with
# skip_special_tokens=False, an R1 served without its stop token): DeepSeek-R1/V3 and the
# R1-Distill models, Qwen2.5/QwQ/Qwen3 (ChatML), Llama 3, Phi-3/4, gpt-oss, Gemma, Llama 2/Mistral.
END_TOKENS: tuple[str, ...] = (
    "<｜end▁of▁sentence｜>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|end|>",
    "<|return|>",
    "<end_of_turn>",
    "<eos>",
    "</s>",
)


@dataclass
class SamplingParams:
    """Sampling parameters shared by every backend (`top_k=None`: disabled; `temperature=0`: greedy)."""

    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int | None = None
    max_tokens: int = 32768
    n: int = 1
    seed: int | None = 0
    stop: list[str] = field(default_factory=list)
    logprobs: int | None = None  # K: also return the top-K log-probabilities of every completion token

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["logprobs"] is None:  # absent when off: manifests of earlier runs still match
            del d["logprobs"]
        return d


@dataclass
class Completion:
    """One sampled answer, split into reasoning and visible content, with exact token counts;
    `seed`: the sample seed it was drawn with (None: unseeded or greedy)."""

    reasoning: str
    content: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    reasoning_closed: bool
    logprobs: Any = None  # a distill.logit_kd.TopK when SamplingParams.logprobs asked for it
    seed: int | None = None


class GenerationError(RuntimeError):
    """A prompt failed after every retry (raised when no `on_error` hook is given)."""


class Backend(Protocol):
    name: str
    model: str

    def generate(
        self,
        prompts: list[Messages],
        params: SamplingParams,
        on_error: ErrorHook | None = None,
        seeds: Seeds | None = None,
    ) -> Iterator[tuple[int, list[Completion]]]: ...


# ---------------------------------------------------------------------------- per-sample seeds


def sample_seed(seed: int, prompt_key: str, sample: int) -> int:
    """The seed of one sample, in [0, 2**31): a hash of (run seed, prompt id, sample index).

    Each sample has its own random stream, so sample k of a prompt is the same whatever else is
    sampled with it, and a re-run asking for more samples gets new ones (not copies of 0..n-1).
    31 bits: every OpenAI-compatible server takes it as a `seed`.
    """
    digest = hashlib.sha256(f"{int(seed)}\x00{prompt_key}\x00{int(sample)}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def prompt_seeds(params: SamplingParams, count: int, seeds: Seeds | None) -> Seeds | None:
    """Per prompt, the `params.n` sample seeds: `seeds` as given (checked), else derived from the
    prompt's position (`sample_seed(params.seed, str(index), j)`); None when `params.seed` is None.

    Raises ValueError when `seeds` does not hold `count` lists of `n` seeds.
    """
    if params.seed is None:
        return None
    n = max(1, params.n)
    if seeds is None:
        return [[sample_seed(params.seed, str(i), j) for j in range(n)] for i in range(count)]
    if len(seeds) != count or any(len(s) != n for s in seeds):
        raise ValueError(f"seeds: expected {count} lists of {n} seeds")
    return [[int(x) for x in s] for s in seeds]


# ---------------------------------------------------------------------------- special-token text


def strip_end_tokens(text: str, tokens: tuple[str, ...] | list[str] = END_TOKENS) -> str:
    """`text` without the end-of-sequence/turn token text (and whitespace) at its end.

    Only trailing occurrences are removed: one in the middle means the server ran past the end of
    the turn, and the `format` filter check rejects the trace.
    """
    tokens = [t for t in tokens if t]
    stripped = text.rstrip()
    changed = True
    while changed:
        changed = False
        for t in tokens:
            if stripped.endswith(t):
                stripped = stripped[: -len(t)].rstrip()
                changed = True
    return stripped if len(stripped) < len(text.rstrip()) else text


def tokenizer_special_tokens(tokenizer: Any, exclude: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Text of a Hugging Face tokenizer's special tokens: the named ones (eos, pad, …) and every
    added token marked special (`<|im_start|>`, `<|end_header_id|>`, …), less `exclude`."""
    found = list(getattr(tokenizer, "all_special_tokens", []) or [])
    for added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(added, "special", False) and added.content not in found:
            found.append(added.content)
    return [t for t in found if t not in exclude]


def end_tokens(*extra: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """`END_TOKENS` plus the given lists (a card's `special_tokens`, a tokenizer's eos), deduplicated."""
    out = list(END_TOKENS)
    for group in extra:
        for t in group or ():
            if t and t not in out:
                out.append(t)
    return tuple(out)


# ---------------------------------------------------------------------------- reasoning split


def split_reasoning(
    text: str, tags: tuple[str, str] | list[str] = ("<think>", "</think>"), opened: bool = False
) -> tuple[str, str, bool]:
    """Split `text` into (reasoning, content, closed) on `<think>…</think>`.

    A closing tag without an opening tag means the opening tag was in the prompt template (R1,
    QwQ): what precedes it is the reasoning. `opened=True` says the template opened the block, so
    text with no closing tag is all (unfinished) reasoning. Without tags the text is all content.
    """
    open_tag, close_tag = tags
    start = text.find(open_tag)
    if start >= 0:
        before = text[:start].strip()
        rest = text[start + len(open_tag) :]
        end = rest.find(close_tag)
        if end < 0:
            return rest.strip(), before, False
        content = rest[end + len(close_tag) :].strip()
        if before:
            content = (before + "\n\n" + content).strip()
        return rest[:end].strip(), content, True
    end = text.find(close_tag)
    if end >= 0:
        return text[:end].strip(), text[end + len(close_tag) :].strip(), True
    if opened:
        return text.strip(), "", False
    return "", text.strip(), False


def fail(on_error: ErrorHook | None, index: int, message: str) -> None:
    if on_error is None:
        raise GenerationError(f"prompt {index}: {message}")
    on_error(index, message)
