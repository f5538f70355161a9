"""Teacher backends: sample chat completions from a model through one small Protocol.

    backend = make_backend("transformers", "path/to/model")            # local generate (CPU/GPU)
    backend = make_backend("openai", "deepseek-reasoner", base_urls=["https://api.deepseek.com/v1"],
                           api_key_env="DEEPSEEK_API_KEY", concurrency=64)
    backend = make_backend("vllm", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", tensor_parallel_size=1)
    params = SamplingParams(temperature=0.6, top_p=0.95, max_tokens=32768, n=4, seed=0)
    for index, completions in backend.generate([[{"role": "user", "content": "1+1?"}]], params):
        ...  # index of the prompt, its n Completions, as each prompt finishes

`generate` yields in completion order, so callers write as they go. A prompt that still fails after
the backend's retries is reported through `on_error(index, message)` (it is then yielded with the
samples that did succeed, possibly none); without `on_error`, the first failure raises
`GenerationError`. Used by `distill generate` (teachers) and `distill eval` (students).

Each sample has its own seed (`seeds=`, see `sample_seed`), and end-of-sequence text a model or
server leaves at the end of a completion is stripped (`strip_end_tokens`).

Layout: `protocol.py` (SamplingParams, Completion, the Backend Protocol, split_reasoning, seeds), one
module per backend (`transformers_backend.py`, `openai_backend.py` over aiohttp, `vllm_backend.py`),
and the registry here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from distill.errors import UserError
from distill.teachers.protocol import (
    END_TOKENS,
    Backend,
    Completion,
    ErrorHook,
    GenerationError,
    Messages,
    SamplingParams,
    Seeds,
    sample_seed,
    split_reasoning,
    strip_end_tokens,
)

__all__ = [
    "BACKENDS",
    "END_TOKENS",
    "Backend",
    "Completion",
    "ErrorHook",
    "GenerationError",
    "Messages",
    "OpenAIBackend",
    "SamplingParams",
    "Seeds",
    "TransformersBackend",
    "VLLMBackend",
    "make_backend",
    "sample_seed",
    "split_reasoning",
    "strip_end_tokens",
]


# each backend's module loads when the backend is made, so reading traces (`distill.ingest`
# imports `distill.teachers.protocol`) never imports the HTTP client, asyncio or ssl
def _transformers() -> Callable[..., Backend]:
    from distill.teachers.transformers_backend import TransformersBackend

    return TransformersBackend


def _openai() -> Callable[..., Backend]:
    from distill.teachers.openai_backend import OpenAIBackend

    return OpenAIBackend


def _vllm() -> Callable[..., Backend]:
    from distill.teachers.vllm_backend import VLLMBackend

    return VLLMBackend


BACKENDS: dict[str, Callable[[], Callable[..., Backend]]] = {
    "transformers": _transformers,
    "openai": _openai,
    "vllm": _vllm,
}
_CLASSES = {"TransformersBackend": _transformers, "OpenAIBackend": _openai, "VLLMBackend": _vllm}


def __getattr__(name: str) -> Any:
    """`from distill.teachers import OpenAIBackend` still works: the class loads on first use."""
    if name in _CLASSES:
        return _CLASSES[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_backend(name: str, model: str, **options: Any) -> Backend:
    """Build backend `name` for `model`; options unknown to a backend are ignored."""
    if name not in BACKENDS:
        raise UserError(f"unknown backend '{name}' (choose from: {', '.join(BACKENDS)})")
    return BACKENDS[name]()(model, **options)
