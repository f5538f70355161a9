"""The `vllm` backend: vLLM's offline engine on local GPUs (tensor/pipeline parallel, also in Ray actors).

    backend = VLLMBackend("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", tensor_parallel_size=1)

Registered as "vllm" in `distill.teachers.BACKENDS`; needs `pip install -e '.[vllm]'` (in the checkout) and a GPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from distill.errors import UserError
from distill.teachers.protocol import (
    Completion,
    ErrorHook,
    Messages,
    SamplingParams,
    Seeds,
    end_tokens,
    prompt_seeds,
    split_reasoning,
    strip_end_tokens,
    tokenizer_special_tokens,
)


def request_params(
    params: SamplingParams, count: int, seeds: Seeds | None = None
) -> list[list[dict[str, Any]]]:
    """Keyword arguments of `vllm.SamplingParams`, per prompt one dict per request.

    With a seed (`params.seed` not None), every sample is its own `n=1` request seeded with its
    sample seed (`prompt_seeds`): vLLM seeds a request, not the samples of an `n>1` request, so this
    is what makes sample k of a prompt reproducible and new samples new (prefix caching keeps the
    repeated prompt cheap). Without a seed, one `n`-sample request per prompt (`sampling_kwargs`).
    """
    base = sampling_kwargs(params)
    per_prompt = prompt_seeds(params, count, seeds)
    if per_prompt is None:
        return [[dict(base)] for _ in range(count)]
    return [[{**base, "n": 1, "seed": s} for s in row] for row in per_prompt]


class VLLMBackend:
    """Offline `vllm.LLM` with `SamplingParams(n=…)`; imported only when chosen (`distill[vllm]`).

    `tensor_parallel_size` × `pipeline_parallel_size` GPUs per engine (vLLM places them itself).
    Each sample is a request with its own seed (`request_params`); end-of-sequence/special-token
    text at the end of a completion (card `special_tokens`, the tokenizer's, `END_TOKENS`) is stripped.
    """

    name = "vllm"

    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        pipeline_parallel_size: int = 1,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        dtype: str = "auto",
        seed: int = 0,
        chunk_size: int = 1024,
        chat_template_kwargs: dict[str, Any] | None = None,
        think_tags: tuple[str, str] | list[str] = ("<think>", "</think>"),
        system_prompt: str | None = None,
        special_tokens: list[str] | None = None,
        **_: Any,
    ) -> None:
        try:
            import vllm
        except ImportError:
            raise UserError(
                "the vllm backend needs vLLM: pip install -e '.[vllm]' in the distill checkout (on a CUDA machine)"
            ) from None
        self.model = model
        self.chunk_size = max(1, int(chunk_size))
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.think_tags = tuple(think_tags)
        self.system_prompt = system_prompt
        kw: dict[str, Any] = dict(
            model=model,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            dtype=dtype,
            seed=seed,
        )
        if pipeline_parallel_size > 1:
            kw["pipeline_parallel_size"] = pipeline_parallel_size
        if max_model_len:
            kw["max_model_len"] = max_model_len
        self._vllm = vllm
        self.llm = vllm.LLM(**kw)
        self.tokenizer = self.llm.get_tokenizer()
        specials = tokenizer_special_tokens(self.tokenizer, self.think_tags)
        self.end_tokens = end_tokens(special_tokens, specials)

    def generate(
        self,
        prompts: list[Messages],
        params: SamplingParams,
        on_error: ErrorHook | None = None,
        seeds: Seeds | None = None,
    ) -> Iterator[tuple[int, list[Completion]]]:
        """Yield (prompt index, its `params.n` completions) chunk by chunk; `seeds[i][j]` seeds
        sample j of prompt i."""
        requests = request_params(params, len(prompts), seeds)
        convs = []
        for m in prompts:
            if self.system_prompt and not any(x["role"] == "system" for x in m):
                m = [{"role": "system", "content": self.system_prompt}, *m]
            convs.append(m)
        for start in range(0, len(convs), self.chunk_size):
            chunk = convs[start : start + self.chunk_size]
            texts = [
                self.tokenizer.apply_chat_template(
                    c, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
                )
                for c in chunk
            ]
            # token ids, not text: the rendered template already holds any BOS token
            ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
            flat_prompts, flat_params, owner = [], [], []
            for k, token_ids in enumerate(ids):
                for kw in requests[start + k]:
                    flat_prompts.append({"prompt_token_ids": token_ids})
                    flat_params.append(self._vllm.SamplingParams(**kw))
                    owner.append((k, kw["seed"]))
            outs = self.llm.generate(flat_prompts, flat_params, use_tqdm=False)
            comps: list[list[Completion]] = [[] for _ in chunk]
            for (k, seed), out in zip(owner, outs, strict=True):
                opened = texts[k].rstrip().endswith(self.think_tags[0])
                for o in out.outputs:
                    text = strip_end_tokens(o.text, self.end_tokens)
                    r, c, closed = split_reasoning(text, self.think_tags, opened=opened)
                    comp = Completion(
                        r, c, o.finish_reason, len(out.prompt_token_ids), len(o.token_ids), closed, seed=seed
                    )
                    if params.logprobs:
                        comp.logprobs = top_k_from_vllm(list(o.token_ids), o.logprobs, params.logprobs)
                    comps[k].append(comp)
            for k in range(len(chunk)):
                yield start + k, comps[k]


def sampling_kwargs(params: SamplingParams) -> dict[str, Any]:
    """Keyword arguments of `vllm.SamplingParams` for `params` (`logprobs=K`: vLLM returns, per
    generated token, the K most likely tokens and the sampled one, from the raw logits by default)."""
    kw: dict[str, Any] = dict(
        n=max(1, params.n),
        temperature=params.temperature,
        top_p=params.top_p if params.temperature else 1.0,
        top_k=params.top_k or -1,
        max_tokens=params.max_tokens,
        seed=params.seed,
        stop=list(params.stop) or None,
    )
    if params.logprobs:
        kw["logprobs"] = int(params.logprobs)
    return kw


def top_k_from_vllm(token_ids: list[int], logprobs: Any, k: int) -> Any:
    """A `TopK` from vLLM's per-token logprobs: for each position a dict token id -> Logprob(logprob,
    rank, decoded_token) holding the top-K and the sampled token (rank > K when it is not in them)."""
    from distill.logit_kd import TopK

    top = []
    for pos in logprobs or []:
        ranked = sorted(pos.items(), key=lambda kv: kv[1].rank if kv[1].rank is not None else 1 << 30)
        top.append([(int(tid), float(lp.logprob)) for tid, lp in ranked[:k]])
    return TopK(list(token_ids[: len(top)]), top)
