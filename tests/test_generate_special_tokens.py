"""End-of-sequence text a teacher's server leaves in the completion is stripped at parse time, and
the `format` filter check rejects any special-token text that remains."""

from __future__ import annotations

import json

import pytest

from distill.checks import Context, check_format
from distill.generate import GenerateConfig, run
from distill.records import read_records
from distill.teachers import END_TOKENS, SamplingParams, make_backend, strip_end_tokens

R1_EOS = "<｜end▁of▁sentence｜>"


@pytest.mark.parametrize(
    "text, want",
    [
        ("The answer is \\boxed{300}." + R1_EOS, "The answer is \\boxed{300}."),  # R1 via transformers serve
        ("x = 2<|im_end|>\n", "x = 2"),  # Qwen/QwQ ChatML end of turn
        ("x = 2<|im_end|><|endoftext|>", "x = 2"),  # end of turn, then eos
        ("so 4.<|eot_id|>", "so 4."),  # Llama 3
        ("done <end_of_turn>", "done"),  # Gemma
        ("done</s>", "done"),  # Llama 2 / Mistral
        ("no end token here", "no end token here"),
        ("mid <|im_end|> text", "mid <|im_end|> text"),  # not at the end: left for `format` to reject
        ("reasoning</think>", "reasoning</think>"),  # think tags are never stripped
    ],
)
def test_strip_end_tokens(text, want):
    assert strip_end_tokens(text) == want


def test_card_listed_token_is_stripped(tmp_path, fake_server):
    """A card's `special_tokens` and the built-in R1 eos, stripped from content and reasoning_content."""
    card = tmp_path / "teacher.yaml"
    card.write_text(
        "name: t\nmodel: m\nbackend: openai\nspecial_tokens: ['[[DONE]]']\ntemplates: {math: '{problem}'}\n"
    )
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "problem": p}) + "\n" for i, p in enumerate(["A?", "B?", "SPLIT C?"])
        )
    )
    for k, suffix in enumerate([R1_EOS, "[[DONE]]", "<|im_end|>\n" + R1_EOS]):
        server = fake_server(suffix=suffix)
        out = tmp_path / f"t{k}"
        cfg = GenerateConfig(teacher=str(card), prompts=str(prompts), output=str(out), num_samples=2,
                             base_url=[server.url], progress=False)  # fmt: skip
        run(cfg)
        recs = list(read_records(out))
        assert len(recs) == 6 and all(r["content"] == "answer" for r in recs), [r["content"] for r in recs]
        assert all(check_format(r, Context())["ok"] for r in recs)
    # the reverse: without the card's entry, an unknown marker stays, and `format` rejects it
    server = fake_server(suffix="<|custom_stop|>")
    out = tmp_path / "unknown"
    run(
        GenerateConfig(
            teacher=str(card), prompts=str(prompts), output=str(out), base_url=[server.url], progress=False
        )
    )
    recs = list(read_records(out))
    assert all(r["content"] == "answer<|custom_stop|>" for r in recs)
    assert {check_format(r, Context())["why"] for r in recs} == {"special-token text <|custom_stop|>"}


def test_transformers_backend_strips_its_tokenizer_specials(tiny_qwen):
    be = make_backend("transformers", str(tiny_qwen), threads=1, special_tokens=["[[DONE]]"])
    tokenizer_specials = set(be.tokenizer.all_special_tokens)
    assert "<|im_end|>" in tokenizer_specials and "<|im_end|>" in be.end_tokens
    assert "<|start_header_id|>" in be.end_tokens  # an added special token, not a named one
    assert "[[DONE]]" in be.end_tokens and set(END_TOKENS) <= set(be.end_tokens)
    assert "<think>" not in be.end_tokens and "</think>" not in be.end_tokens
    # sampled text never ends in special-token text
    got = dict(
        be.generate([[{"role": "user", "content": "1+1?"}]], SamplingParams(max_tokens=24, n=4, seed=3))
    )
    for c in got[0]:
        assert not any((c.reasoning + c.content).rstrip().endswith(t) for t in be.end_tokens)


def rec(reasoning: str = "Add 1 and 1 to get 2.", content: str = "\\boxed{2}") -> dict:
    return {"reasoning": reasoning, "content": content, "finish_reason": "stop", "reasoning_closed": True}


@pytest.mark.parametrize(
    "reasoning, content",
    [
        ("Add them.", "\\boxed{300}." + R1_EOS),  # R1 eos left in the answer
        ("Add them.<|im_end|>\n<|im_start|>user\nmore", "\\boxed{2}"),  # ran into a new ChatML turn
        ("Add them.", "\\boxed{2}<|eot_id|>"),  # Llama 3
        ("Add them.<｜Assistant｜>", "\\boxed{2}"),  # DeepSeek role marker
        ("Add them.<end_of_turn>", "\\boxed{2}"),  # Gemma
        ("Add them.", "[INST] next [/INST] \\boxed{2}"),  # Mistral
        ("Add them.<|start_header_id|>assistant<|end_header_id|>", "\\boxed{2}"),
    ],
)
def test_format_rejects_special_token_text(reasoning, content):
    got = check_format(rec(reasoning, content), Context())
    assert not got["ok"] and got["why"].startswith("special-token text")


@pytest.mark.parametrize(
    "reasoning, content",
    [
        ("In Haskell, `f <$> x <|> y` picks the first success.", "\\boxed{2}"),  # the <|> operator
        ("Elm pipes: `x |> f <| y`.", "\\boxed{2}"),
        ("HTML <s>struck</s> text and a < b, |x| > 0.", "\\boxed{2}"),
        ("We need |a| < |b| and <x, y> = 0.", "\\boxed{2}"),
    ],
)
def test_format_keeps_text_that_only_looks_like_tokens(reasoning, content):
    assert check_format(rec(reasoning, content), Context())["ok"]


def test_local_teacher_tokenizer_specials_are_stripped_for_a_server(tmp_path, tiny_llama, fake_server):
    """A server run on a local model folder (`transformers serve ./model`): the folder's tokenizer
    names its special tokens, so one outside the built-in list is stripped too."""
    server = fake_server(suffix="<|end_header_id|>")  # a Llama-3 special token, not an end token
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "q0", "problem": "A?"}) + "\n")
    out = tmp_path / "t"
    run(GenerateConfig(teacher=str(tiny_llama), prompts=str(prompts), output=str(out), backend="openai",
                       base_url=[server.url], num_samples=2, progress=False))  # fmt: skip
    assert [r["content"] for r in read_records(out)] == ["answer", "answer"]
    # the reverse: a teacher given by name only (no local tokenizer) keeps it, and `format` rejects it
    out = tmp_path / "named"
    run(GenerateConfig(teacher="some-org/teacher", prompts=str(prompts), output=str(out), backend="openai",
                       base_url=[server.url], progress=False))  # fmt: skip
    [rec] = list(read_records(out))
    assert rec["content"] == "answer<|end_header_id|>" and not check_format(rec, Context())["ok"]
