"""Each filter check with passing and failing records, and decontamination against MATH-500."""

from __future__ import annotations

import json

import pytest

from distill.checks import (
    Context,
    build_bench_index,
    check_complete,
    check_contamination,
    check_correct,
    check_format,
    check_language,
    check_length,
    check_readability,
    dedup_key,
    run_record_checks,
    split_think,
)
from distill.eval_sets import BENCHMARKS, load_benchmark


def rec(**kw):
    d = {
        "id": "p:0",
        "prompt_id": "p",
        "sample": 0,
        "problem": "What is one half as a decimal?",
        "answer": "0.5",
        "domain": "math",
        "source": "test",
        "teacher": {},
        "reasoning": "One half is 1/2 = 0.5.",
        "content": "The answer is \\boxed{\\frac12}.",
        "finish_reason": "stop",
        "reasoning_closed": True,
    }
    d.update(kw)
    return d


CTX = Context()


def test_complete():
    assert check_complete(rec(), CTX)["ok"]
    assert not check_complete(rec(finish_reason="length"), CTX)["ok"]
    assert not check_complete(rec(reasoning_closed=False), CTX)["ok"]
    # tags left in content, never closed
    assert not check_complete(rec(reasoning="", content="<think>still going"), CTX)["ok"]


def test_format():
    assert check_format(rec(), CTX)["ok"]
    assert not check_format(rec(reasoning="  "), CTX)["ok"]
    assert not check_format(rec(content=""), CTX)["ok"]
    assert not check_format(rec(content="x </think> \\boxed{1}"), CTX)["ok"]
    # reasoning still inside content: split on the tags
    assert check_format(rec(reasoning="", content="<think>hmm</think>\\boxed{1}"), CTX)["ok"]
    # configurable markers
    ctx = Context(think_tags=("<reasoning>", "</reasoning>"))
    assert check_format(rec(reasoning="", content="<reasoning>a</reasoning>\\boxed{1}"), ctx)["ok"]
    assert not check_format(rec(reasoning="", content="<reasoning>a\\boxed{1}"), ctx)["ok"]


def test_length_words_and_tokens():
    ctx = Context(min_tokens=3, max_tokens=10)
    r = rec()
    run_record_checks(r, [], ctx)  # sets the token count
    assert check_length(r, ctx)["ok"]
    r = rec(reasoning="word " * 50)
    run_record_checks(r, [], ctx)
    assert not check_length(r, ctx)["ok"]
    ctx2 = Context(count_tokens=lambda s: len(s), max_tokens=10)  # a tokenizer-like counter
    r = rec()
    run_record_checks(r, [], ctx2)
    assert not check_length(r, ctx2)["ok"]


def test_language():
    assert check_language(rec(), CTX)["ok"]
    mixed = rec(reasoning="Let me compute 这个问题需要我们仔细计算一下 the value is 0.5")
    res = check_language(mixed, CTX)
    assert not res["ok"] and "cjk" in res["why"]
    # Greek letters and math are notation, not another language
    assert check_language(rec(reasoning="Let θ = π/2 and α + β = 1, so the area is πr²."), CTX)["ok"]
    # a Chinese prompt answered in Chinese passes
    zh = rec(problem="计算二分之一等于多少？", reasoning="二分之一等于零点五。")
    assert check_language(zh, CTX)["ok"]
    assert check_language(mixed, Context(max_foreign_share=0.9))["ok"]


def test_readability():
    assert check_readability(rec(), CTX)["ok"]
    fenced = rec(reasoning="Let me code it:\n```python\nprint(1)\n```")
    assert not check_readability(fenced, CTX)["ok"]
    assert check_readability(dict(fenced, domain="code"), CTX)["ok"]
    assert check_readability(fenced, Context(allow_code_fences=True))["ok"]
    long = rec(reasoning="short one.\n\n" + "word " * 120)
    assert not check_readability(long, Context(max_paragraph_words=100))["ok"]
    assert check_readability(long, Context(max_paragraph_words=0))["ok"]


def test_correct():
    assert check_correct(rec(), CTX)["ok"]
    res = check_correct(rec(content="\\boxed{0.6}"), CTX)
    assert not res["ok"] and res["status"] == "wrong"
    res = check_correct(rec(answer="{\\frac{"), CTX)
    assert not res["ok"] and res["status"] == "unverifiable"
    assert check_correct(rec(answer="{\\frac{"), Context(keep_unverifiable=True))["ok"]
    assert check_correct(rec(domain="general", answer=None), CTX)["ok"]


def test_expensive_check_skipped_after_failure():
    first, res = run_record_checks(rec(finish_reason="length"), ["complete", "format", "correct"], CTX)
    assert first == "complete" and res["format"]["ok"] and res["correct"] == {"ok": None, "skipped": True}


