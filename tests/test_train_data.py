"""Templating, loss masks, the template guard, length handling and the tokenization cache."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from distill import train_data as td
from distill.errors import UserError

R1_DISTILL_LIKE = (  # strips the reasoning from assistant messages, as the R1-Distill templates do
    "{% for message in messages %}"
    "{% set content = message['content'] %}"
    "{% if message['role'] == 'assistant' and '</think>' in content %}"
    "{% set content = content.split('</think>')[-1].lstrip() %}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + content + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def trace(i: int, reasoning: str | None = None, content: str | None = None) -> dict:
    a, b = i + 3, 2 * i + 1
    return {
        "id": f"p{i}:0",
        "prompt_id": f"p{i}",
        "sample": 0,
        "problem": f"What is {a} + {b}?",
        "answer": str(a + b),
        "domain": "math",
        "source": "test",
        "teacher": {},
        "reasoning": reasoning if reasoning is not None else f"{a} + {b} = {a + b}.",
        "content": content if content is not None else f"The answer is {a + b}.",
        "finish_reason": "stop",
        "verdict": "kept",
    }


def write_kept(folder, traces) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "shard-00000.jsonl", "w") as f:
        for t in traces:
            f.write(json.dumps(t) + "\n")
    return str(folder)


@pytest.fixture
def tok(tiny_tokenizer):
    t = AutoTokenizer.from_pretrained(tiny_tokenizer)
    td.apply_chat_settings(t, "chatml", None)
    return t


def test_mask_covers_exactly_the_assistant_turn_chatml(tok):
    msgs = [
        {"role": "user", "content": "What is 3 + 1?"},
        {"role": "assistant", "content": "<think>\n3+1=4\n</think>\n\n4"},
    ]
    ex = td.tokenize_example(msgs, tok)
    first = next(i for i, t in enumerate(ex.labels) if t != td.IGNORE)
    assert all(t == td.IGNORE for t in ex.labels[:first])
    assert ex.labels[first:] == ex.input_ids[first:]
    assert (
        tok.decode(ex.input_ids[:first])
        == "<|im_start|>user\nWhat is 3 + 1?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tok.decode(ex.labels[first:]) == "<think>\n3+1=4\n</think>\n\n4<|im_end|>"
    assert ex.input_ids[-1] == tok.convert_tokens_to_ids("<|im_end|>")
    td.guard([(msgs, ex)], tok)  # a correct example passes


def test_llama3_template_uses_eot_id(tiny_llama_tokenizer):
    t = AutoTokenizer.from_pretrained(tiny_llama_tokenizer)
    assert td.apply_chat_settings(t, "llama3", None) == "<|eot_id|>"
    msgs = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "<think>\nx\n</think>\n\nyes"},
    ]
    ex = td.tokenize_example(msgs, t)
    labelled = [x for x in ex.labels if x != td.IGNORE]
    assert t.decode(labelled) == "<think>\nx\n</think>\n\nyes<|eot_id|>"
    assert t.decode(ex.input_ids).startswith("<|begin_of_text|><|start_header_id|>user")
    td.guard([(msgs, ex)], t)


def test_model_template_detects_end_of_turn(tiny_tokenizer):
    t = AutoTokenizer.from_pretrained(tiny_tokenizer)
    t.eos_token = "<|endoftext|>"  # a base model whose eos is not the end-of-turn token
    assert td.apply_chat_settings(t, "model", None) == "<|im_end|>"
    assert t.pad_token == "<|endoftext|>"


def test_guard_catches_template_that_drops_reasoning(tmp_path, tiny_tokenizer):
    t = AutoTokenizer.from_pretrained(tiny_tokenizer)
    t.chat_template = R1_DISTILL_LIKE
    td.apply_chat_settings(t, "model", None)
    data = write_kept(tmp_path / "kept", [trace(i) for i in range(5)])
    with pytest.raises(UserError, match="drops the reasoning"):
        td.tokenize_dataset(data, t, with_reasoning=True, max_length=512, cache_dir=tmp_path / "c")


def test_guard_accepts_stray_think_tag_inside_reasoning(tmp_path, tok):
    # a sampled teacher sometimes writes `<think>` again mid-reasoning; unfiltered data keeps it
    data = write_kept(tmp_path / "kept", [trace(0, reasoning="3 + 1 =<think>\n4"), trace(1)])
    ds, stats = td.tokenize_dataset(data, tok, with_reasoning=True, max_length=512, cache_dir=tmp_path / "c")
    assert len(ds) == 2
    text = tok.decode([t for t in ds[0]["labels"] if t != td.IGNORE])
    assert "3 + 1 =<think>\n4\n</think>" in text


MULTI = [
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "<think>\n2 + 2 = 4\n</think>\n\nIt is 4."},
    {"role": "user", "content": "And times 3?"},
    {"role": "assistant", "content": "<think>\n4 * 3 = 12\n</think>\n\nIt is 12."},
]


def test_all_turns_trains_every_assistant_turn(tok):
    def trained(ex):  # the trained token runs, decoded
        runs, cur = [], []
        for t, lab in zip(ex.input_ids, ex.labels, strict=True):
            if lab != td.IGNORE:
                cur.append(t)
            elif cur:
                runs, cur = [*runs, cur], []
        return [tok.decode(r) for r in [*runs, cur] if r]

    last = td.tokenize_example(MULTI, tok)
    assert trained(last) == ["<think>\n4 * 3 = 12\n</think>\n\nIt is 12.<|im_end|>"]
    both = td.tokenize_example(MULTI, tok, all_turns=True)
    assert trained(both) == [
        "<think>\n2 + 2 = 4\n</think>\n\nIt is 4.<|im_end|>",
        "<think>\n4 * 3 = 12\n</think>\n\nIt is 12.<|im_end|>",
    ]
    assert tok.decode(both.input_ids) == tok.decode(last.input_ids)  # the same text, more of it trained
    td.guard([(MULTI, both), (MULTI, last)], tok)  # both pass the template guard
    # a single-turn example is the same either way
    one = MULTI[:2]
    assert td.tokenize_example(one, tok, all_turns=True) == td.tokenize_example(one, tok)
    # the guard still catches a mask that trains the user's words
    bad = td.Tokenized(
        both.input_ids, list(both.input_ids), both.prompt_text, both.completion_text, both.extra
    )
    with pytest.raises(UserError, match="prompt tokens are trained"):
        td.guard([(MULTI, bad)], tok)


def test_all_turns_refuses_a_template_that_rewrites_history(tiny_tokenizer):
    t = AutoTokenizer.from_pretrained(tiny_tokenizer)
    t.chat_template = R1_DISTILL_LIKE.replace(  # R1-style: earlier turns lose their reasoning
        "{% if message['role'] == 'assistant' and '</think>' in content %}",
        "{% if message['role'] == 'assistant' and '</think>' in content and not loop.last %}",
    )
    td.apply_chat_settings(t, "model", None)
    td.tokenize_example(MULTI, t)  # the last turn alone is fine
    with pytest.raises(UserError, match="renders assistant turn 1 differently"):
        td.tokenize_example(MULTI, t, all_turns=True)


def test_all_turns_through_the_train_cli(tmp_path, tiny_qwen, run_cli):
    data = tmp_path / "multi.jsonl"
    data.write_text(json.dumps({"messages": MULTI}) + "\n")
    out = tmp_path / "m"
    args = ["train", "--student", tiny_qwen, "--data", data, "--method", "full", "--max-steps", "1",
            "--output", out, "--chat-template", "chatml", "--all-turns"]  # fmt: skip
    proc = run_cli(*args, env={"DISTILL_CACHE": str(tmp_path / "cache")}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "manifest.json").read_text())
    assert summary["config"]["all_turns"] is True


def test_guard_catches_mask_over_prompt(tok):
    msgs = [
        {"role": "user", "content": "What is 3 + 1?"},
        {"role": "assistant", "content": "<think>\nok\n</think>\n\n4"},
    ]
    ex = td.tokenize_example(msgs, tok)
    bad = td.Tokenized(
        ex.input_ids, list(ex.input_ids), ex.prompt_text, ex.completion_text
    )  # trains everything
    with pytest.raises(UserError, match="prompt tokens are trained"):
        td.guard([(msgs, bad)], tok)


def test_guard_catches_missing_end_of_turn_and_empty(tok):
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>\nr\n</think>\n\na"}]
    ex = td.tokenize_example(msgs, tok)
    no_eos = td.Tokenized(ex.input_ids[:-1], ex.labels[:-1], ex.prompt_text)
    with pytest.raises(UserError, match="end-of-turn"):
        td.guard([(msgs, no_eos)], tok)
    empty = td.Tokenized(ex.input_ids, [td.IGNORE] * len(ex.input_ids), ex.prompt_text)
    with pytest.raises(UserError, match="no trainable tokens"):
        td.guard([(msgs, ex), (msgs, empty)], tok)


def test_wrong_eos_is_refused(tiny_tokenizer):
    t = AutoTokenizer.from_pretrained(tiny_tokenizer)
    td.apply_chat_settings(t, "chatml", "<|eot_id|>")  # a real token, but not the template's end of turn
    with pytest.raises(UserError, match="does not end the assistant turn"):
        td.tokenize_example([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], t)
    with pytest.raises(UserError, match="not a token"):
        td.apply_chat_settings(t, "chatml", "<nope>")


def test_no_reasoning_trains_answers_only(tmp_path, tok):
    data = write_kept(tmp_path / "kept", [trace(i) for i in range(3)])
    ds, stats = td.tokenize_dataset(data, tok, with_reasoning=False, max_length=512, cache_dir=tmp_path / "c")
    assert stats.kept == 3
    text = tok.decode([x for x in ds[0]["labels"] if x != td.IGNORE])
    assert text == "The answer is 4.<|im_end|>"
    assert "<think>" not in tok.decode(ds[0]["input_ids"])


def test_overlength_dropped_or_truncated_and_cache_reused(tmp_path, tok):
    traces = [trace(i) for i in range(4)] + [trace(9, reasoning="step " * 200)]
    data = write_kept(tmp_path / "kept", traces)
    ds, stats = td.tokenize_dataset(data, tok, with_reasoning=True, max_length=100, cache_dir=tmp_path / "c")
    assert (stats.examples, stats.kept, stats.dropped_overlength, stats.cached) == (5, 4, 1, False)
    assert max(len(x) for x in ds["input_ids"]) <= 100
    ds2, stats2 = td.tokenize_dataset(
        data, tok, with_reasoning=True, max_length=100, cache_dir=tmp_path / "c"
    )
    assert stats2.cached and ds2["input_ids"] == ds["input_ids"]
    ds3, stats3 = td.tokenize_dataset(
        data, tok, with_reasoning=True, max_length=100, overlong="truncate", cache_dir=tmp_path / "c"
    )
    assert (stats3.kept, stats3.truncated, stats3.cached) == (5, 1, False)
    assert all(len(x) <= 100 for x in ds3["input_ids"])
    # a changed data file is a cache miss
    write_kept(tmp_path / "kept", traces[:2])
    _, stats4 = td.tokenize_dataset(data, tok, with_reasoning=True, max_length=100, cache_dir=tmp_path / "c")
    assert (stats4.cached, stats4.examples) == (False, 2)


def test_loads_parquet_messages_and_rejects_bad_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    msgs = [
        [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "<think>\nr\n</think>\n\na1"}],
        [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}],
    ]
    pq.write_table(pa.table({"messages": msgs}), tmp_path / "d.parquet")
    out = td.load_messages(str(tmp_path / "d.parquet"))
    assert out == msgs
    assert td.load_messages(str(tmp_path / "d.parquet"), with_reasoning=False)[0][1]["content"] == "a1"
    (tmp_path / "bad.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n")
    with pytest.raises(UserError, match=r"bad.jsonl:1: the last message must be the assistant's"):
        td.load_messages(str(tmp_path / "bad.jsonl"))
    with pytest.raises(UserError, match="no shard"):
        (tmp_path / "empty").mkdir()
        td.load_messages(str(tmp_path / "empty"))


def test_hub_dataset_cache_follows_the_revision(tmp_path, tok, monkeypatch):
    """A Hub dataset id is cached by the files it loaded: a new revision is tokenized afresh."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    def revision(name: str, answer: str) -> str:
        msgs = [[{"role": "user", "content": "q"}, {"role": "assistant", "content": answer}]]
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"messages": msgs}), path)
        return str(path)

    files = {"org/ds": revision("rev1", "first answer")}
    real = datasets.load_dataset
    # the Hub cannot be reached here: the id resolves to the local parquet file of its current revision
    monkeypatch.setattr(
        datasets, "load_dataset", lambda d, split: real("parquet", data_files=files[d], split=split)
    )
    monkeypatch.setattr("distill.resolve.check_hub", lambda *a, **k: None)  # no Hub (nor its cache) here

    def tokenize():
        td._hub_dataset.cache_clear()  # a new process
        return td.tokenize_dataset(
            "org/ds", tok, with_reasoning=True, max_length=512, cache_dir=tmp_path / "c"
        )

    ds, stats = tokenize()
    assert not stats.cached and "first answer" in tok.decode(ds[0]["input_ids"])
    assert tokenize()[1].cached  # the same revision: from the cache
    files["org/ds"] = revision("rev2", "second answer")  # the dataset was updated on the Hub
    ds, stats = tokenize()
    assert not stats.cached and "second answer" in tok.decode(ds[0]["input_ids"])


def test_rejected_traces_are_skipped(tmp_path):
    traces = [trace(0), {**trace(1), "verdict": "wrong_answer"}]
    data = write_kept(tmp_path / "kept", traces)
    assert len(td.load_messages(data)) == 1


def test_packed_sequences_do_not_attend_across(tiny_qwen, tiny_llama):
    """Padding-free packing (position_ids, no attention mask) gives the same logits as separate rows."""
    import torch
    from transformers import AutoModelForCausalLM

    for path in (tiny_qwen, tiny_llama):
        model = AutoModelForCausalLM.from_pretrained(path).eval()
        a, b = torch.tensor([[5, 6, 7, 8, 9]]), torch.tensor([[10, 11, 12]])
        with torch.no_grad():
            la = model(input_ids=a).logits
            lb = model(input_ids=b).logits
            packed = torch.cat([a, b], 1)
            pos = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2]])
            lp = model(input_ids=packed, position_ids=pos, use_cache=False).logits  # as SFTTrainer calls it
        assert torch.allclose(lp[:, :5], la, atol=1e-5)
        assert torch.allclose(lp[:, 5:], lb, atol=1e-5)
