"""The verdicts of `distill.verify`, kind by kind (issue 13): each kind is a table of
(gold, answer part, reasoning, right verdict) rows: the issue's example, its reverse (a wrong
answer is rejected) and more of the same kind."""

from __future__ import annotations

import pytest

from distill.verify import find_answer, same_answer, verify

R1_ANSWER_PART = "**Final Answer**\n\n"  # how R1's answer parts usually begin


def _math(gold: str, content: str, reasoning: str = "") -> str:
    return verify(content, reasoning, domain="math", gold=gold).status


# 4. the final answer comes from the answer part; the reasoning's draft boxes never override it
DRAFTS = [
    # issue: a draft box in the reasoning, the answer part states 73
    ("12", "After checking, the final answer is 73.", "so maybe \\boxed{12}? no, recheck", "wrong"),
    # issue: an empty box is no answer and does not stop the search
    ("42", "\\boxed{} The final answer is 42", "", "correct"),
    # reverse of both
    ("73", "After checking, the final answer is 73.", "so maybe \\boxed{12}? no, recheck", "correct"),
    ("41", "\\boxed{} The final answer is 42", "", "wrong"),
    # more of the kind
    ("5", "Therefore the answer is $\\frac{3}{4}$.", "first guess \\boxed{5}", "wrong"),
    ("\\frac34", "Therefore the answer is $\\frac{3}{4}$.", "first guess \\boxed{5}", "correct"),
    ("6", "So $x = 8$.", "it could be \\boxed{6}", "wrong"),
    ("7", "\\boxed{ }\n\nFinal answer: 7", "", "correct"),
    ("9", R1_ANSWER_PART + "\\boxed{}", "done: \\boxed{9}", "correct"),  # no answer part answer
    ("4", "", "so the result is \\boxed{4}", "correct"),  # empty answer part: reasoning fallback
    ("12", "The answer is twelve, as shown above.", "draft \\boxed{12}", "no_answer"),  # stated in words
    ("4", "", "so the result is \\boxed{}", "no_answer"),
    ("4", "\\boxed{\\text{ }}", "so the result is \\boxed{4}", "correct"),  # a blank box is no answer
    ("11", R1_ANSWER_PART + "The answer is $\\boxed{11}$.", "draft \\boxed{10}", "correct"),
    ("10", R1_ANSWER_PART + "The answer is $\\boxed{11}$.", "draft \\boxed{10}", "wrong"),
]


@pytest.mark.parametrize("gold,content,reasoning,want", DRAFTS)
def test_final_answer_comes_from_the_answer_part(gold, content, reasoning, want):
    assert _math(gold, content, reasoning) == want


def test_find_answer_says_where_the_answer_came_from():
    assert find_answer("The final answer is 73.", "\\boxed{12}").source == "answer"
    f = find_answer("", "\\boxed{12}")
    assert f.source == "reasoning" and f.text == "12"
    assert find_answer("\\boxed{}", "") is None
    assert find_answer("$\\boxed{3}$ and $\\boxed{\\boxed{5}}$").boxes == ["3", "5"]


# 1. exact values compare exactly; a tolerance only for answers written as decimals
EXACT = [
    ("\\frac{1}{2^{99}}", "\\boxed{\\frac{1}{2^{98}}}", "wrong"),  # issue
    ("\\frac{1}{2^{99}}", "\\boxed{2^{-99}}", "correct"),  # reverse
    ("2^{100}+1", "\\boxed{2^{100}}", "wrong"),
    ("2^{100}+1", "\\boxed{1267650600228229401496703205377}", "correct"),
    ("\\frac{1}{3^{40}}", "\\boxed{\\frac{1}{3^{41}}}", "wrong"),
    ("10^{-20}", "\\boxed{10^{-21}}", "wrong"),
    ("1000000007", "\\boxed{1000000006}", "wrong"),
    ("\\sqrt{2}", "\\boxed{\\sqrt{2}+10^{-20}}", "wrong"),  # irrational: checked to 40 digits
    ("\\sqrt{2}+\\sqrt{3}", "\\boxed{\\sqrt{5+2\\sqrt{6}}}", "correct"),
    ("\\{2^{-60}, 1\\}", "\\boxed{\\{1, 2^{-61}\\}}", "wrong"),
    ("\\{2^{-60}, 1\\}", "\\boxed{\\{1, \\frac{1}{2^{60}}\\}}", "correct"),
    ("[0, 2^{-60}]", "\\boxed{[0, 2^{-61}]}", "wrong"),
    ("[0, 2^{-60}]", "\\boxed{\\left[0, \\frac{1}{2^{60}}\\right]}", "correct"),
    ("x = 2^{-99}", "\\boxed{x = 2^{-98}}", "wrong"),
    ("2^{-99}", "\\boxed{x = 2^{-98}}", "wrong"),
    ("\\frac{\\pi}{2^{60}}", "\\boxed{\\frac{\\pi}{2^{61}}}", "wrong"),
    (
        "\\begin{pmatrix} 1 \\\\ 2^{-70} \\end{pmatrix}",
        "\\boxed{\\begin{pmatrix} 1 \\\\ 2^{-71} \\end{pmatrix}}",
        "wrong",
    ),
    # lists with an ellipsis: two different sequences are different answers
    ("1, 2, \\ldots, 10", "\\boxed{1, 3, \\ldots, 10}", "wrong"),
    ("1, 2, \\ldots, 10", "\\boxed{1,2,\\dots,10}", "correct"),
    ("1, 2, \\ldots, 10", "\\boxed{10}", "wrong"),
    ("2, 4, 8, \\ldots", "\\boxed{2, 4, 6, \\ldots}", "wrong"),
    ("(1, 2, \\ldots, n)", "\\boxed{(1, 2, \\cdots, n)}", "correct"),
    # a decimal side keeps math-verify's tolerance (6 places)
    ("\\frac13", "\\boxed{0.333333}", "correct"),
    ("\\frac13", "\\boxed{0.33}", "wrong"),
]


