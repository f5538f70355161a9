"""The numeric fast path of `distill.verify` (issue 13, filter throughput): plain numbers on both
sides (integers, decimals, fractions, thousands separators, a stated answer without a box) are
compared exactly without math-verify's LaTeX parser, and agree with the verdict math-verify gives
where math-verify is right. Each row: (gold, answer part, right verdict)."""

from __future__ import annotations

import pytest

from distill.verify import GoldCache, simple_number, verify

BIG = str(2**100)

# both sides plain numbers: decided without any parse
FAST = [
    # thousands separators, as math-verify reads them
    ("1000", "\\boxed{1,000}", "correct"),
    ("1,000", "\\boxed{1000}", "correct"),
    ("10,\\!080", "\\boxed{10080}", "correct"),  # MATH-500's way of writing them
    ("10080", "\\boxed{10{,}080}", "correct"),
    ("11,\\! 111,\\! 111,\\! 100", "\\boxed{11111111100}", "correct"),
    ("1,000,000", "\\boxed{1000000}", "correct"),
    ("1,234.5", "\\boxed{1234.5}", "correct"),
    ("\\$32,\\!348", "\\boxed{32348}", "correct"),  # a leading dollar sign
    ("1000", "\\boxed{1,000.}", "correct"),  # a trailing period (was "not parseable")
    ("1000", "\\boxed{1 000}", "correct"),
    ("1000", "\\boxed{1\\ 000}", "correct"),
    # reverse: one digit off, with separators
    ("1000", "\\boxed{1,001}", "wrong"),
    ("11,\\! 111,\\! 111,\\! 100", "\\boxed{11111111101}", "wrong"),
    ("10080", "\\boxed{10,\\!800}", "wrong"),
    ("\\$32,\\!348", "\\boxed{32,384}", "wrong"),
    # the same value written another way
    ("0.5", "\\boxed{\\frac12}", "correct"),
    ("\\frac12", "\\boxed{0.5}", "correct"),
    ("\\frac{1}{2}", "\\boxed{1/2}", "correct"),
    ("7", "\\boxed{007}", "correct"),
    ("007", "\\boxed{7}", "correct"),
    ("1", "\\boxed{1.0}", "correct"),
    ("1.0", "\\boxed{1}", "correct"),
    ("0", "\\boxed{-0}", "correct"),
    ("-3", "\\boxed{- 3}", "correct"),
    ("-\\frac{1}{2}", "\\boxed{\\frac{-1}{2}}", "correct"),
    ("2.0", "\\boxed{2}", "correct"),
    # a decimal gold against an integer answer, and the reverse
    ("2.5", "\\boxed{2}", "wrong"),
    ("2", "\\boxed{2.5}", "wrong"),
    ("3.14", "\\boxed{3}", "wrong"),
    # huge integers compare exactly (a float would call these equal)
    (BIG, f"\\boxed{{{BIG}}}", "correct"),
    (BIG, f"\\boxed{{{2**100 + 1}}}", "wrong"),
    (f"-{BIG}", f"\\boxed{{{BIG}}}", "wrong"),
    # near misses
    ("\\frac{1}{3}", "\\boxed{\\frac{1}{4}}", "wrong"),
    ("-3", "\\boxed{3}", "wrong"),
    ("42", "\\boxed{42.5}", "wrong"),
    ("\\frac12", "\\boxed{2/1}", "wrong"),
    # an answer part without a box that ends by stating a plain number
    ("42", "The final answer is $42$.", "correct"),
    ("42", "**Final Answer**\n\nThe final answer is $43$.", "wrong"),
    ("1000", "The answer is: 1,000.", "correct"),
    ("\\frac34", "Answer: $0.75$", "correct"),
    ("42", "So the final answer is \\(42\\).", "correct"),
    ("42", "I first thought 41. The final answer is $42$.", "correct"),
]


@pytest.mark.parametrize("gold,content,want", FAST)
def test_plain_numbers_need_no_parser(gold, content, want):
    cache = GoldCache()
    v = verify(content, "", domain="math", gold=gold, cache=cache)
    assert (v.status, v.detail) == (want, "numeric")
    assert cache.parses == 0  # not even the gold was parsed


# not plain numbers: left to math-verify, with the same verdicts as before
SLOW = [
    ("12", "\\boxed{1,2}", "wrong"),  # a list, not 12
    ("1,2", "\\boxed{12}", "wrong"),
    ("1000", "\\boxed{1, 000}", "wrong"),  # a space after the comma: a list
    ("1234567", "\\boxed{1234,567}", "wrong"),  # not groups of three: a set
    ("500", "\\boxed{0,500}", "wrong"),  # math-verify's decimal comma (0.5)
    ("1, 2", "\\boxed{2,1}", "correct"),
    ("5", "The answer is 5 apples.", "correct"),  # the statement does not end the answer
    ("42", "The final answer is $42$ and $43$.", "wrong"),
    ("2^{100}", f"\\boxed{{{BIG}}}", "correct"),
]


@pytest.mark.parametrize("gold,content,want", SLOW)
def test_not_plain_numbers_go_to_math_verify(gold, content, want):
    assert verify(content, "", domain="math", gold=gold).status == want


def test_fast_path_agrees_with_math_verify():
    """Where math-verify is right, the fast path gives its verdict. It is not on huge integers
    (compared as floats), `1,000.` (a trailing period it cannot parse) and digits grouped by a
    space (`1 000`, read by our rule B17 in test_verify_kinds.py)."""
    from math_verify import parse
    from math_verify import verify as mv_verify

    differs = ("1,000.}", "1 000}", "1\\ 000}")
    rows = [r for r in FAST if r[1].startswith("\\boxed") and BIG not in r[0] and not r[1].endswith(differs)]
    for gold, content, want in rows:
        mv = mv_verify(parse(f"\\boxed{{{gold}}}"), parse(content))
        assert mv == (want == "correct"), (gold, content)


@pytest.mark.parametrize(
    "text,value",
    [("1,000", 1000), ("10,\\!080", 10080), ("12{,}345", 12345), ("-1,000", -1000), ("1,234.5", 1234.5)],
)
def test_thousands_separators(text, value):
    assert simple_number(text) == value


@pytest.mark.parametrize("text", ["1,2", "1, 000", "0,500", "1234,567", "1,0000", "1,00"])
def test_commas_that_are_not_thousands(text):
    assert simple_number(text) is None


def test_a_stated_answer_whose_parse_times_out_never_falls_back_to_a_draft():
    """The answer part states its answer in math; when reading it runs out of time there is no
    answer (never the reasoning's draft box)."""
    from distill.verify import find_answer

    content = "**Final Answer**\n\nThe final answer is $y = 2x + 5$."
    assert find_answer(content, "so maybe \\boxed{7}", timeout_s=1e-6) is None
    assert find_answer(content, "so maybe \\boxed{7}").text != "7"
