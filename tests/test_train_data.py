"""Templating, loss masks, the template guard, length handling and the tokenization cache."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from distill import ingest
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
    args = ["train", "--student", tiny_qwen, "--input", data, "--method", "full", "--max-steps", "1",
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
        td.guard([(msgs, empty)], tok)
    report = td.guard([(msgs, ex), (msgs, empty), (msgs, ex)], tok)  # one bad row of three: dropped
    assert [i for i, _ in report.failures] == [1] and "no trainable tokens" in report.failures[0][1]


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
    with pytest.raises(UserError, match="no data files"):
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
        ingest.load_hub.cache_clear()  # a new process
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


# ---------------------------------------------------------------------------- training text (issues 14, 15)


def trained(tok, labels) -> str:
    return tok.decode([t for t in labels if t != td.IGNORE])


def chat(assistant: str, user: str = "What is 3 + 1?") -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def tokenize(tmp_path, data, tok, **kw):
    kw = {"with_reasoning": True, "max_length": 512, "cache_dir": tmp_path / "c", **kw}
    return td.tokenize_dataset(data, tok, **kw)


SECOND_BLOCK_OR_STRAY_TAG = [
    # issue 14: `content` still holds the think block the `reasoning` field already has
    {"reasoning": "3 + 1 = 4.", "content": "<think>\n3 + 1 = 4.\n</think>\n\nThe answer is 4."},
    {"reasoning": "", "content": "<think>a</think>b<think>c</think>The answer is 4."},  # two blocks
    {"reasoning": "3 + 1 =<think>\n4"},  # a stray opening tag inside the reasoning
    {"content": "The answer is 4.</think>"},  # a stray closing tag in the answer
    {"content": "<|end_of_thought|>The answer is 4."},  # a stray Sky-T1 marker
    {"reasoning": "I <thought>guess</thought> 4."},
]


@pytest.mark.parametrize("bad", SECOND_BLOCK_OR_STRAY_TAG)
def test_guard_drops_a_turn_with_a_second_think_block_or_a_stray_tag(tmp_path, tok, bad):
    data = write_kept(tmp_path / "kept", [trace(1), {**trace(0), **bad}, trace(2)])
    ds, stats = tokenize(tmp_path, data, tok)
    assert (stats.examples, stats.kept, stats.dropped_guard) == (3, 2, 1)
    assert "shard-00000.jsonl:2: more than one think block or a stray" in stats.dropped_rows[0]
    for labels in ds["labels"]:
        text = trained(tok, labels)
        assert text.count("<think>") == 1 and text.count("</think>") == 1


R, A = "3 + 1 = 4, so the sum is four.", "The answer is \\boxed{4}."
MARKER_STYLES = [
    f"<think>\n{R}\n</think>\n\n{A}",
    f"<think>{R}</think>{A}",
    f"{R}</think>\n\n{A}",  # R1: the opening tag was in the prompt
    f"<|begin_of_thought|>\n\n{R}\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n{A}\n\n<|end_of_solution|>",
    f"<|begin_of_thought|>{R}<|end_of_thought|>{A}",
    f"{R}\n<|end_of_thought|>\n<|begin_of_solution|>{A}<|end_of_solution|>",
]


def test_every_marker_style_trains_one_think_block_or_none_without_reasoning(tmp_path, tok):
    data = write_jsonl(tmp_path / "d.jsonl", [chat(m) for m in MARKER_STYLES])
    ds, stats = tokenize(tmp_path, data, tok)
    assert stats.kept == len(MARKER_STYLES) and stats.dropped_guard == 0
    for labels in ds["labels"]:
        assert trained(tok, labels) == f"<think>\n{R}\n</think>\n\n{A}<|im_end|>"
    ds, stats = tokenize(tmp_path, data, tok, with_reasoning=False)  # --no-reasoning
    assert stats.kept == len(MARKER_STYLES) and "answer-only, no think block added" in stats.think_block
    for ids, labels in zip(ds["input_ids"], ds["labels"], strict=True):
        assert trained(tok, labels) == f"{A}<|im_end|>"
        assert not td.STRAY_TAG.search(tok.decode(ids)) and R not in tok.decode(ids)


@pytest.mark.parametrize("reasoning", ["", None, " \n "])
def test_answer_only_data_gets_no_empty_think_block(tmp_path, tok, reasoning):
    rows = [{**trace(0), "reasoning": reasoning}, {**trace(1), "reasoning": reasoning}]
    data = write_kept(tmp_path / "kept", rows)
    ds, stats = tokenize(tmp_path, data, tok)
    assert trained(tok, ds["labels"][0]) == "The answer is 4.<|im_end|>"
    assert stats.think_block == "2 answer-only, no think block added"
    # an empty block in chat data is no reasoning either; a block with reasoning is kept (reverse case)
    data = write_jsonl(
        tmp_path / "m.jsonl", [chat("<think>\n\n</think>\n\nIt is 4."), chat("<think>4</think>It is 4.")]
    )
    ds, stats = tokenize(tmp_path, data, tok)
    assert [trained(tok, x) for x in ds["labels"]] == [
        "It is 4.<|im_end|>",
        "<think>\n4\n</think>\n\nIt is 4.<|im_end|>",
    ]
    assert (
        stats.think_block
        == "1 with the data's reasoning in one think block; 1 answer-only, no think block added"
    )


QWEN3_LIKE = (  # writes a think block into every assistant turn itself, as Qwen3's template does
    "{% for message in messages %}{% if message['role'] == 'assistant' %}"
    "{% set content = message['content'] %}{% set reasoning = '' %}"
    "{% if '</think>' in content %}"
    "{% set reasoning = content.split('</think>')[0].split('<think>')[-1].strip('\n') %}"
    "{% set content = content.split('</think>')[-1].lstrip('\n') %}{% endif %}"
    "{{ '<|im_start|>assistant\n<think>\n' + reasoning + '\n</think>\n\n' + content + '<|im_end|>\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def test_a_template_that_writes_its_own_think_block_keeps_it_and_says_so(tmp_path, tiny_tokenizer):
    t = AutoTokenizer.from_pretrained(tiny_tokenizer)
    t.chat_template = QWEN3_LIKE
    td.apply_chat_settings(t, "model", None)
    data = write_kept(tmp_path / "kept", [{**trace(0), "reasoning": ""}, trace(1)])
    ds, stats = tokenize(tmp_path, data, t)
    assert trained(t, ds["labels"][0]) == "<think>\n\n</think>\n\nThe answer is 4.<|im_end|>"
    assert (
        "1 answer-only, 1 of them given an empty think block by the chat template itself" in stats.think_block
    )


def normalizing_tokenizer(path, normalizer):
    t = AutoTokenizer.from_pretrained(path)
    t.backend_tokenizer.normalizer = normalizer  # as Qwen2's (NFC) and some SentencePiece ones (NFKC) do
    td.apply_chat_settings(t, "chatml", None)
    return t


@pytest.mark.parametrize(
    "form, text",
    [
        ("NFC", "Die Antwort ist a\u0308."),  # a letter + U+0308 COMBINING DIAERESIS
        ("NFC", "caf\u0065\u0301 costs 4"),
        ("NFC", "n\u0303 and \u1100\u1161 (decomposed Hangul)"),
        ("NFKC", "the \ufb01nal answer is \uff14"),  # ligature fi, full-width 4
        ("NFKC", "x\u00b2 = 4"),
    ],
)
def test_guard_compares_text_after_unicode_normalisation(tmp_path, tiny_tokenizer, form, text):
    from tokenizers import normalizers

    t = normalizing_tokenizer(tiny_tokenizer, getattr(normalizers, form)())
    msgs = chat(f"<think>\nso {text}\n</think>\n\n{text}")["messages"]
    report = td.guard([(msgs, td.tokenize_example(msgs, t))], t)
    assert (report.failures, report.with_think) == ([], 1)
    data = write_kept(tmp_path / "kept", [trace(0, reasoning=text, content=text), trace(1)])
    assert tokenize(tmp_path, data, t)[1].kept == 2
    # reverse: an answer that really is missing from the trained tokens is still refused
    other = [msgs[0], {"role": "assistant", "content": f"<think>\nso {text}\n</think>\n\nsomething else"}]
    with pytest.raises(UserError, match="answer is missing"):
        td.guard([(other, td.tokenize_example(msgs, t))], t)


def test_guard_failures_are_fatal_only_when_most_rows_fail(tmp_path, tok):
    stray = {**trace(0), "content": "The answer is 4.</think>"}
    strays = [{**stray, "id": f"p0:{k}", "sample": k} for k in (1, 2, 3)]  # ids are unique on read
    rows = [trace(0), strays[0], trace(1), trace(2), trace(3)]
    ds, stats = tokenize(tmp_path, write_kept(tmp_path / "a", rows), tok)
    assert (stats.kept, stats.dropped_guard, len(stats.dropped_rows)) == (4, 1, 1)
    rows = [strays[0], trace(0), strays[1], strays[2], trace(1)]
    with pytest.raises(UserError, match=r"stray '</think>'.*shard-00000.jsonl:1; 3 of 5 rows fail"):
        tokenize(tmp_path, write_kept(tmp_path / "b", rows), tok)


SPECIAL_TEXT = [  # (template, which message, text holding special-token strings)
    (
        "chatml",
        "reasoning",
        "stop here<|im_end|> no, go on <|im_end|> and on<|im_end|>.",
    ),  # issue 15: 3 times
    ("chatml", "answer", "<|im_start|>assistant The answer is 4."),
    ("chatml", "user", "Ignore <|endoftext|> and add 3 + 1."),
    ("llama3", "reasoning", "then <|eot_id|><|start_header_id|>user<|end_header_id|> more"),
]


@pytest.mark.parametrize("template, where, text", SPECIAL_TEXT)
def test_special_token_text_in_a_message_is_plain_text(
    tiny_tokenizer, tiny_llama_tokenizer, template, where, text
):
    t = AutoTokenizer.from_pretrained(tiny_tokenizer if template == "chatml" else tiny_llama_tokenizer)
    eos = td.apply_chat_settings(t, template, None)
    eos_id = t.convert_tokens_to_ids(eos)
    user, reasoning, answer = "What is 3 + 1?", "3 + 1 = 4.", "It is 4."
    user, reasoning, answer = [
        text if w == where else v
        for w, v in zip(("user", "reasoning", "answer"), (user, reasoning, answer), strict=True)
    ]
    msgs = chat(f"<think>\n{reasoning}\n</think>\n\n{answer}", user)["messages"]
    ex = td.tokenize_example(msgs, t)
    assert (
        ex.input_ids.count(eos_id) == 2
    )  # the user's and the assistant's end of turn, as the template writes
    assert [k for k, x in enumerate(ex.labels) if x == eos_id] == [len(ex.labels) - 1]
    assert text in t.decode(ex.input_ids)  # the text itself survives, as plain text
    specials = {t.convert_tokens_to_ids(s) for s in td.control_tokens(t)}
    first = next(k for k, x in enumerate(ex.labels) if x != td.IGNORE)
    assert not specials & set(ex.input_ids[first:-1])  # no special id inside the trained turn
    assert td.guard([(msgs, ex)], t).failures == []
    assert sum(td.plain_specials(ex).values()) == len(td._control_re(td.control_tokens(t)).findall(text))
    # reverse: the same text encoded the old way (special-token text as the token) is refused
    old = [
        t(td.unmark(s), add_special_tokens=False)["input_ids"] for s in (ex.prompt_text, ex.completion_text)
    ]
    bad = td.Tokenized(
        old[0] + old[1], [td.IGNORE] * len(old[0]) + old[1], ex.prompt_text, ex.completion_text
    )
    with pytest.raises(UserError, match="times in the tokens where the chat template writes it"):
        td.guard([(msgs, bad)], t)


def generated(i: int, **kw) -> dict:
    """A trace as `distill generate` writes it: no `verdict` (never filtered)."""
    rec = {**trace(i), "reasoning_closed": True, **kw}
    del rec["verdict"]
    return rec


UNFINISHED = [
    dict(finish_reason="length", reasoning="3 + 1 = ... let me", content="", reasoning_closed=False),
    dict(finish_reason="length", content="The answer is"),  # cut inside the answer
    dict(reasoning_closed=False, content=""),  # never closed its reasoning
    dict(content=""),  # stopped with an empty answer
    dict(finish_reason=None, reasoning="", content="<think>\n3 + 1 =", reasoning_closed=None),  # a dump
]


@pytest.mark.parametrize("cut", UNFINISHED)
def test_unfiltered_traces_with_unfinished_ones_are_refused_and_dropped_even_when_allowed(tmp_path, tok, cut):
    data = write_kept(tmp_path / "traces", [generated(0), generated(1, **cut), generated(2)])
    with pytest.raises(
        UserError, match=r"unfiltered traces.*1 of 3 are unfinished.*shard-00000.jsonl:2.*--allow-unfiltered"
    ):
        tokenize(tmp_path, data, tok)
    ds, stats = tokenize(tmp_path, data, tok, allow_unfiltered=True)
    assert (stats.examples, stats.kept, stats.dropped_unfinished) == (3, 2, 1)
    assert "shard-00000.jsonl:2" in stats.dropped_rows[0]
    assert all(trained(tok, x).endswith("</think>\n\nThe answer is 4.<|im_end|>") for x in ds["labels"][:1])


def test_finished_or_filtered_traces_need_no_flag(tmp_path, tok):
    ds, stats = tokenize(tmp_path, write_kept(tmp_path / "a", [generated(0), generated(1)]), tok)
    assert (stats.kept, stats.dropped_unfinished) == (2, 0)  # unfiltered, all finished: trained
    kept_but_cut = {**trace(1), "finish_reason": "length", "content": ""}  # filter never keeps one; dropped
    ds, stats = tokenize(tmp_path, write_kept(tmp_path / "b", [trace(0), kept_but_cut]), tok)
    assert (stats.kept, stats.dropped_unfinished) == (1, 1)
    rows = [chat("<think>\n3 + 1 = 4\n</think>\n\nIt is 4."), chat("<think>\n3 + 1 = ")]  # chat data, cut
    ds, stats = tokenize(tmp_path, write_jsonl(tmp_path / "m.jsonl", rows), tok)
    assert (stats.kept, stats.dropped_unfinished) == (1, 1)


@pytest.mark.parametrize(
    "assistant, why",
    [
        ("<think>\n3 + 1 = 4\n</think>\n\n", "empty answer"),
        ("<think>\n3 + 1 = 4", "reasoning never closed"),
        (
            "<|begin_of_thought|>3 + 1 = 4<|end_of_thought|><|begin_of_solution|>It is",
            "reasoning never closed",
        ),
        ("   ", "empty answer"),
    ],
)
def test_guard_checks_the_answer_even_when_it_is_empty(tok, assistant, why):
    msgs = chat(assistant)["messages"]
    with pytest.raises(UserError, match=why):
        td.guard([(msgs, td.tokenize_example(msgs, tok))], tok)
    ok = chat("<think>\n3 + 1 = 4\n</think>\n\nIt is 4.")["messages"]  # reverse: a complete turn passes
    assert td.guard([(ok, td.tokenize_example(ok, tok))], tok).failures == []


def test_show_marks_the_trained_tokens(tok):
    msgs = chat("<think>\n3 + 1 = 4\n</think>\n\nIt is 4.")["messages"]
    shown = td.show(td.tokenize_example(msgs, tok), tok)
    assert shown == (
        "<|im_start|>user\nWhat is 3 + 1?<|im_end|>\n<|im_start|>assistant\n"
        "⟦<think>\n3 + 1 = 4\n</think>\n\nIt is 4.<|im_end|>⟧"
    )
    both = td.show(td.tokenize_example(MULTI, tok, all_turns=True), tok)
    assert both.count("⟦") == 2 and "⟦<think>\n2 + 2 = 4\n</think>\n\nIt is 4.<|im_end|>⟧" in both


def test_show_example_prints_example_n_and_does_not_train(tmp_path, tiny_tokenizer, capsys):
    from distill.train import TrainConfig, run

    data = write_kept(tmp_path / "traces", [generated(0), generated(1, finish_reason="length", content="")])
    cfg = TrainConfig(student=str(tiny_tokenizer), data=data, chat_template="chatml", show_example=0)
    with pytest.raises(UserError, match="--allow-unfiltered"):
        run(cfg)
    out = run(TrainConfig(**{**cfg.__dict__, "allow_unfiltered": True}))
    printed = capsys.readouterr().out
    assert out["guard"] == "ok" and out["where"].endswith("shard-00000.jsonl:1")
    assert "<|im_start|>user\nWhat is 3 + 1?<|im_end|>\n<|im_start|>assistant\n⟦<think>\n" in printed
    assert "think block: the data's reasoning" in printed and "1 unfinished traces are left out" in printed
    with pytest.raises(UserError, match="has 1 trainable examples"):
        run(TrainConfig(**{**cfg.__dict__, "allow_unfiltered": True, "show_example": 1}))


def test_show_example_and_allow_unfiltered_through_the_cli(tmp_path, tiny_tokenizer, run_cli):
    data = write_kept(tmp_path / "traces", [generated(0), generated(1, finish_reason="length", content="")])
    out = tmp_path / "out"
    args = [
        "train",
        "--student",
        tiny_tokenizer,
        "--input",
        data,
        "--chat-template",
        "chatml",
        "--output",
        out,
    ]
    proc = run_cli(*args, "--show-example", "0", "--no-reasoning", "--allow-unfiltered")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "<|im_start|>assistant\n⟦The answer is 4.<|im_end|>⟧" in proc.stdout
    assert "think block: none (answer-only)" in proc.stdout and not out.exists()


# ---------------------------------------------------------------------------- fix-train regressions


def test_the_log_counts_unfinished_and_guard_drops_apart(tmp_path, tok):
    rows = [
        trace(0),
        {**trace(1), "finish_reason": "length", "content": ""},  # unfinished, not the guard's
        {**trace(2), "reasoning_closed": False, "id": "p2:1", "sample": 1},  # unfinished too
        {**trace(3), "content": "The answer is 4.</think>"},  # the guard's
        trace(4),
        trace(5),
    ]
    _, stats = tokenize(tmp_path, write_kept(tmp_path / "k", rows), tok)
    assert (stats.kept, stats.dropped_unfinished, stats.dropped_guard) == (3, 2, 1)
    assert stats.unfinished_reasons == {"finish_reason=length": 1, "reasoning never closed": 1}
    lines = stats.lines()
    i_cut = next(i for i, ln in enumerate(lines) if ln.startswith("dropped 2 unfinished"))
    i_guard = lines.index("template guard dropped 1 rows it cannot accept")
    assert "1 finish_reason=length" in lines[i_cut] and "1 reasoning never closed" in lines[i_cut]
    assert [ln for ln in lines[i_guard + 1 :]] == [f"  {stats.guard_rows[0]}"]
    assert "shard-00000.jsonl:4" in stats.guard_rows[0]
    assert all("shard-00000.jsonl:4" not in ln for ln in lines[i_cut:i_guard])


@pytest.mark.parametrize(
    "rows, needle",
    [
        (
            [{**trace(0), "finish_reason": "length", "content": ""}, {**trace(1), "reasoning_closed": False}],
            r"0 trainable examples: all 2 are unfinished traces \(1 finish_reason=length, 1 reasoning never closed\)",
        ),
        (
            [
                {**trace(0), "verdict": "format"},
                {**trace(1), "verdict": "correct"},
                {**trace(2), "verdict": "correct"},
            ],
            r"0 training examples: every record has a verdict other than kept \(2 correct, 1 format\)",
        ),
        (
            [{**trace(0), "content": "x" * 3000}, {**trace(1), "reasoning": "y " * 3000}],
            r"0 trainable examples: 2 longer than --max-length 512.*0 refused by the template guard, 0 unfinished",
        ),
    ],
)
def test_zero_trainable_examples_says_why(tmp_path, tok, rows, needle):
    with pytest.raises(UserError, match=needle):
        tokenize(tmp_path, write_kept(tmp_path / "k", rows), tok)


def test_show_example_with_nothing_trainable_says_why(tmp_path, tiny_tokenizer):
    from distill.train import TrainConfig, run

    rows = [generated(0, finish_reason="length", content=""), generated(1, content="")]
    data = write_kept(tmp_path / "traces", rows)
    cfg = TrainConfig(
        student=str(tiny_tokenizer), data=data, chat_template="chatml", show_example=0, allow_unfiltered=True
    )
    with pytest.raises(
        UserError,
        match=r"0 trainable examples: all 2 are unfinished traces \(1 empty answer, 1 finish_reason=length\)",
    ):
        run(cfg)


@pytest.mark.parametrize(
    "assistant, why",
    [
        ("", "empty answer"),
        ("<think>\n2+2=", "reasoning never closed"),
        ("<think>2+2=4</think>  ", "empty answer"),
        ("<|begin_of_thought|>2+2=", "reasoning never closed"),
    ],
)
def test_unfinished_chat_rows_name_what_the_text_shows_not_an_inferred_finish_reason(
    tmp_path, tok, assistant, why
):
    rows = [chat(assistant), chat("<think>3+1=4</think>It is 4.", user="Other?")]
    _, stats = tokenize(tmp_path, write_jsonl(tmp_path / "m.jsonl", rows), tok)
    assert stats.unfinished_reasons == {why: 1} and stats.kept == 1
    # reverse: a finish_reason the data itself gives is named as such
    rows = [{**generated(0), "finish_reason": "length"}, generated(1)]
    _, stats = tokenize(tmp_path, write_kept(tmp_path / "k", rows), tok, allow_unfiltered=True)
    assert stats.unfinished_reasons == {"finish_reason=length": 1}


def test_messages_of_a_trace_record_are_read_by_the_ingest_normaliser(tmp_path):
    """A trace record that carries its own `messages` (read as --format traces) trains on them, read
    by the same normaliser as chat data: JSON text, ShareGPT from/value, role aliases, text parts."""
    turns = [
        [{"role": "user", "content": "q0"}, {"role": "assistant", "content": "<think>r0</think>a0"}],
        json.dumps(
            [{"role": "User", "content": "q1"}, {"role": "Assistant", "content": "<think>r1</think>a1"}]
        ),
        [{"from": "human", "value": "q2"}, {"from": "gpt", "value": "<think>r2</think>a2"}],
        [
            {"role": "user", "content": [{"type": "text", "text": "q3"}]},
            {"role": "assistant", "content": "a3"},
        ],
    ]
    rows = [{"problem": f"p{i}", "content": "x", "messages": m} for i, m in enumerate(turns)]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = td.load_rows(str(path), with_reasoning=False, read=ingest.ReadOptions(format="traces"))
    assert [r.messages for r in loaded] == [
        [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}] for i in range(4)
    ]
    for bad, needle in [
        ([{"role": "user", "content": "q"}], "t.jsonl:1: the last message must be the assistant's"),
        ("not json", "t.jsonl:1: field 'messages' is a string but not JSON"),
        ([], "t.jsonl:1: field 'messages' must be a non-empty list"),
        ([{"role": "user"}, {"role": "assistant", "content": "a"}], r"t.jsonl:1: messages\[0\] needs 'role'"),
    ]:
        path.write_text(json.dumps({"problem": "p", "content": "x", "messages": bad}) + "\n")
        with pytest.raises(UserError, match=needle):
            td.load_rows(str(path), read=ingest.ReadOptions(format="traces"))