@pytest.mark.parametrize("gold,content,want", EXACT)
def test_exact_values_compare_exactly(gold, content, want):
    assert _math(gold, content) == want


# 3. several boxes in the answer part are together the answer when the gold has several values
BOXES = [
    ("3, 5", "the solutions are $\\boxed{3}$ and $\\boxed{5}$", "correct"),  # issue
    ("3, 5", "the solutions are $\\boxed{3}$ and $\\boxed{7}$", "wrong"),  # reverse
    ("3, 5", "the solution is $\\boxed{5}$", "wrong"),
    ("\\{-2, 2\\}", "$x = \\boxed{2}$ or $x = \\boxed{-2}$", "correct"),
    ("1, 2, 3", "$\\boxed{1}$, $\\boxed{2}$ and $\\boxed{3}$", "correct"),
    ("1, 2, 3", "$\\boxed{1}$ and $\\boxed{2}$", "wrong"),
    ("1, 2, 3", "$\\boxed{1}$, $\\boxed{2}$, $\\boxed{3}$ and $\\boxed{4}$", "wrong"),
    ("3, 5", "we get $\\boxed{3}$, then again $\\boxed{3}$ and $\\boxed{5}$", "correct"),
    ("(3, 5)", "so $x = \\boxed{3}$ and $y = \\boxed{5}$", "correct"),  # an ordered pair
    ("(3, 5)", "so $x = \\boxed{5}$ and $y = \\boxed{3}$", "wrong"),
    # a single-valued gold: the last box is the answer
    ("5", "so $x = \\boxed{3}$ and the answer is $\\boxed{5}$", "correct"),
    ("3", "so $x = \\boxed{3}$ and the answer is $\\boxed{5}$", "wrong"),
]


@pytest.mark.parametrize("gold,content,want", BOXES)
def test_several_boxes_together(gold, content, want):
    assert _math(gold, content) == want


# 2. notation the parser misreads is normalised on both sides before parsing
NOTATION = [
    ("1 - \\frac{1}{\\mathrm{e}}", "\\boxed{1-\\frac1e}", "correct"),  # issue
    ("1 - \\frac{1}{\\mathrm{e}}", "\\boxed{1-\\frac1\\pi}", "wrong"),  # reverse
    ("1 - \\frac{1}{\\mathrm{e}}", "\\boxed{1+\\frac{1}{e}}", "wrong"),
    ("1 - \\frac{1}{e}", "\\boxed{1 - \\dfrac{1}{\\mathrm{e}}}", "correct"),
    ("\\mathrm{e}^{2}", "\\boxed{e^2}", "correct"),
    ("3 + 4\\mathrm{i}", "\\boxed{3+4i}", "correct"),
    ("3 + 4\\mathrm{i}", "\\boxed{4+3i}", "wrong"),
    ("\\dfrac{\\sqrt{3}}{2}", "\\boxed{\\tfrac{\\sqrt3}{2}}", "correct"),
    ("2\\operatorname{arcsin}\\frac{1}{3}", "\\boxed{2\\arcsin\\left(\\frac13\\right)}", "correct"),
    ("\\operatorname{lcm}(4, 6)", "\\boxed{12}", "correct"),
    ("2\\pi", "\\boxed{2π}", "correct"),
    ("-3", "\\boxed{\u22123}", "correct"),
    ("\\dbinom{6}{2}", "\\boxed{15}", "correct"),
    ("\\dbinom{6}{2}", "\\boxed{16}", "wrong"),
    ("\\left\\lbrace 1,2 \\right\\rbrace", "\\boxed{\\{2, 1\\}}", "correct"),
    ("\\left\\lbrace 1,2 \\right\\rbrace", "\\boxed{\\{1, 3\\}}", "wrong"),
    ("\\varnothing", "\\boxed{\\emptyset}", "correct"),
    ("\\mathbb{R}", "\\boxed{(-\\infty, \\infty)}", "correct"),
    ("\\mathbb{R}", "\\boxed{(0, \\infty)}", "wrong"),
    ("52_8", "\\boxed{52_1}", "wrong"),  # math-verify drops a base subscript
    ("52_8", "\\boxed{52_{8}}", "correct"),
    ("52_8", "\\boxed{52}", "correct"),  # the base is the question's
    ("4210_{5}", "\\boxed{4211_5}", "wrong"),
    ("5", "\\boxed{5\\,\\mathrm{m}}", "correct"),  # an upright unit is not a constant
    ("2\\mathrm{i}", "\\boxed{2i}", "correct"),
    ("2\\mathrm{i}", "\\boxed{-2i}", "wrong"),
]


