"""The teacher backends' shared contract: sampling parameters, completions, the Protocol, reasoning split.

    params = SamplingParams(temperature=0.6, top_p=0.95, max_tokens=32768, n=4, seed=0)
    reasoning, content, closed = split_reasoning("<think>1+1=2</think>The answer is 2.")

Every backend module builds on these; nothing here imports a backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

Messages = list[dict[str, str]]
ErrorHook = Callable[[int, str], None]


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
    """One sampled answer, split into reasoning and visible content, with exact token counts."""

    reasoning: str
    content: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    reasoning_closed: bool
    logprobs: Any = None  # a distill.logit_kd.TopK when SamplingParams.logprobs asked for it


class GenerationError(RuntimeError):
    """A prompt failed after every retry (raised when no `on_error` hook is given)."""


class Backend(Protocol):
    name: str
    model: str

    def generate(
        self, prompts: list[Messages], params: SamplingParams, on_error: ErrorHook | None = None
    ) -> Iterator[tuple[int, list[Completion]]]: ...


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
