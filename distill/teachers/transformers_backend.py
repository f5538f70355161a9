"""The `transformers` backend: local `model.generate` on CPU or GPU (the demo's teacher, small students).

    backend = TransformersBackend("path/to/model", batch_size=256, threads=1)

Registered as "transformers" in `distill.teachers.BACKENDS`.
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
    fail,
    prompt_seeds,
    split_reasoning,
    strip_end_tokens,
    tokenizer_special_tokens,
)


def seeded_sampler(params: SamplingParams, row_seeds: list[int], device: str) -> Any:
    """A logits processor that samples each row from its own `torch.Generator` (Gumbel-max).

    With greedy decoding (`do_sample=False`) the argmax of temperature/top-k/top-p-warped logits
    plus Gumbel noise is an exact draw from the warped distribution; the noise of row r comes from
    a generator seeded with `row_seeds[r]`, so each sample depends on its own seed only, never on
    the batch it was generated in. Shapes: scores (rows, vocab) -> (rows, vocab).
    """
    import torch
    from transformers import LogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    warpers: list[Any] = []
    if params.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(params.temperature))
    if params.top_k:
        warpers.append(TopKLogitsWarper(top_k=params.top_k))
    if params.top_p is not None and params.top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=params.top_p))
    generators = [torch.Generator(device=device).manual_seed(int(s)) for s in row_seeds]

    class _Sampler(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            scores = scores.float()
            for w in warpers:
                scores = w(input_ids, scores)
            vocab = scores.shape[-1]
            # Gumbel(0, 1) noise = -log(Exp(1)), one row per sample from that sample's generator
            exp = torch.stack(
                [torch.empty(vocab, device=scores.device).exponential_(generator=g) for g in generators]
            )
            gumbel = -torch.log(exp)
            return scores + gumbel

    return _Sampler()


class TransformersBackend:
    """Local `model.generate`: left-padded batches of prompts × n, stops at the end-of-turn token.

    `batch_size` is the number of sequences (prompts × n) per `generate` call; `threads` sets
    torch's CPU threads (1 is fastest for ~1M-parameter models, especially on a shared machine). Prompts are sorted
    by length so batches carry little padding. Every sample draws from its own random stream
    (`seeded_sampler`, seeded per sample: `seeds`, else from `params.seed` and the prompt's
    position), so the same seed gives the same sample in any batch layout.
    End-of-sequence/special-token text left at the end of a completion (`special_tokens` from the
    card, the tokenizer's special tokens, `END_TOKENS`) is stripped.
    """

    name = "transformers"

    def __init__(
        self,
        model: str,
        batch_size: int = 64,
        device: str | None = None,
        dtype: str = "auto",
        chat_template_kwargs: dict[str, Any] | None = None,
        think_tags: tuple[str, str] | list[str] = ("<think>", "</think>"),
        system_prompt: str | None = None,
        threads: int | None = None,
        special_tokens: list[str] | None = None,
        **_: Any,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from distill.noise import quiet_transformers

        quiet_transformers()

        if threads:  # tiny models on a busy CPU: 1 thread avoids OpenMP spin-waiting
            torch.set_num_threads(int(threads))

        self.model = model
        self.batch_size = max(1, int(batch_size))
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.think_tags = tuple(think_tags)
        self.system_prompt = system_prompt
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
            self.lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype).to(device)
        except OSError as e:
            raise UserError(f"{model}: cannot load model/tokenizer ({str(e).splitlines()[0]})") from None
        self.lm.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        eos: set[int] = set()
        gc_eos = getattr(self.lm.generation_config, "eos_token_id", None)
        for e in gc_eos if isinstance(gc_eos, list) else [gc_eos]:
            if e is not None:
                eos.add(int(e))
        if self.tokenizer.eos_token_id is not None:
            eos.add(int(self.tokenizer.eos_token_id))
        if not eos:
            raise UserError(f"{model}: no eos token in tokenizer or generation_config")
        self.eos_ids = sorted(eos)
        self.pad_id = int(self.tokenizer.pad_token_id)
        specials = tokenizer_special_tokens(self.tokenizer, self.think_tags)
        self.end_tokens = end_tokens(special_tokens, specials)
        self.max_positions = getattr(self.lm.config, "max_position_embeddings", None)

    def render(self, messages: Messages) -> str:
        if self.system_prompt and not any(m["role"] == "system" for m in messages):
            messages = [{"role": "system", "content": self.system_prompt}, *messages]
        if self.tokenizer.chat_template is None:
            raise UserError(f"{self.model}: tokenizer has no chat template")
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
        )

    def generate(
        self,
        prompts: list[Messages],
        params: SamplingParams,
        on_error: ErrorHook | None = None,
        seeds: Seeds | None = None,
    ) -> Iterator[tuple[int, list[Completion]]]:
        """Yield (prompt index, its `params.n` completions) batch by batch; `seeds[i][j]` seeds
        sample j of prompt i (see `prompt_seeds`)."""
        import torch
        from transformers import LogitsProcessorList

        sample = bool(params.temperature and params.temperature > 0)
        row_seeds = prompt_seeds(params, len(prompts), seeds) if sample else None
        texts = [self.render(m) for m in prompts]
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        opened = [t.rstrip().endswith(self.think_tags[0]) for t in texts]
        n = max(1, params.n)
        per_batch = max(1, self.batch_size // n)
        order = sorted(range(len(prompts)), key=lambda i: (len(ids[i]), i))
        for start in range(0, len(order), per_batch):
            chunk = order[start : start + per_batch]
            longest = max(len(ids[i]) for i in chunk)
            max_new = params.max_tokens
            if self.max_positions:
                max_new = min(max_new, self.max_positions - longest)
            if max_new <= 0:
                for i in chunk:
                    fail(on_error, i, f"prompt of {len(ids[i])} tokens leaves no room to generate")
                    if on_error is not None:
                        yield i, []
                continue
            rows = [ids[i] for i in chunk for _ in range(n)]
            input_ids = torch.full((len(rows), longest), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), longest), dtype=torch.long)
            for r, row in enumerate(rows):
                input_ids[r, longest - len(row) :] = torch.tensor(row, dtype=torch.long)
                mask[r, longest - len(row) :] = 1
            kwargs: dict[str, Any] = dict(
                max_new_tokens=max_new,
                eos_token_id=self.eos_ids,
                pad_token_id=self.pad_id,
            )
            # greedy search; with sampling, argmax over logits + per-row seeded Gumbel noise
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            if sample:
                generator_seeds = [
                    row_seeds[i][j] if row_seeds else int(torch.randint(0, 2**31 - 1, ()))
                    for i in chunk
                    for j in range(n)
                ]
                kwargs["logits_processor"] = LogitsProcessorList(
                    [seeded_sampler(params, generator_seeds, self.device)]
                )
            if params.stop:
                kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
            if params.logprobs:  # the raw logits of every step, for the teacher's top-K
                kwargs.update(output_logits=True, return_dict_in_generate=True)
            with torch.inference_mode():
                out = self.lm.generate(
                    input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device), **kwargs
                )
            top = None
            if params.logprobs:
                top = _top_k(out.logits, params.logprobs)
                out = out.sequences
            gen = out[:, longest:].tolist()
            for k, i in enumerate(chunk):
                comps = []
                for j in range(n):
                    c = self._completion(gen[k * n + j], len(ids[i]), max_new, params, opened[i])
                    c.seed = row_seeds[i][j] if row_seeds else None
                    if top is not None:
                        c.logprobs = _row_top_k(top, k * n + j, gen[k * n + j][: c.completion_tokens])
                    comps.append(c)
                yield i, comps

    def _completion(
        self, tokens: list[int], prompt_len: int, max_new: int, params: SamplingParams, opened: bool
    ) -> Completion:
        eos = set(self.eos_ids)
        end = next((p for p, t in enumerate(tokens) if t in eos), None)
        if end is not None:
            count, body, finish = end + 1, tokens[:end], "stop"
        else:
            body = list(tokens)
            if params.stop:  # stopped on a stop string: the rest of the row is padding
                while body and body[-1] == self.pad_id:
                    body.pop()
            count = len(body)
            finish = "length" if count >= max_new else "stop"
        text = self.tokenizer.decode(body, skip_special_tokens=False)
        for s in params.stop:
            cut = text.find(s)
            if cut >= 0:
                text, finish = text[:cut], "stop"
        text = strip_end_tokens(text, self.end_tokens)
        reasoning, content, closed = split_reasoning(text, self.think_tags, opened=opened)
        return Completion(reasoning, content, finish, prompt_len, count, closed)


def _top_k(logits: Any, k: int) -> tuple[Any, Any]:
    """(ids, logprobs) of the K most likely tokens at each step: tensors (rows, steps, K), from the
    model's raw logits (temperature 1), whatever the sampling temperature."""
    import torch

    lps = torch.stack([torch.log_softmax(step.float(), dim=-1) for step in logits], dim=1)
    vals, idx = torch.topk(lps, min(k, lps.shape[-1]), dim=-1)
    return idx, vals


def _row_top_k(top: tuple[Any, Any], row: int, tokens: list[int]) -> Any:
    from distill.logit_kd import TopK

    idx, vals = top
    ids, lps = idx[row, : len(tokens)].tolist(), vals[row, : len(tokens)].tolist()
    return TopK(list(tokens), [list(zip(i, v, strict=True)) for i, v in zip(ids, lps, strict=True)])