@pytest.mark.parametrize("gold,content,want", NOTATION)
def test_notation_is_normalised_before_parsing(gold, content, want):
    assert _math(gold, content) == want


def test_same_answer_uses_the_same_rules():
    assert same_answer("\\frac{1}{2^{99}}", "2^{-99}")
    assert not same_answer("\\frac{1}{2^{99}}", "\\frac{1}{2^{98}}")
    assert not same_answer("1, 2, \\ldots, 10", "1, 3, \\ldots, 10")
    assert same_answer("1-\\frac{1}{\\mathrm{e}}", "1-\\frac1e")


# 6. a letter counts only where the text presents it as the choice; the final explicit one wins
PROBLEM = "Which is right?\n\nA) 1.2 eV\nB) 1.9 eV\nC) 2.0 eV\nD) 2.1 eV"
CHOICES = [
    # issue
    ("D", "\\boxed{E = 2.1\\ \\text{eV}}\n\n**Answer: D**", "", "correct"),
    ("B", "Answer: I am fairly confident it is (B)", "", "correct"),
    ("B", "Option (B) is correct; (A) fails because it ignores friction.", "", "correct"),
    ("B", "**B**", "", "correct"),
    ("B", "ANSWER: $B$", "", "correct"),
    ("B", "The correct option is B.", "", "correct"),
    # reverse
    ("C", "\\boxed{E = 2.1\\ \\text{eV}}\n\n**Answer: D**", "", "wrong"),
    ("A", "Answer: I am fairly confident it is (B)", "", "wrong"),
    ("A", "Option (B) is correct; (A) fails because it ignores friction.", "", "wrong"),
    ("C", "**B**", "", "wrong"),
    # more of the kind
    ("C", "After comparing the energies, I choose C.", "", "correct"),
    ("D", "The answer is (B). Wait, re-reading the units, the correct answer is D.", "", "correct"),
    ("C", "Answer: A careful look at the units shows (C).", "", "correct"),
    ("D", "Answer: E = 2.1 eV, which is option (D).", "", "correct"),
    ("C", "$\\boxed{\\text{(C)}}$", "", "correct"),
    ("C", "", "so the answer is (C)", "correct"),  # empty answer part: the reasoning's statement
    ("C", "The answer is (C).", "Answer: (A)", "correct"),  # the reasoning's draft never wins
    ("A", "I think this is a hard one, and a guess would be unwise.", "", "no_answer"),
    ("A", "\\boxed{F}", "", "no_answer"),  # F is not one of the options A-D
    ("B", "The final answer is\n\n(B)\n", "", "correct"),
    ("C", "The answer is not (A) but (C).", "", "correct"),
    ("A", "The answer is not (A) but (C).", "", "wrong"),
    ("A", "A) is the correct answer", "", "correct"),
    ("C", "The correct answer is: **C. 2.0 eV**", "", "correct"),
    ("C", "answer: (c)", "", "correct"),
    ("B", "Answer: It's B", "", "correct"),
]


@pytest.mark.parametrize("gold,content,reasoning,want", CHOICES)
def test_multiple_choice_letters(gold, content, reasoning, want):
    v = verify(content, reasoning, domain="multiple_choice", gold=gold, problem=PROBLEM)
    assert v.status == want, v


def test_options_come_from_the_record():
    from distill.verify import option_letters, verify_record

    assert option_letters(["x", "y", "z"]) == "ABC"
    assert option_letters(None, PROBLEM) == "ABCD"
    assert option_letters(None, "no options here") == "ABCDEFGHIJ"
    rec = {"content": "\\boxed{E}", "domain": "multiple_choice", "answer": "A", "choices": ["1", "2"]}
    assert verify_record(rec).status == "no_answer"
    assert verify_record(dict(rec, choices=list("12345"))).status == "wrong"


