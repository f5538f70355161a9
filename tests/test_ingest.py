"""distill.ingest: every supported dataset format through filter, select and train, the reasoning
split once on read, duplicate ids, file types, and the visible defaults (domain, finish_reason, labels)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from distill import filter as filter_stage
from distill import ingest
from distill.errors import UserError
from distill.filter import FilterConfig
from distill.ingest import ALL_MARKERS, ReadOptions, TraceReader, read_traces, split_reasoning
from distill.records import read_records
from distill.select import SelectConfig
from distill.select import run as run_select
from tests.trace_formats import FORMATS, PROBLEMS, Fixture, answer, openr1_rows, reasoning

# ---------------------------------------------------------------------------- splitting


@pytest.mark.parametrize(
    "text, want",
    [
        ("<think>\nstep\n</think>\n\nThe answer is 4.", ("step", "The answer is 4.", True)),
        ("  <think>a\n\nb</think>4", ("a\n\nb", "4", True)),
        ("step one\nstep two\n</think>\n\n**4**", ("step one\nstep two", "**4**", True)),  # lone </think>
        (
            "<|begin_of_thought|>\n\nx\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n42\n\n<|end_of_solution|>",
            ("x", "42", True),
        ),
        ("<|begin_of_thought|>\nx\n<|end_of_thought|>\nplain 42", ("x", "plain 42", True)),
        ("<think>\nstill thinking when cut", ("still thinking when cut", "", False)),
        ("<|begin_of_thought|>\ncut short", ("cut short", "", False)),
        (
            "<|begin_of_thought|>x<|end_of_thought|><|begin_of_solution|>half an ans",
            ("x", "half an ans", False),
        ),
    ],
)
def test_split_reasoning(text, want):
    assert split_reasoning(text) == want


@pytest.mark.parametrize(
    "text",
    ["The answer is 4.", "Step 1: add.\nStep 2: done. \\boxed{4}", "I think the answer is 4 <thinking>"],
)
def test_no_reasoning_block_is_not_split(text):
    assert split_reasoning(text) == (None, text.strip(), True)


def test_reasoning_field_wrapped_in_its_own_tags_is_unwrapped(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [{"problem": "p", "reasoning": "<think>\nr\n</think>", "content": "4", "id": "a"}]
    path.write_text(json.dumps(rows[0]) + "\n")
    rec = read_traces(path)[0]
    assert (rec["reasoning"], rec["content"]) == ("r", "4")


# ---------------------------------------------------------------------------- every format


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> dict[str, Fixture]:
    root = tmp_path_factory.mktemp("formats")
    return {name: make(root / name) for name, make in FORMATS.items()}


def _clean(text: str) -> bool:
    return not any(m in text for m in ALL_MARKERS)


def _assistant_ok(text: str, answer_only: bool) -> None:
    """Exactly one well-formed think block at the start (none for answer-only), no leftover markers."""
    if answer_only:
        assert _clean(text), text
        return
    assert text.startswith("<think>\n") and text.count("<think>") == 1 and text.count("</think>") == 1, text
    reasoning_text, _, rest = text.removeprefix("<think>\n").partition("\n</think>\n\n")
    assert reasoning_text.strip() and rest.strip() and _clean(reasoning_text) and _clean(rest), text


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_reads_into_separated_records(fixtures, name):
    fx = fixtures[name]
    reader = TraceReader(fx.path, ReadOptions(**fx.options))
    recs = [item.record for item in reader]
    assert len(recs) == fx.traces
    assert len({r["id"] for r in recs}) == fx.traces
    for r in recs:
        assert r["problem"] in {p for p, _ in PROBLEMS}
        assert _clean(r["reasoning"]) and _clean(r["content"]) and "\\boxed{" in r["content"]
        assert bool(r.get("answer_only")) == fx.answer_only
        if not fx.answer_only:
            assert r["reasoning"].startswith("Okay, so I need to solve this")
            assert r["content"].startswith("The answer is")
        assert r["finish_reason"] == "stop" and r["domain"] == "math"
    assert reader.stats.labels == fx.labels


EXPLICIT = {  # the --format name of each fixture
    "traces_raw_content": "traces",
    "messages_think": "messages",
    "messages_reasoning_content": "messages",
    "sharegpt_think": "sharegpt",
    "sharegpt_thought_markers": "sharegpt",
    "columns_openthoughts": "columns",
    "columns_openr1": "columns",
    "columns_flags": "columns",
    "eval_dump_answer_only": "columns",
    "folder_limo": "columns",
    "saved_dataset_s1k": "columns",
}


@pytest.mark.parametrize("name", list(FORMATS))
def test_explicit_format_reads_what_auto_detects(fixtures, name):
    fx = fixtures[name]
    auto = TraceReader(fx.path, ReadOptions(**fx.options))
    records = [i.record for i in auto]
    assert auto.stats.format == EXPLICIT[name]
    assert read_traces(fx.path, ReadOptions(format=EXPLICIT[name], **fx.options)) == records


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_through_filter(fixtures, name, tmp_path):
    fx = fixtures[name]
    cfg = FilterConfig(str(fx.path), str(tmp_path / "f"), read=ReadOptions(**fx.options), workers=1)
    funnel = filter_stage.run(cfg)
    by = {c["name"]: c["dropped"] for c in funnel["checks"]}
    assert funnel["input"] == fx.traces and funnel["bad_lines"] == 0
    assert by["correct"] == fx.wrong and funnel["kept"] == fx.traces - fx.wrong, funnel
    assert by["format"] == 0  # answer-only data is not "empty reasoning"
    kept = list(read_records(tmp_path / "f" / "kept"))
    assert all(r["reasoning"] == r["reasoning"].strip() and _clean(r["content"]) for r in kept)
    table = pq.read_table(tmp_path / "f" / "kept" / "data.parquet").to_pylist()
    assert len(table) == funnel["kept"]
    for row in table:
        _assistant_ok(row["messages"][-1]["content"], fx.answer_only)
    assert funnel["ingest"]["records"] == fx.traces


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_through_select(fixtures, name, tmp_path):
    fx = fixtures[name]
    read = ReadOptions(**fx.options)
    rep = run_select(SelectConfig(str(fx.path), str(tmp_path / "s"), read=read, strategy="random", budget=4))
    assert rep["selected"]["traces"] == 4 and rep["selected"]["prompts"] == 4
    chosen = list(read_records(tmp_path / "s" / "kept"))
    assert len({r["prompt_id"] for r in chosen}) == 4
    assert all(r.get("label") is not False for r in chosen)  # a sample labelled wrong is never picked
    for row in pq.read_table(tmp_path / "s" / "kept" / "data.parquet").to_pylist():
        _assistant_ok(row["messages"][-1]["content"], fx.answer_only)


@pytest.fixture(scope="module")
def tok(tiny_tokenizer):
    from transformers import AutoTokenizer

    from distill import train_data

    t = AutoTokenizer.from_pretrained(tiny_tokenizer)
    train_data.apply_chat_settings(t, "chatml", None)
    return t


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_through_train_data(fixtures, name, tok, tmp_path):
    """What `distill train` learns from each format: one think block (none for answer-only data),
    no leftover markers, a system turn kept; `--no-reasoning` leaves no marker of any kind."""
    from distill import train_data as td

    fx = fixtures[name]
    read = ReadOptions(**fx.options)
    for with_reasoning in (True, False):
        ds, stats = td.tokenize_dataset(
            str(fx.path),
            tok,
            with_reasoning=with_reasoning,
            max_length=1024,
            cache_dir=tmp_path / "c",
            read=read,
        )
        assert stats.kept == fx.traces
        for ex in ds:
            trained = tok.decode([t for t in ex["labels"] if t != td.IGNORE]).removesuffix("<|im_end|>")
            _assistant_ok(trained, fx.answer_only or not with_reasoning)
    prompt = tok.decode(ds[0]["input_ids"])
    assert ("You are a helpful assistant" in prompt) == (
        name in ("sharegpt_think", "sharegpt_thought_markers", "messages_think")
    )


@pytest.mark.slow
def test_train_cli_on_a_raw_dataset_with_column_flags(fixtures, tiny_qwen, tmp_path, run_cli):
    fx = fixtures["columns_flags"]
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in fx.options.items()]
    args = ["train", "--student", tiny_qwen, "--input", fx.path, "--method", "full", "--max-steps", "1",
            "--output", tmp_path / "m", "--chat-template", "chatml", *flags]  # fmt: skip
    proc = run_cli(*args, env={"DISTILL_CACHE": str(tmp_path / "cache")}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert (
        manifest["counts"]["examples"] == 12 and manifest["config"]["read"]["problem_column"] == "task_text"
    )
    assert "format columns: problem=task_text" in proc.stderr


# ---------------------------------------------------------------------------- silent corruption


def test_reasoning_is_rendered_once_through_filter_select_and_train(fixtures, tok, tmp_path):
    """Regression: `content` holding `<think>…</think>answer` (or a lone `</think>`) used to be
    rendered as `<think>\\n\\n</think>\\n\\n<think>…</think>answer` in kept/, select and training."""
    from distill import train_data as td

    fx = fixtures["traces_raw_content"]
    filter_stage.run(FilterConfig(str(fx.path), str(tmp_path / "f"), workers=1))
    kept = {r["id"]: r for r in read_records(tmp_path / "f" / "kept")}
    assert kept["r1-0:1"]["reasoning"] == reasoning(0, 1) and kept["r1-0:1"]["content"] == answer(0)
    want = f"<think>\n{reasoning(0, 0)}\n</think>\n\n{answer(0)}"
    rows = {r["id"]: r for r in pq.read_table(tmp_path / "f" / "kept" / "data.parquet").to_pylist()}
    assert rows["r1-0:0"]["messages"][1]["content"] == want
    run_select(
        SelectConfig(str(tmp_path / "f"), str(tmp_path / "s"), strategy="random", budget=6, per_prompt=2)
    )
    for row in pq.read_table(tmp_path / "s" / "kept" / "data.parquet").to_pylist():
        assert row["messages"][1]["content"].count("<think>") == 1
    ds, _ = td.tokenize_dataset(str(tmp_path / "s" / "kept"), tok, with_reasoning=True, max_length=1024,
                                cache_dir=tmp_path / "c")  # fmt: skip
    for ex in ds:
        text = tok.decode(ex["input_ids"])
        assert text.count("<think>") == 1 and text.count("</think>") == 1


def _dumps(folder: Path, n: int = 20, wrong_in_both: int = 5) -> Path:
    """Two R1 dumps of the same 20 problems, each numbered by problem (ids 0..19 in both)."""
    folder.mkdir(parents=True, exist_ok=True)
    for dump in ("dump_a", "dump_b"):
        rows = []
        for i in range(n):
            a, b = i + 10, 2 * i + 3
            wrong = i == wrong_in_both or (dump == "dump_b" and i % 3 == 0)
            rows.append(
                {
                    "id": str(i),
                    "problem": f"What is {a} + {b}?",
                    "answer": str(a + b),
                    "domain": "math",
                    "reasoning": f"{dump}: adding {a} and {b} gives {a + b}.",
                    "content": f"\\boxed{{{a + b + (1 if wrong else 0)}}}",
                    "finish_reason": "stop",
                }
            )
        (folder / f"{dump}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_duplicate_ids_are_an_error_naming_both_places(tmp_path):
    src = _dumps(tmp_path / "dumps")
    with pytest.raises(
        UserError, match=r"dump_b.jsonl:1: duplicate id '0' \(first at .*dump_a.jsonl:1\).*--reassign-ids"
    ):
        filter_stage.run(FilterConfig(str(src), str(tmp_path / "f"), workers=1, max_per_prompt=1))
    assert not (tmp_path / "f" / "manifest.json").exists()  # nothing half-made blocks the fixed re-run
    funnel = filter_stage.run(
        FilterConfig(
            str(src), str(tmp_path / "f"), workers=1, max_per_prompt=1, read=ReadOptions(reassign_ids=True)
        )
    )
    assert funnel["input"] == 40 and funnel["kept"] == 19  # one per problem; problem 5 is wrong in both dumps
    kept = list(read_records(tmp_path / "f" / "kept"))
    assert {r["id"].split(":")[0] for r in kept} <= {"dump_a.jsonl", "dump_b.jsonl"}
    assert all(r["source_id"] == str(int(r["id"].split(":")[1]) - 1) for r in kept)  # line n held id n-1
    assert len({r["prompt_id"] for r in kept}) == 19
    # the same error in train and select
    with pytest.raises(UserError, match="duplicate id '0'"):
        read_traces(src)
    with pytest.raises(UserError, match="duplicate id '0'"):
        run_select(SelectConfig(str(src), str(tmp_path / "s"), strategy="random", budget=3))


def test_one_id_for_two_different_problems_is_an_error(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "4"}], "id": "7"}
        for q in ("What is 2 + 2?", "What is 3 + 1?")
    ]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(
        UserError, match=r"c.jsonl:2: prompt id '7' is also used by a different problem at .*c.jsonl:1"
    ):
        read_traces(tmp_path / "c.jsonl")
    recs = read_traces(tmp_path / "c.jsonl", ReadOptions(reassign_ids=True))
    assert [r["id"] for r in recs] == ["c.jsonl:1", "c.jsonl:2"] and recs[0]["prompt_id"] != recs[1][
        "prompt_id"
    ]


# ---------------------------------------------------------------------------- file types


def test_filter_cli_reads_parquet_and_json_arrays(fixtures, tmp_path, run_cli):
    for name in ("columns_openr1", "messages_reasoning_content"):
        fx = fixtures[name]
        proc = run_cli("filter", "-i", fx.path, "-o", tmp_path / name, "--workers", "1")
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr and "malformed" not in proc.stderr
        funnel = json.loads((tmp_path / name / "funnel.json").read_text())
        assert funnel["input"] == fx.traces and funnel["kept"] == fx.traces - fx.wrong
        assert "inferred math" in proc.stderr  # the default is visible
    fx = fixtures["sharegpt_thought_markers"]
    proc = run_cli(
        "filter", "-i", fx.path, "-o", tmp_path / "explicit", "--format", "sharegpt", "--workers", "1"
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "explicit" / "funnel.json").read_text())["kept"] == fx.traces - fx.wrong


@pytest.mark.parametrize(
    "name, text, needle",
    [
        ("empty.jsonl", "", "no traces in this input"),
        ("blank.jsonl", "\n\n", "no traces in this input"),
        ("empty.json", "[]", "no traces in this input"),
        ("columns.json", json.dumps({"problem": [], "content": []}), "no traces in this input"),
        ("broken.json", '[{"problem": "p", "content": "c"},', "not valid JSON"),
        ("fake.jsonl", b"PAR1\x15\x04\x15\x80\xff\xfe".decode("latin-1"), "not UTF-8"),
        ("data.txt", "hello", "unsupported file type"),
    ],
)
def test_unreadable_or_empty_inputs_are_one_clear_error(tmp_path, name, text, needle):
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(UserError, match=needle) as err:
        filter_stage.run(FilterConfig(str(path), str(tmp_path / "o"), workers=1))
    assert str(path) in str(err.value)


def test_bad_lines_in_a_jsonl_dump(tmp_path, run_cli):
    src = tmp_path / "d.jsonl"
    good = {"problem": "What is 2 + 2?", "content": "<think>2+2=4</think>\\boxed{4}", "answer": "4"}
    src.write_text(json.dumps(good) + "\n{oops\n")
    proc = run_cli("filter", "-i", src, "-o", tmp_path / "o")
    assert (
        proc.returncode == 2
        and "d.jsonl:2: malformed JSON line" in proc.stderr
        and "--skip-bad-lines" in proc.stderr
    )
    proc = run_cli("filter", "-i", src, "-o", tmp_path / "o", "--skip-bad-lines")
    assert proc.returncode == 0, proc.stderr
    funnel = json.loads((tmp_path / "o" / "funnel.json").read_text())
    assert (funnel["input"], funnel["bad_lines"], funnel["kept"]) == (1, 1, 1)


def test_a_folder_of_mixed_files_and_a_hub_id_stand_in(tmp_path, monkeypatch):
    import datasets

    # a folder holding a jsonl and a parquet (hidden work folders are ignored)
    FORMATS["messages_think"](tmp_path / "mixed")
    FORMATS["columns_openr1"](tmp_path / "mixed" / "more")
    (tmp_path / "mixed" / ".work").mkdir()
    (tmp_path / "mixed" / ".work" / "junk.jsonl").write_text("{oops\n")
    assert len(read_traces(tmp_path / "mixed")) == 12 + 18
    # a Hub id with --split/--config, served by a local stand-in (the Hub cannot be reached in tests)
    calls = []

    def load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        if name != "open-r1/OpenR1-Math-220k" or split != "train":
            raise FileNotFoundError(f"Dataset '{name}' doesn't exist on the Hub")
        return datasets.Dataset.from_list(openr1_rows(4))

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr("distill.resolve.check_hub", lambda *a, **k: None)  # no Hub (nor its cache) here
    ingest.load_hub.cache_clear()
    opts = ReadOptions(dataset_config="default", split="train")
    funnel = filter_stage.run(
        FilterConfig("open-r1/OpenR1-Math-220k", str(tmp_path / "f"), read=opts, workers=1)
    )
    assert funnel["input"] == 12 and funnel["kept"] == 10
    assert calls[0] == ("open-r1/OpenR1-Math-220k", "default", "train")
    manifest = json.loads((tmp_path / "f" / "manifest.json").read_text())
    assert manifest["config"]["input_files"][0][0] == "open-r1/OpenR1-Math-220k"
    ingest.load_hub.cache_clear()
    with pytest.raises(UserError, match="not a loadable dataset id.*doesn't exist"):
        read_traces("nobody/nothing")
    ingest.load_hub.cache_clear()


# ---------------------------------------------------------------------------- defaults


def test_missing_domain_turns_verification_on_and_says_so(tmp_path, run_cli):
    rows = [
        {
            "problem": "What is 2 + 2?",
            "answer": "4",
            "content": f"<think>r{k}</think>\\boxed{{{4 + (k % 2)}}}",
        }
        for k in range(4)
    ] + [{"problem": "Write a haiku about rain.", "content": "<think>hm</think>Rain on the roof."}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = run_cli("filter", "-i", tmp_path / "d.jsonl", "-o", tmp_path / "o", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    funnel = json.loads((tmp_path / "o" / "funnel.json").read_text())
    assert {c["name"]: c["dropped"] for c in funnel["checks"]}["correct"] == 2
    assert funnel["kept"] == 3 and funnel["ingest"]["domain_inferred"] == {"general": 1, "math": 4}
    assert "inferred general for 1, math for 4" in " ".join(proc.stderr.split())
    # --domain sets it for every trace instead, and nothing is reported as inferred
    recs = read_traces(tmp_path / "d.jsonl", ReadOptions(domain="general"))
    assert {r["domain"] for r in recs} == {"general"} and not any(
        "domain" in r.get("inferred", {}) for r in recs
    )


def test_missing_finish_reason_is_inferred_from_the_text(tmp_path):
    texts = [
        "<think>done</think>\\boxed{4}",  # closed + answer: stop
        "done\n</think>\n\n\\boxed{4}",  # lone closing tag: stop
        "<think>still going when the budget ran ou",  # never closed: length
        "<think>closed</think>",  # closed, but no answer: length
        "<|begin_of_thought|>x<|end_of_thought|><|begin_of_solution|>\\boxed{4}",  # solution cut: length
    ]
    rows = [{"problem": "What is 2 + 2?", "answer": "4", "content": t} for t in texts]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recs = read_traces(tmp_path / "d.jsonl")
    assert [r["finish_reason"] for r in recs] == ["stop", "stop", "length", "length", "length"]
    assert all(r["inferred"]["finish_reason"] == r["finish_reason"] for r in recs)
    funnel = filter_stage.run(FilterConfig(str(tmp_path / "d.jsonl"), str(tmp_path / "o"), workers=1))
    assert funnel["checks"][0] == {**funnel["checks"][0], "name": "complete", "dropped": 3}
    assert funnel["ingest"]["finish_reason_inferred"] == {"length": 3, "stop": 2}
    # a finish_reason the data gives is kept as is
    rows[0]["finish_reason"] = "length"
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert read_traces(tmp_path / "d.jsonl")[0]["finish_reason"] == "length"


def _labelled_openr1(tmp_path: Path) -> Path:
    rows = openr1_rows()
    rows[1]["correctness_math_verify"][0] = False  # the dataset says wrong; it is right
    rows[2]["correctness_math_verify"][2] = True  # the dataset says right; it is wrong
    path = tmp_path / "openr1.parquet"
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_labels_are_cross_checked_against_the_verifier(tmp_path):
    path = _labelled_openr1(tmp_path)
    funnel = filter_stage.run(FilterConfig(str(path), str(tmp_path / "o"), workers=1))
    assert funnel["kept"] == 15  # the verifier decides
    lab = funnel["labels"]
    assert (lab["traces"], lab["compared"], lab["agree"]) == (18, 18, 16)
    assert (lab["label_true_verifier_wrong"], lab["label_false_verifier_correct"]) == (1, 1)
    assert lab["agreement"] == round(16 / 18, 4)
    assert any("89.0% agree" in n or "88.9% agree" in n for n in filter_stage.funnel_notes(funnel))
    kept = {r["id"]: r for r in read_records(tmp_path / "o" / "kept")}
    assert kept["uuid-1:0"]["label"] is False and kept["uuid-1:0"]["checks"]["correct"]["status"] == "correct"


def test_trust_labels_uses_the_dataset_verdict(tmp_path):
    path = _labelled_openr1(tmp_path)
    funnel = filter_stage.run(FilterConfig(str(path), str(tmp_path / "o"), workers=1, trust_labels=True))
    assert funnel["kept"] == 15 and funnel["labels"]["compared"] == 0  # nothing left to compare
    kept = {r["id"] for r in read_records(tmp_path / "o" / "kept")}
    assert "uuid-2:2" in kept and "uuid-1:0" not in kept  # the label wins, right or wrong
    rej = {r["id"]: r for r in read_records(tmp_path / "o" / "rejected")}
    assert rej["uuid-1:0"]["checks"]["correct"]["verifier"] == "label"
    # an explicit --label-column on trace records; labels given as strings
    rows = [
        {"id": f"a:{k}", "problem": "What is 2 + 2?", "answer": "4", "content": "<think>x</think>\\boxed{4}",
         "finish_reason": "stop", "judge": v}
        for k, v in enumerate(["correct", "incorrect", "yes"])
    ]  # fmt: skip
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    read = ReadOptions(label_column="judge")
    funnel = filter_stage.run(
        FilterConfig(
            str(tmp_path / "t.jsonl"),
            str(tmp_path / "o2"),
            workers=1,
            trust_labels=True,
            read=read,
            skip=["duplicate"],
        )
    )
    assert funnel["kept"] == 2
    (tmp_path / "bad.jsonl").write_text(json.dumps({**rows[0], "judge": "maybe"}) + "\n")
    with pytest.raises(UserError, match=r"bad.jsonl:1: label 'maybe' is not true/false"):
        read_traces(tmp_path / "bad.jsonl", read)


@pytest.mark.parametrize(
    "rows",
    [
        [{"problem": "What is 2 + 2?", "answer": "4"}],
        [{"question": "What is 2 + 2?", "solution": "It is 4."}],
        [{"prompt": "Say hi.", "id": 3}],
    ],
)
def test_a_problems_only_set_points_to_generate(tmp_path, run_cli, rows):
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = run_cli("filter", "-i", tmp_path / "p.jsonl", "-o", tmp_path / "o")
    assert (
        proc.returncode == 2
        and "problems-only set" in proc.stderr
        and "distill generate --prompts" in proc.stderr
    )
    assert len(proc.stderr.strip().splitlines()) == 1


def test_flags_naming_a_missing_column_list_the_columns(fixtures):
    fx = fixtures["columns_openthoughts"]
    with pytest.raises(
        UserError, match=r"no column 'thoughts' \(--reasoning-column\); columns are: deepseek_reasoning"
    ):
        read_traces(fx.path, ReadOptions(reasoning_column="thoughts"))
    with pytest.raises(UserError, match="--format: unknown 'alpaca'"):
        TraceReader(fx.path, ReadOptions(format="alpaca"))
    # an explicit format that does not fit the rows says which row and why
    with pytest.raises(UserError, match=r"item 1: row has no 'messages' field"):
        read_traces(fx.path, ReadOptions(format="messages"))


def test_overwrite_with_an_unchanged_config_redoes_the_work(fixtures, tmp_path, monkeypatch, caplog):
    fx = fixtures["messages_think"]
    cfg = FilterConfig(str(fx.path), str(tmp_path / "o"), workers=1)
    first = filter_stage.run(cfg)
    calls = []
    real = filter_stage._pass1
    monkeypatch.setattr(filter_stage, "_pass1", lambda *a: calls.append(1) or real(*a))
    assert filter_stage.run(cfg) == first and not calls  # a plain re-run is a no-op
    with caplog.at_level(logging.WARNING, logger="distill.records"):
        assert (
            filter_stage.run(FilterConfig(str(fx.path), str(tmp_path / "o"), workers=1, overwrite=True))
            == first
        )
    assert calls == [1] and "unchanged config: redoing the filter work" in caplog.text


# ---------------------------------------------------------------------------- fix-train regressions


@pytest.mark.parametrize(
    "text, want",
    [
        ("<THINK>a</THINK>b", ("a", "b", True)),
        ("<Think>\na\n</think >\nb", ("a", "b", True)),
        ("step</THINK>\n**4**", ("step", "**4**", True)),
        (
            "<|BEGIN_OF_THOUGHT|>x<|End_Of_Thought|><|Begin_of_Solution|>42<|END_OF_SOLUTION|>",
            ("x", "42", True),
        ),
        ("<THINK>cut", ("cut", "", False)),
        ("<thinking>a</thinking>b", ("a", "b", True)),  # other harnesses' variants
        ("<Reasoning>\na\n</Reasoning>\n\nb", ("a", "b", True)),
        ("<thought>a</thought>b", ("a", "b", True)),
    ],
)
def test_markers_split_in_any_case(text, want):
    assert split_reasoning(text) == want


def test_uppercase_think_reaches_train_text_clean(tmp_path):
    from distill.train_data import load_rows, split_thoughts

    assert split_thoughts("<THINK>r</THINK>a").reasoning == "r"
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": c}]}
        for i, c in enumerate(["<THINK>r0</THINK>a0", "<Think>r1</Think>a1", "r2</THINK>a2"])
    ]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for with_reasoning in (True, False):
        for i, row in enumerate(load_rows(str(path), with_reasoning=with_reasoning)):
            text = row.messages[-1]["content"]
            assert "THINK" not in text and "Think" not in text, text
            assert text.endswith(f"a{i}") and (f"r{i}" in text) == with_reasoning
            assert text.count("<think>") == text.count("</think>") == int(with_reasoning)


BAD_SHAPES = [
    ({"messages": [{"role": "user", "content": "q"}]}, "the last message must be the assistant's"),
    (
        {"messages": [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]},
        "must follow a user turn",
    ),
    ({"problem": "q", "generations": ["a", "b"], "correctness_math_verify": [True]}, "lists 1 values for 2"),
    ({"messages": "not json"}, "is a string but not JSON"),
    ({"problem": "  ", "content": "x"}, "problem (prompt text) is empty"),
]


@pytest.mark.parametrize("bad, needle", BAD_SHAPES)
def test_skip_bad_lines_skips_rows_of_the_wrong_shape(tmp_path, bad, needle):
    good = [{"problem": f"q{i}", "content": f"<think>r</think>{i}"} for i in range(3)]
    if "generations" in bad:
        good = [
            {"problem": f"q{i}", "generations": ["<think>r</think>1"], "correctness_math_verify": [True]}
            for i in range(3)
        ]
    elif "messages" in bad:
        good = [
            {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "4"}]}
            for i in range(3)
        ]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [good[0], bad, *good[1:]]))
    with pytest.raises(UserError, match=re.escape(needle)) as err:  # without the flag: the clear error stays
        read_traces(path)
    assert f"{path}:2" in str(err.value)
    reader = TraceReader(path, skip_bad_lines=True)
    items = list(reader)
    assert [i.record is None for i in items] == [False, True, False, False]
    assert reader.stats.bad_lines == 1 and needle.split(" (")[0] in next(iter(reader.stats.bad_reasons))
    assert any("1 bad row(s) skipped" in n and needle[:20] in n for n in reader.stats.notes())


def test_skip_bad_lines_never_hides_a_duplicate_id(tmp_path):
    path = tmp_path / "d.jsonl"
    row = {"id": "x", "problem": "q", "content": "<think>r</think>4"}
    path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(UserError, match="duplicate id"):
        list(TraceReader(path, skip_bad_lines=True))


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv"])
def test_a_utf8_bom_is_read(tmp_path, suffix):
    rows = [{"problem": "What is 2+2?", "content": "<think>2+2=4</think>4", "id": "a"}]
    if suffix == ".jsonl":
        text = json.dumps(rows[0]) + "\n"
    elif suffix == ".json":
        text = json.dumps(rows)
    else:
        text = "problem,content,id\n" + '"What is 2+2?","<think>2+2=4</think>4",a\n'
    path = tmp_path / f"bom{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    recs = read_traces(path)
    assert [(r["id"], r["problem"], r["reasoning"], r["content"]) for r in recs] == [
        ("a", "What is 2+2?", "2+2=4", "4")
    ]


def _completion(content, reasoning=None, finish="stop", **extra):
    msg = {"role": "assistant", "content": content}
    if reasoning is not None:
        msg["reasoning_content"] = reasoning
    return {"index": 0, "message": msg, "finish_reason": finish, **extra}


OPENAI_ROWS = [
    # DeepSeek API dump: reasoning_content, prompt under request.messages
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "deepseek-reasoner",
        "request": {
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
        },
        "choices": [_completion("\\boxed{4}", "2+2=4")],
        "answer": "4",
    },
    # an R1 served with <think> in content, prompt under `messages`, two choices (one truncated)
    {
        "id": "chatcmpl-2",
        "object": "chat.completion",
        "messages": [{"role": "user", "content": "3+3?"}],
        "choices": [
            _completion("<think>3+3=6</think>\\boxed{6}"),
            {**_completion("<think>3+3 is", finish="length"), "index": 1},
        ],
    },
    # prompt text under `prompt`, reasoning under `reasoning` (vLLM's field name)
    {
        "object": "chat.completion",
        "prompt": "4+4?",
        "choices": [{"message": {"content": "8", "reasoning": "4+4=8"}, "finish_reason": "stop"}],
    },
    # an OpenAI Batch output line: custom_id + response.body
    {
        "custom_id": "q-9",
        "request": {"messages": [{"role": "user", "content": "5+5?"}]},
        "response": {
            "status_code": 200,
            "body": {"object": "chat.completion", "choices": [_completion("</think>10")]},
        },
    },
]


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_openai_chat_completion_dumps_are_read(tmp_path, suffix):
    path = tmp_path / f"api{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in OPENAI_ROWS))
    else:
        path.write_text(json.dumps(OPENAI_ROWS))
    reader = TraceReader(path)
    recs = [i.record for i in reader]
    assert reader.stats.format == "openai-response"
    got = [(r["problem"], r["reasoning"], r["content"], r["finish_reason"]) for r in recs]
    assert got == [
        ("2+2?", "2+2=4", "\\boxed{4}", "stop"),
        ("3+3?", "3+3=6", "\\boxed{6}", "stop"),
        ("3+3?", "3+3 is", "", "length"),
        ("4+4?", "4+4=8", "8", "stop"),
        ("5+5?", "", "10", "stop"),
    ]
    assert recs[0]["system"] == "Be brief." and recs[0]["answer"] == "4"
    assert recs[0]["teacher"] == {"model": "deepseek-reasoner"}
    assert recs[1]["prompt_id"] == recs[2]["prompt_id"] and recs[4]["prompt_id"] == "q-9"
    # a single response saved as one .json object
    one = tmp_path / "one.json"
    one.write_text(json.dumps(OPENAI_ROWS[0]))
    assert [r["content"] for r in read_traces(one)] == ["\\boxed{4}"]


def test_openai_response_without_its_prompt_is_a_clear_error(tmp_path):
    path = tmp_path / "api.jsonl"
    path.write_text(json.dumps({"object": "chat.completion", "choices": [_completion("4", "r")]}) + "\n")
    with pytest.raises(
        UserError, match=r"api.jsonl:1: a chat.completion response without its prompt.*request.messages"
    ):
        read_traces(path)
    # not a response at all: still the old "cannot tell the format" error
    path.write_text(json.dumps({"choices": [1, 2], "text": "x"}) + "\n")
    with pytest.raises(UserError, match="cannot tell the format"):
        read_traces(path)


@pytest.mark.parametrize(
    "content, want, how",
    [
        ("<think>r</think>x = 4.<｜end▁of▁sentence｜>", "x = 4.", "stripped"),
        ("<think>r</think>4<|endoftext|>", "4", "stripped"),
        ("<think>r</think>4 <|eot_id|>\n", "4", "stripped"),
        ("r</think>4<|im_end|>", "4", "stripped"),
        ("<think>r</think>4 </s>", "4", "stripped"),
        ("<think>r</think>4.<|im_end|>\n<|im_start|>user\nhi", "4.", "cut"),
        ("<think>r</think>4<|eot_id|><|start_header_id|>user<|end_header_id|>more", "4", "cut"),
        ("<think>r</think>use <s>old</s> new", "use <s>old</s> new", None),  # reverse: HTML kept
        ("<think>r</think>4", "4", None),
    ],
)
def test_end_of_sequence_text_is_stripped_on_read(tmp_path, content, want, how):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"problem": "q", "content": content}) + "\n")
    reader = TraceReader(path)
    (rec,) = [i.record for i in reader]
    assert rec["content"] == want and rec["reasoning"] == "r"
    assert (reader.stats.end_token_stripped, reader.stats.end_token_cut) == (how == "stripped", how == "cut")
    if how:
        assert any(("stripped" if how == "stripped" else "cut there") in n for n in reader.stats.notes())


def test_trust_labels_without_a_label_column_says_so(tmp_path):
    rows = [
        {
            "problem": f"What is {i} + {i}?",
            "answer": str(2 * i),
            "content": f"<think>x</think>\\boxed{{{2 * i}}}",
        }
        for i in range(3)
    ]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    funnel = filter_stage.run(
        FilterConfig(
            str(tmp_path / "t.jsonl"), str(tmp_path / "o"), workers=1, trust_labels=True, skip=["duplicate"]
        )
    )
    notes = filter_stage.funnel_notes(funnel)
    assert funnel["trust_labels_unused"] and any(
        "--trust-labels: the input has no label column" in n for n in notes
    )
    assert funnel["kept"] == 3  # verified instead
    # reverse: with labels there is no such note
    funnel = filter_stage.run(
        FilterConfig(str(_labelled_openr1(tmp_path)), str(tmp_path / "o2"), workers=1, trust_labels=True)
    )
    assert "trust_labels_unused" not in funnel
    assert not any("--trust-labels: the input" in n for n in filter_stage.funnel_notes(funnel))


@pytest.mark.parametrize(
    "bad",
    [
        {"messages": [{"role": "user", "content": "q"}]},  # a row of the wrong shape
        {"problem": "", "content": "x"},
        {"id": "p:0", "problem": "q", "content": "<think>r</think>4"},  # a duplicate id
    ],
)
def test_a_failed_filter_run_leaves_no_empty_output_folder(tmp_path, bad):
    good = {"id": "p:0", "problem": "q", "content": "<think>r</think>4"}
    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    out = tmp_path / "nested" / "o"
    with pytest.raises(UserError):
        filter_stage.run(FilterConfig(str(src), str(out), workers=1))
    assert not out.exists()
    # reverse: an existing output folder (the user's) is left in place, emptied of our files only
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError):
        filter_stage.run(FilterConfig(str(src), str(out), workers=1))
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    "content, reasoning, answer",
    [
        ("<think>2+2=4 <|im_end|> ok</think>4", "2+2=4 <|im_end|> ok", "4"),  # inside the reasoning: kept
        ("<｜begin▁of▁sentence｜><think>r</think>4", "r", "4"),  # a leaked start token
        ("<|begin_of_text|>r</think>4<|eot_id|>", "r", "4"),
    ],
)
def test_only_the_answer_is_cut_at_end_of_sequence_text(tmp_path, content, reasoning, answer):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"problem": "q", "content": content}) + "\n")
    (rec,) = read_traces(path)
    assert (rec["reasoning"], rec["content"], rec["finish_reason"]) == (reasoning, answer, "stop")


def test_history_turns_lose_end_of_sequence_text_too(tmp_path):
    msgs = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "<think>r</think>1.<|im_end|>\n<|im_start|>user\nleak"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "<think>s</think>2"},
    ]
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"messages": msgs}) + "\n")
    (rec,) = read_traces(path)
    assert rec["history"][1] == {"role": "assistant", "reasoning": "r", "content": "1."}


def test_an_openai_dump_through_filter_and_train_text(tmp_path):
    from distill.train_data import load_rows

    path = tmp_path / "api.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in OPENAI_ROWS))
    funnel = filter_stage.run(FilterConfig(str(path), str(tmp_path / "o"), workers=1, skip=["duplicate"]))
    kept = {r["problem"]: r for r in read_records(tmp_path / "o" / "kept")}
    rejected = [r["verdict"] for r in read_records(tmp_path / "o" / "rejected")]
    assert funnel["input"] == 5 and "complete" in rejected and "2+2?" in kept
    assert kept["2+2?"]["teacher"] == {"model": "deepseek-reasoner"}
    rows = load_rows(str(tmp_path / "o" / "kept"))
    first = next(r for r in rows if r.messages[-2]["content"] == "2+2?")
    assert first.messages[0] == {"role": "system", "content": "Be brief."}
    assert first.messages[-1]["content"] == "<think>\n2+2=4\n</think>\n\n\\boxed{4}"
