"""Tiny tokenizers and random-init models built locally (no Hub): for tests, the demo and benchmarks.

    tok = build_tokenizer(out_dir / "tok", corpus=[...], template="chatml")
    build_model(out_dir / "qwen", tok_dir, arch="qwen2", hidden_size=32, num_layers=2)

The tokenizer is a byte-level BPE trained with `tokenizers`, with ChatML and Llama-3 special tokens
and `<think>`/`</think>` as single tokens, and a chat template (ChatML or Llama-3 style).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

LLAMA3_TEMPLATE = (
    "{{ '<|begin_of_text|>' }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

TEMPLATES = {"chatml": (CHATML_TEMPLATE, "<|im_end|>"), "llama3": (LLAMA3_TEMPLATE, "<|eot_id|>")}

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<think>",
    "</think>",
]

DEFAULT_CORPUS = [
    "Please reason step by step, and put your final answer within \\boxed{}.",
    "What is 12 + 30? Let me think. 12 + 30 = 42. The answer is \\boxed{42}.",
    "The quick brown fox jumps over the lazy dog. Find the value of x if 2x + 3 = 11.",
    "We compute the sum, carry the one, and check the result. So the answer is 7.",
    "user assistant system The answer is \\boxed{\\frac{1}{2}} 0 1 2 3 4 5 6 7 8 9 + - * / = ( ) [ ]",
]


def build_tokenizer(
    out_dir: str | os.PathLike,
    corpus: Iterable[str] | None = None,
    vocab_size: int = 400,
    template: str = "chatml",
    model_max_length: int = 4096,
    individual_digits: bool = False,
):
    """Train a byte-level BPE tokenizer on `corpus`, save it with a chat template, return it.

    With `individual_digits`, numbers are split into single digits before BPE.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    chat_template, eos = TEMPLATES[template]
    texts = list(corpus) if corpus is not None else list(DEFAULT_CORPUS)
    tk = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if individual_digits:  # one token per digit: arithmetic stays learnable for tiny models
        tk.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level]
        )
    else:
        tk.pre_tokenizer = byte_level
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(texts * 4, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        eos_token=eos,
        pad_token="<|endoftext|>",
        bos_token=None,
        model_max_length=model_max_length,
    )
    tok.chat_template = chat_template
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)
    return tok


def build_model(
    out_dir: str | os.PathLike,
    tokenizer_dir: str | os.PathLike,
    arch: str = "qwen2",
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 64,
    max_position_embeddings: int = 2048,
    seed: int = 0,
    tie_word_embeddings: bool = True,
    initializer_range: float = 0.02,
    rope_theta: float = 10000.0,
) -> Path:
    """Save a random-init Qwen2 or Llama causal LM sized to the tokenizer, with its tokenizer.

    `initializer_range` is the std of the normal init; tiny models learn position-dependent copying
    (as in the demo's task) in far fewer steps from ~0.06 than from the usual 0.02
    (`benchmarks/demo_init.py`). `rope_theta` is RoPE's base: the usual 10000 spreads the rotary
    wavelengths over thousands of positions; for sequences of ~100 tokens a base of ~100 puts them
    all within the sequence, and the demo's students learn their copying in fewer steps (38.8% vs
    11.2% correct after 600 steps, one run each).
    """
    import torch
    from transformers import (
        AutoTokenizer,
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    eos_id = tok.convert_tokens_to_ids(tok.eos_token)
    pad_id = tok.convert_tokens_to_ids(tok.pad_token)
    common = dict(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        initializer_range=initializer_range,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    if arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    elif arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    else:
        raise ValueError(f"unknown tiny arch {arch!r} (qwen2 | llama)")
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id, bos_token_id=None)
    out = Path(out_dir)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
