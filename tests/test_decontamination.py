"""Decontamination precision and recall against MATH-500: planted copies (case, spacing, a light
edit, a template around them) are caught; problems sharing only stock phrases are not."""

from __future__ import annotations

import random
import re

import pytest

from distill.checks import Context, build_bench_index, check_contamination, contamination, ngram_tokens
from distill.eval_sets import load_benchmark

STOCK = [
    "where $m$ and $n$ are relatively prime positive integers. Find $m+n$.",
    "Express your answer as a common fraction.",
    "Express your answer in simplest radical form.",
    "Find the remainder when {N} is divided by $1000$.",
    "What is the sum of all possible values of $n$?",
    "Enter your answer in the form $(r,\\theta),$ where $r > 0$ and $0 \\le \\theta < 2 \\pi.$",
    "Let $z$ be a complex number such that $|z - {a}| = {b}$.",
    "Let $a,$ $b,$ $c,$ $d$ be positive real numbers such that $a + b + c + d = {a}$.",
    "Express your answer as a decimal to the nearest tenth.",
    "How many positive integers less than {N} are both a square and a cube?",
]
OBJECTS = ["marbles", "tickets", "coins", "beads", "cards", "stamps", "pencils", "tiles"]
PEOPLE = ["Ava", "Ben", "Chloe", "Dev", "Ema", "Femi", "Gus", "Hana"]


def stock_problems(n: int, seed: int = 0) -> list[str]:
    """AIME/AMC-style problems of our own whose only overlap with a benchmark is stock phrasing."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b, big = rng.randint(2, 40), rng.randint(2, 40), rng.randint(100, 99999)
        who, what = rng.choice(PEOPLE), rng.choice(OBJECTS)
        body = rng.choice(
            [
                f"{who} has {a} {what} and gives away {b} of them each day for a week.",
                f"A bag holds {a} red and {b} blue {what}; two are drawn without replacement.",
                f"The sequence $x_{{k+1}} = {a}x_k + {b}$ starts at $x_0 = {i % 7 + 1}$.",
                f"A rectangle has sides ${a}$ and ${b}$ and is cut along a diagonal into two triangles.",
                f"{who} writes every positive divisor of ${big}$ on a card and draws one at random.",
            ]
        )
        stock = " ".join(s.format(N=big, a=a, b=b) for s in rng.sample(STOCK, 2))
        question = rng.choice(["The probability of this is $\\frac{m}{n}$,", "The answer is $p$,", ""])
        out.append(f"{body} {question} {stock}")
    return out


def _edit_one_number(text: str, rng: random.Random) -> str | None:
    nums = list(re.finditer(r"\d+", text))
    if not nums:
        return None
    m = rng.choice(nums)
    return text[: m.start()] + str(int(m.group()) + 1) + text[m.end() :]


@pytest.fixture(scope="module")
def math500(benchmarks_dir):
    return load_benchmark(str(benchmarks_dir / "math500.jsonl"))


@pytest.fixture(scope="module")
def index(math500):
    return build_bench_index([("math500", math500)], 8)


def test_planted_copies_are_caught(math500, index):
    rng = random.Random(0)
    planted = []
    for r in math500:
        words = r["problem"].split()
        mangled = "  ".join(w.upper() if i % 2 else w for i, w in enumerate(words))
        planted.append((r["id"], f"Solve this:\n{mangled}\nPut your final answer within \\boxed{{}}."))
        if len(ngram_tokens(r["problem"])) >= 30:  # a light edit keeps a long problem a copy
            edited = _edit_one_number(r["problem"], rng)
            if edited is not None:
                planted.append((r["id"], edited))
    caught = [contamination(p, index) for _, p in planted]
    recall = sum(c is not None for c in caught) / len(planted)
    assert len(planted) > 700 and recall == 1.0
    # the match names the copied problem (or an identical twin of it in the benchmark)
    wrong = [
        (i, c["match"]) for (i, _), c in zip(planted, caught, strict=True) if c["match"] != f"math500:{i}"
    ]
    assert len(wrong) <= 3, wrong


def test_stock_phrases_are_not_contamination(benchmarks_dir, math500, index):
    own = stock_problems(300)
    others = [r["problem"] for name in ("aime24", "aime25", "amc23")
              for r in load_benchmark(str(benchmarks_dir / f"{name}.jsonl"))]  # fmt: skip
    # the naive rule (any shared 8-gram) flags many of them: the test is not trivial
    naive = {g for r in math500 for g in _grams(r["problem"])}
    assert sum(bool(_grams(p) & naive) for p in own) > len(own) // 4
    assert sum(bool(_grams(p) & naive) for p in others) > len(others) // 5
    flagged = [p for p in own + others if contamination(p, index) is not None]
    assert flagged == []


def _grams(text: str, n: int = 8) -> set[str]:
    t = ngram_tokens(text)
    return {" ".join(t[i : i + n]) for i in range(len(t) - n + 1)}


def test_check_reports_the_matched_text(math500, index):
    r = math500[200]
    res = check_contamination({"problem": "Q: " + r["problem"].upper()}, Context(bench=index))
    assert not res["ok"] and res["match"] == f"math500:{r['id']}" and res["share"] == 1.0
    assert res["text"] == " ".join(ngram_tokens(r["problem"]))
    assert "math500" in res["why"]
    assert check_contamination({"problem": "Q: " + r["problem"]}, Context())["ok"]  # no benchmark: ok


def test_stock_ngrams_and_short_problems():
    rows = [{"id": f"q{i}", "problem": f"Problem {i} about apples. {STOCK[0]}"} for i in range(4)]
    rows.append({"id": "short", "problem": "Compute $\\dbinom{8}{4}$."})
    idx = build_bench_index([("b", rows)], 8)
    assert idx.stock > 0  # the shared phrase is in 4 problems: ignored
    assert contamination(f"Something else entirely, with more words. {STOCK[0]}", idx) is None
    assert contamination("Please compute $\\dbinom{8}{4}$ now.", idx)["match"] == "b:short"
    assert contamination("Compute $\\dbinom{8}{5}$.", idx) is None