# 7. program output: integers exactly, a tolerance only where the expected token is a decimal
TOKENS = [
    ("5000050001", "5000050000", False),  # issue
    ("5000050000", "5000050000", True),  # reverse
    ("1000000006", "1000000007", False),
    ("5000050000.0", "5000050000", False),
    ("nan", "0.5", False),
    ("inf", "1e308", False),
    ("-inf", "-inf", False),
    ("nan", "nan", False),
    ("0.5000001", "0.5", True),
    ("0.500002", "0.5", False),
    ("1e-7", "0.0", True),  # absolute 1e-6
    ("1000000.5", "1000000.0", True),  # relative 1e-6
    ("1000002.0", "1000000.0", False),
    ("2", "2.000000", True),
    ("YES", "YES", True),
    ("yes", "YES", False),
]


@pytest.mark.parametrize("got,want,same", TOKENS)
def test_output_tokens(got, want, same):
    from distill.verify import same_token

    assert same_token(got, want) is same


RETURNS = [
    (1000000006, 1000000007, False),  # answers modulo 1e9+7 match exactly
    (1000000007, 1000000007, True),
    (5000050001, 5000050000, False),
    (2.0, 2, True),
    (2.5, 2, False),
    (10.0**20, 10**20 + 1, False),
    (float("nan"), 0.5, False),
    (float("inf"), float("inf"), False),
    (0.1 + 0.2, 0.3, True),
    (0.31, 0.3, False),
    (1, True, False),
    ([1, [2.0000000001, "x"]], [1, [2.0, "x"]], True),
    ([1, [2, "x"]], [1, [3, "x"]], False),
]


@pytest.mark.parametrize("got,want,same", RETURNS)
def test_return_values(got, want, same):
    import json

    from distill.verify import RESULT_MARK, _same_return

    assert _same_return(RESULT_MARK + json.dumps(got), json.dumps(want)) is same


def test_a_program_printing_nan_is_wrong():
    tests = {"inputs": ["1\n"], "outputs": ["0.5\n"]}
    nan = "```python\nprint(float('nan'))\n```"
    assert verify(nan, "", domain="code", gold=None, tests=tests).status == "wrong"
    close = "```python\nprint(0.5000001)\n```"
    assert verify(close, "", domain="code", gold=None, tests=tests).status == "correct"
    tests = {"inputs": ["\n"], "outputs": ["5000050000\n"]}
    off = "```python\nprint(sum(range(100002)) - 100000)\n```"  # 5000050001
    assert verify(off, "", domain="code", gold=None, tests=tests).status == "wrong"


# 5. eval: a truncated sample has no final answer, whatever box its unfinished reasoning holds
TRUNCATED = [
    # (finish_reason, reasoning_closed, reasoning, content, gold, status, truncated)
    ("length", False, "so it is \\boxed{12} maybe, then", "", "12", "no_answer", True),  # issue
    ("stop", True, "so it is \\boxed{12}", "The answer is $\\boxed{12}$.", "12", "correct", False),  # reverse
    ("length", True, "done", "The answer is $\\boxed{12}$ and", "12", "no_answer", True),
    ("stop", False, "so it is \\boxed{12}", "", "12", "no_answer", True),  # never closed its reasoning
    ("stop", True, "so it is \\boxed{12}", "", "12", "correct", False),  # closed, empty answer: fallback
    ("stop", True, "", "The answer is $\\boxed{13}$.", "12", "wrong", False),
]


@pytest.mark.parametrize("finish,closed,reasoning,content,gold,status,truncated", TRUNCATED)
def test_eval_scores_truncated_samples_incorrect(finish, closed, reasoning, content, gold, status, truncated):
    from distill.evaluate import Item, _score
    from distill.teachers.protocol import Completion
    from distill.verify import GoldCache

    comp = Completion(reasoning, content, finish, 10, 100, closed)
    s = _score(Item("p", "What is 3*4?", gold, "math"), comp, GoldCache())
    assert (s["status"], s["truncated"], s["correct"]) == (status, truncated, status == "correct")


def test_truncated_share_counts_unclosed_reasoning():
    from distill.evaluate import summarize

    base = {"problem_id": "p", "correct": False, "status": "no_answer"}
    samples = [
        dict(base, sample=0, finish_reason="length"),
        dict(base, sample=1, finish_reason="stop", reasoning_closed=False),
        dict(base, sample=2, finish_reason="stop", truncated=False, correct=True, status="correct"),
        dict(base, sample=3, finish_reason="stop"),
    ]
    r = summarize(samples)
    assert r["truncated_share"] == 0.5 and r["pass@1"] == 0.25