def test_dedup_key_normalises_case_and_space():
    a = rec(reasoning="One  half\nis 0.5")
    b = rec(reasoning="one half is   0.5", id="p:1")
    assert dedup_key(a, CTX.think_tags) == dedup_key(b, CTX.think_tags)
    assert dedup_key(a, CTX.think_tags) != dedup_key(rec(reasoning="other"), CTX.think_tags)


def test_decontamination_catches_math500(benchmarks_dir):
    rows = load_benchmark(str(benchmarks_dir / "math500.jsonl"))
    assert len(rows) == 500
    ctx = Context(bench=build_bench_index([("math500", rows)], 8))
    target = rows[123]["problem"]
    words = target.split()
    mangled = "  ".join(w.upper() if i % 2 else w for i, w in enumerate(words)).replace(" ", "\n", 3)
    prompt = (
        "Solve this:\n"
        + mangled
        + "\nPlease reason step by step, and put your final answer within \\boxed{}."
    )
    res = check_contamination(rec(problem=prompt), ctx)
    assert not res["ok"] and res["match"] == f"math500:{rows[123]['id']}"
    unrelated = [
        "A farmer has 17 sheep and buys 5 more goats at the market on a sunny Tuesday. How many animals now?",
        "Find the number of ordered pairs of positive integers whose product is a perfect cube below 1000.",
        rec()["problem"],
    ]
    for p in unrelated:
        assert check_contamination(rec(problem=p), ctx)["ok"], p


def test_registry_and_local_loading(tmp_path, benchmarks_dir):
    for name in ("aime24", "aime25", "amc23", "math500", "gpqa"):
        assert name in BENCHMARKS
    assert BENCHMARKS["math500"].dataset == "HuggingFaceH4/MATH-500"
    assert BENCHMARKS["gpqa"].config == "gpqa_diamond"
    rows = load_benchmark("aime24", local_dir=benchmarks_dir)
    assert len(rows) == 30 and rows[0]["answer"] is not None and rows[0]["domain"] == "math"
    p = tmp_path / "gpqa.jsonl"
    p.write_text(
        json.dumps(
            {
                "Record ID": "r1",
                "Question": "Which?",
                "Correct Answer": "x",
                "Incorrect Answer 1": "a",
                "Incorrect Answer 2": "b",
                "Incorrect Answer 3": "c",
            }
        )
        + "\n"
    )
    (row,) = load_benchmark(str(p))
    assert row["choices"][0] == "x" and len(row["choices"]) == 4 and row["domain"] == "multiple_choice"


@pytest.mark.parametrize(
    "content",
    [
        "x <THINK>again</THINK> \\boxed{1}",
        "x </Think> \\boxed{1}",
        "\\boxed{1} <|BEGIN_OF_SOLUTION|>",
        "done </think > \\boxed{1}",
    ],
)
def test_format_sees_stray_markers_in_any_case(content):
    assert check_format(rec(content=content), CTX)["why"].startswith("stray")


@pytest.mark.parametrize(
    "content, reasoning",
    [("<THINK>hmm</THINK>\\boxed{1}", "hmm"), ("<Think>\nhmm\n</Think >\n\\boxed{1}", "\nhmm\n")],
)
def test_uppercase_think_block_in_content_is_split(content, reasoning):
    r = rec(reasoning="", content=content)
    assert check_format(r, CTX)["ok"] and check_complete(r, CTX)["ok"]
    got = split_think(content, CTX.think_tags)
    assert got[0] == reasoning and got[1].strip() == "\\boxed{1}" and got[2]


HISTORY_BAD = [
    ({"role": "assistant", "reasoning": "", "content": "<think>a</think> x"}, "stray <think>"),
    ({"role": "assistant", "reasoning": "r", "content": "ans </THINK> more"}, "stray </think>"),
    (
        {"role": "assistant", "reasoning": "r <|end_of_thought|>", "content": "ans"},
        "stray <|end_of_thought|>",
    ),
    ({"role": "assistant", "reasoning": "r", "content": "  "}, "empty answer"),
]


@pytest.mark.parametrize("turn, why", HISTORY_BAD)
def test_format_checks_every_assistant_turn_of_the_history(turn, why):
    history = [{"role": "user", "content": "first"}, turn]
    got = check_format(rec(history=history), CTX)
    assert not got["ok"] and got["why"] == f"{why} in history turn 1"


def test_clean_history_passes_format():
    history = [
        {"role": "user", "content": "a < b, think > c?"},  # not markers
        {"role": "assistant", "reasoning": "r", "content": "yes"},
        {"role": "assistant", "reasoning": "", "content": "answer only", "answer_only": True},
    ]
    assert check_format(rec(history=history), CTX)["ok"]
