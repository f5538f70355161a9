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


# grader round 2 (issue 13 follow-up): each kind is a table of the grader's examples, more of
# the kind and the reverse (a wrong answer is still rejected)
OPTIONS = ["alpha", "beta", "gamma", "delta"]


def _mc(gold: str, content: str, reasoning: str = "") -> str:
    return verify(content, reasoning, domain="multiple_choice", gold=gold, choices=OPTIONS).status


# A1. an explanation after the stated answer never overrides it
MC_EXPLANATION = [
    ("A", "Answer: D\n\nExplanation: (A) is correct only for small n.", "wrong"),  # grader
    ("D", "Answer: D\n\nExplanation: (A) is correct only for small n.", "correct"),  # reverse
    ("D", "The answer is (D).\n\nWhy not the others: (B) is correct if friction is ignored.", "correct"),
    ("B", "The answer is (D).\n\nWhy not the others: (B) is correct if friction is ignored.", "wrong"),
    ("C", "$\\boxed{C}$\n\nNote that (A) is the right answer when n is small.", "correct"),
    ("A", "**Answer: C**\n\n(A) is true under other assumptions.", "wrong"),
    ("B", "Option (B) is correct; (A) fails because it ignores friction.", "correct"),  # prose alone
]


@pytest.mark.parametrize("gold,content,want", MC_EXPLANATION)
def test_mc_explanation_after_the_answer(gold, content, want):
    assert _mc(gold, content) == want


# A2. an answer naming two options is a hedge: no choice
MC_HEDGES = [
    ("B", "Answer: B or C", "no_answer"),  # grader
    ("C", "Answer: (C) and (D)", "no_answer"),  # grader
    ("C", "The answer is C/D.", "no_answer"),
    ("A", "The correct option is (A), or maybe (B).", "no_answer"),
    ("D", "**Answer: D, B**", "no_answer"),
    ("B", "Answer: B", "correct"),  # reverse: one option is a choice
    ("B", "Answer: B or C\n\nOn reflection, the answer is B.", "correct"),  # a later single choice
    ("D", "Either C or D, but the answer is D.", "correct"),
    ("B", "Answer: B, since the energy is conserved.", "correct"),
    ("B", "Answer: B and not C.", "correct"),
    ("C", "Answer: B, and not C.", "wrong"),
]


@pytest.mark.parametrize("gold,content,want", MC_HEDGES)
def test_mc_hedges_are_no_choice(gold, content, want):
    assert _mc(gold, content) == want


# A3. a correction stated after the answer replaces it
CORRECTIONS = [
    ("12", "The answer is 12. Actually, wait — it's 13.", "wrong"),  # grader
    ("12", "The answer is $\\boxed{12}$. Wait, no: the answer is 13.", "wrong"),  # grader
    ("13", "The answer is 12. Actually, wait — it's 13.", "correct"),  # reverse
    ("13", "The answer is $\\boxed{12}$. Wait, no: the answer is 13.", "correct"),
    ("12", "The answer is 12. Actually, the answer is 13.", "wrong"),
    ("7", "So $x = \\boxed{5}$. Oops, I made an error: it should be $7$.", "correct"),
    ("5", "So $x = \\boxed{5}$. Oops, I made an error: it should be $7$.", "wrong"),
    ("\\frac12", "The answer is $\\frac13$. Sorry, it is $\\frac{1}{2}$.", "correct"),
    # no correction: the answer stands
    ("12", "The answer is $\\boxed{12}$. Wait, let me double-check: yes.", "correct"),
    ("12", "Wait, it's 13? No. Checking again gives $\\boxed{12}$.", "correct"),
    ("12", "The answer is $\\boxed{12}$. No other value works.", "correct"),
    ("12", "The answer is $\\boxed{12}$. Wait, it's worth noting that $n = 5$ fails.", "correct"),
    ("13", "The answer is 12. Wait, no: it's $x = 13$.", "correct"),
]


@pytest.mark.parametrize("gold,content,want", CORRECTIONS)
def test_stated_correction_replaces_the_answer(gold, content, want):
    assert _math(gold, content) == want


# B8. a percentage written with or without the percent sign is the same answer
PERCENT = [
    ("25", "\\boxed{25\\%}", "correct"),  # grader
    ("25\\%", "\\boxed{25}", "correct"),  # grader
    ("50", "\\boxed{50\\%}", "correct"),  # grader
    ("12.5\\%", "\\boxed{12.5}", "correct"),  # grader
    ("25\\%", "\\boxed{\\frac14}", "correct"),  # grader: keep
    ("40", "The answer is $40\\,\\%$.", "correct"),
    ("7.5\\%", "\\boxed{7.5\\text{ percent}}", "correct"),
    ("\\frac{1}{3}\\%", "\\boxed{\\frac{1}{3}}", "correct"),
    ("25", "\\boxed{26\\%}", "wrong"),  # reverse
    ("25\\%", "\\boxed{0.25\\%}", "wrong"),
    ("25\\%", "\\boxed{24}", "wrong"),
    ("25", "\\boxed{0.25}", "wrong"),
]


@pytest.mark.parametrize("gold,content,want", PERCENT)
def test_percent_sign_either_side(gold, content, want):
    assert _math(gold, content) == want


# B12. more ways to state the choice: a lower-case letter, a styled box, the option's text,
# the one left after eliminating the others
MC_FORMS = [
    ("C", "Answer: c", "correct"),  # grader
    ("B", "Final answer: b)", "correct"),  # grader
    ("B", "$\\boxed{\\mathbf{B}}$", "correct"),  # grader
    ("B", "The answer is beta.", "correct"),  # grader
    ("B", "The answer is **beta**.", "correct"),  # grader
    ("D", "After ruling out A, B, and C, we are left with D.", "correct"),  # grader
    ("A", "**Final Answer:** (a)", "correct"),
    ("C", "$\\boxed{\\textbf{(C)}}$", "correct"),
    ("D", "The correct answer is: $\\text{delta}$", "correct"),
    ("B", "A, C and D contradict the data, which leaves B.", "correct"),
    ("C", "The only option left is C.", "correct"),
    # reverse
    ("A", "The answer is beta.", "wrong"),
    ("C", "After ruling out A, B, and C, we are left with D.", "wrong"),
    ("B", "Answer: c", "wrong"),
    ("B", "The answer is betamax.", "no_answer"),  # not an option's text
    ("A", "So we are left with a quadratic to solve.", "no_answer"),
]


@pytest.mark.parametrize("gold,content,want", MC_FORMS)
def test_mc_more_ways_to_state_the_choice(gold, content, want):
    assert _mc(gold, content) == want


def test_option_text_from_the_problem():
    v = verify("The answer is 2.0 eV.", "", domain="multiple_choice", gold="C", problem=PROBLEM)
    assert v.status == "correct"
    v = verify("The answer is 2.1 eV.", "", domain="multiple_choice", gold="C", problem=PROBLEM)
    assert v.status == "wrong"


# B16. E notation is a number, never Euler's e
E_NOTATION = [
    ("0.00015", "\\boxed{1.5e-4}", "correct"),  # grader
    ("150000", "\\boxed{1.5e5}", "correct"),  # grader
    ("\\frac{1}{2^{60}}", "\\boxed{8.673617379884035e-19}", "correct"),  # grader
    ("6.02\\times 10^{23}", "\\boxed{6.02E+23}", "correct"),
    ("3 \\cdot 10^{-7}", "The answer is $3e-7$.", "correct"),
    ("0.00015", "\\boxed{1.6e-4}", "wrong"),  # reverse
    ("150000", "\\boxed{1.5e6}", "wrong"),
    ("\\frac{1}{2^{61}}", "\\boxed{8.673617379884035e-19}", "wrong"),
    ("2e", "\\boxed{2e}", "correct"),  # Euler's e stays e
    ("e^{2}", "\\boxed{e^2}", "correct"),
]


@pytest.mark.parametrize("gold,content,want", E_NOTATION)
def test_e_notation_is_a_number(gold, content, want):
    assert _math(gold, content) == want


# B15, A5. a decimal answer (either side) matches within a relative 1e-6, however the gold is
# written; never an absolute tolerance, which lets 0.0 pass for 10^{-9}
TOLERANCE = [
    ("100", "\\boxed{99.9999999}", "correct"),  # grader
    ("100", "\\boxed{100.0000001}", "correct"),  # grader
    ("2", "\\boxed{1.9999999}", "correct"),  # grader
    ("100.0", "\\boxed{99.9999999}", "correct"),  # grader
    ("10^{-9}", "\\boxed{0.0}", "wrong"),  # grader
    ("10^{-9}", "\\boxed{0.000000002}", "wrong"),  # grader
    ("10^{-9}", "\\boxed{0}", "wrong"),  # grader
    ("10^{-9}", "\\boxed{0.000000001}", "correct"),
    ("3\\times 10^{-12}", "\\boxed{0.000000000003}", "correct"),
    ("3\\times 10^{-12}", "\\boxed{0.000000000004}", "wrong"),
    ("\\frac{2}{3}", "\\boxed{0.6666667}", "correct"),
    ("\\frac{2}{3}", "\\boxed{0.667}", "wrong"),
    ("1000000", "\\boxed{999999.9999}", "correct"),
    ("1000000", "\\boxed{999990.0}", "wrong"),
    ("2\\sqrt{2}", "\\boxed{2.8284271}", "correct"),
    ("2\\sqrt{2}", "\\boxed{2.828}", "wrong"),
    ("0.5", "\\boxed{0.5000001}", "correct"),
    ("0.5", "\\boxed{0.50001}", "wrong"),
    ("1000000007", "\\boxed{1000000006}", "wrong"),  # integers stay exact
]


@pytest.mark.parametrize("gold,content,want", TOLERANCE)
def test_decimal_tolerance_is_relative(gold, content, want):
    assert _math(gold, content) == want


# A7. boxes listing several values are several answers: wrong for a single-valued gold
LISTED = [
    ("5", "The solutions are $\\boxed{3}$ and $\\boxed{5}$.", "wrong"),  # grader
    ("5", "$x = \\boxed{3}$ or $x = \\boxed{5}$", "wrong"),
    ("4", "The roots are $\\boxed{1}$, $\\boxed{2}$, and $\\boxed{4}$.", "wrong"),
    ("\\frac12", "$\\boxed{\\frac12}$ or $\\boxed{-\\frac12}$", "wrong"),
    ("3, 5", "The solutions are $\\boxed{3}$ and $\\boxed{5}$.", "correct"),  # several-valued gold
    ("\\pm 2", "$\\boxed{2}$ or $\\boxed{-2}$", "correct"),
    # reverse: an intermediate box is not a listed value
    ("5", "so $x = \\boxed{3}$ and the answer is $\\boxed{5}$", "correct"),
    ("5", "First $a = \\boxed{3}$. Then the total is $\\boxed{5}$.", "correct"),
    ("5", "$\\boxed{5}$ and again $\\boxed{5}$", "correct"),
]


@pytest.mark.parametrize("gold,content,want", LISTED)
def test_listed_boxes_are_several_answers(gold, content, want):
    assert _math(gold, content) == want


# A6. a set is not an ordered pair (or interval), whatever its order
SET_VS_TUPLE = [
    ("(1,2)", "\\boxed{\\{1,2\\}}", "wrong"),  # grader
    ("(1,2)", "\\boxed{\\{2,1\\}}", "wrong"),  # grader
    ("\\{1,2\\}", "\\boxed{(1,2)}", "wrong"),
    ("(3, -1, 2)", "\\boxed{\\left\\{3, -1, 2\\right\\}}", "wrong"),
    ("[0, 1]", "\\boxed{\\{0, 1\\}}", "wrong"),
    ("(1,2)", "\\boxed{(1, 2)}", "correct"),  # reverse: same kind still matches
    ("\\{1,2\\}", "\\boxed{\\{2, 1\\}}", "correct"),
    ("\\{1,2\\}", "\\boxed{1, 2}", "correct"),
    ("(1,2)", "\\boxed{(2, 1)}", "wrong"),
]


@pytest.mark.parametrize("gold,content,want", SET_VS_TUPLE)
def test_set_is_not_a_tuple(gold, content, want):
    assert _math(gold, content) == want


# A4. when both sides name a unit, the units must agree
UNITS = [
    ("5\\text{ cm}", "$\\boxed{5\\text{ m}}$", "wrong"),  # grader
    ("5\\text{ cm}", "$\\boxed{5\\text{ cm}}$", "correct"),  # reverse
    ("5\\text{ cm}", "$\\boxed{5}$", "correct"),  # no unit: read in the gold's unit
    ("12\\text{ m}^2", "$\\boxed{12\\,\\mathrm{cm}^2}$", "wrong"),
    ("12\\text{ m}^2", "$\\boxed{12\\text{ meters}^2}$", "correct"),
    ("3\\text{ hours}", "$\\boxed{3\\text{ minutes}}$", "wrong"),
    ("3\\text{ hours}", "$\\boxed{3 \\text{ hr}}$", "correct"),
    ("7\\text{ kg}", "$\\boxed{7 \\mathrm{g}}$", "wrong"),
    ("5", "\\boxed{5\\,\\mathrm{m}}", "correct"),  # the gold has no unit
    ("5\\text{ cm}", "$\\boxed{6\\text{ cm}}$", "wrong"),
]


@pytest.mark.parametrize("gold,content,want", UNITS)
def test_units_must_agree(gold, content, want):
    assert _math(gold, content) == want


# B9. a solution list written as equations is the list of its values
SOLUTION_EQUATIONS = [
    ("3, 5", "\\boxed{x=3 \\text{ or } x=5}", "correct"),  # grader
    ("3, 5", "\\boxed{x = 3, x = 5}", "correct"),  # grader
    ("-2, 2", "\\boxed{x = 2 \\text{ and } x = -2}", "correct"),
    ("\\{1, 4\\}", "The solutions are $\\boxed{x = 1 \\quad x = 4}$.", "correct"),
    ("\\frac12, 3", "\\boxed{t=\\frac{1}{2}, \\; t=3}", "correct"),
    ("3, 5", "\\boxed{x=3 \\text{ or } x=6}", "wrong"),  # reverse
    ("3, 5", "\\boxed{x = 3}", "wrong"),
    ("3, 5", "\\boxed{x = 3, x = 5, x = 7}", "wrong"),
    ("(3, 5)", "\\boxed{x = 3, y = 5}", "correct"),  # an ordered pair by its coordinates
]


@pytest.mark.parametrize("gold,content,want", SOLUTION_EQUATIONS)
def test_solution_list_as_equations(gold, content, want):
    assert _math(gold, content) == want


# B11. an interval written as an inequality is that interval
INEQUALITIES = [
    ("[1,3]", "\\boxed{1 \\le x \\le 3}", "correct"),  # grader
    ("(1,3]", "\\boxed{1 < x \\leq 3}", "correct"),
    ("[2, \\infty)", "\\boxed{x \\geq 2}", "correct"),
    ("(-\\infty, 5)", "\\boxed{x < 5}", "correct"),
    ("[1,3]", "\\boxed{3 \\ge x \\ge 1}", "correct"),
    ("[1,3]", "\\boxed{x \\in [1, 3]}", "correct"),
    ("(2, \\infty)", "\\boxed{2 < x}", "correct"),
    ("[1,3]", "\\boxed{1 < x \\le 3}", "wrong"),  # reverse: closedness counts
    ("[1,3]", "\\boxed{1 \\le x \\le 4}", "wrong"),
    ("[2, \\infty)", "\\boxed{x > 2}", "wrong"),
    ("(-\\infty, 5)", "\\boxed{x > 5}", "wrong"),
]


@pytest.mark.parametrize("gold,content,want", INEQUALITIES)
def test_interval_as_inequality(gold, content, want):
    assert _math(gold, content) == want


# B14. a repeating decimal is its exact value
REPEATING = [
    ("\\frac{1}{3}", "\\boxed{0.\\overline{3}}", "correct"),  # grader
    ("2", "\\boxed{1.\\overline{9}}", "correct"),  # grader
    ("\\frac{1}{6}", "\\boxed{0.1\\overline{6}}", "correct"),
    ("\\frac{4}{33}", "\\boxed{0.\\overline{12}}", "correct"),
    ("-\\frac{7}{3}", "\\boxed{-2.\\overline{3}}", "correct"),
    ("\\frac{1}{3}", "\\boxed{0.\\overline{4}}", "wrong"),  # reverse
    ("\\frac{1}{6}", "\\boxed{0.\\overline{16}}", "wrong"),
    ("\\frac{1}{3}", "\\boxed{0.3}", "wrong"),
]


@pytest.mark.parametrize("gold,content,want", REPEATING)
def test_repeating_decimals(gold, content, want):
    assert _math(gold, content) == want


# B17. a space (any LaTeX space) between digit groups is a thousands separator
SPACED_THOUSANDS = [
    ("1000", "\\boxed{1\\ 000}", "correct"),  # grader
    ("1234567", "\\boxed{1\\,234\\,567}", "correct"),
    ("10000", "\\boxed{10~000}", "correct"),
    ("250000", "The answer is $250\\;000$.", "correct"),
    ("1000.5", "\\boxed{1\\ 000.5}", "correct"),
    ("1000", "\\boxed{1\\ 001}", "wrong"),  # reverse
    ("1000", "\\boxed{1, 000}", "wrong"),  # a list, as before
    ("1000", "\\boxed{10\\ 00}", "wrong"),  # not groups of three
]


@pytest.mark.parametrize("gold,content,want", SPACED_THOUSANDS)
def test_spaced_thousands(gold, content, want):
    assert _math(gold, content) == want


# B18. math with a letter gold (AMC style): the option letter the answer gives, value or not
LETTER_GOLD = [
    ("\\text{(B)}", "$\\boxed{\\text{(B) } 12}$", "correct"),  # grader
    ("\\text{(B)}", "$\\boxed{\\textbf{(B)}}$", "correct"),
    ("\\text{(B)}", "$\\boxed{B}$", "correct"),
    ("(D)", "The answer is $\\boxed{(D)\\ 7}$.", "correct"),
    ("\\textbf{(E)}", "$\\boxed{\\textbf{(E) }\\frac{1}{2}}$", "correct"),
    ("\\text{(B)}", "$\\boxed{\\text{(C) } 12}$", "wrong"),  # reverse
    ("\\text{(B)}", "$\\boxed{\\text{(C)}}$", "wrong"),
    ("(D)", "The answer is $\\boxed{(A)\\ 7}$.", "wrong"),
]


@pytest.mark.parametrize("gold,content,want", LETTER_GOLD)
def test_letter_gold_in_math(gold, content, want):
    assert _math(gold, content) == want


# B10. a box the text discards (a side note about an earlier guess) is not the answer
SIDE_NOTE = "The answer is $\\boxed{6}$.\n\nNote: an earlier guess of $\\boxed{5}$ was wrong."
DISCARDED_BOXES = [
    ("6", SIDE_NOTE, "correct"),  # grader
    ("5", SIDE_NOTE, "wrong"),  # reverse
    ("6", "So $\\boxed{6}$. (My initial answer $\\boxed{4}$ missed a case.)", "correct"),
    ("6", "$\\boxed{6}$ is the answer; $\\boxed{7}$ is incorrect because it double counts.", "correct"),
    ("6", "The previous attempt gave $\\boxed{8}$. The answer is 6.", "correct"),
    ("8", "The previous attempt gave $\\boxed{8}$. The answer is 6.", "wrong"),
    ("7", "First $a = \\boxed{3}$, then the total is $\\boxed{7}$.", "correct"),  # nothing discarded
]


@pytest.mark.parametrize("gold,content,want", DISCARDED_BOXES)
def test_discarded_box_is_not_the_answer(gold, content, want):
    assert _math(gold, content) == want


# C19. a content that still holds its reasoning block is split first: the draft box inside it
# is reasoning, and an unclosed block leaves no answer
RAW_CONTENT = [
    ("73", "<think>Draft: $\\boxed{12}$.</think>\n\nThe answer is 73.", "correct"),  # grader
    ("12", "<think>Draft: $\\boxed{12}$.</think>\n\nThe answer is 73.", "wrong"),  # reverse
    ("73", "Draft: $\\boxed{12}$.</think>\n\nThe answer is $\\boxed{73}$.", "correct"),  # lone close tag
    ("73", "<|begin_of_thought|>so \\boxed{12}<|end_of_thought|>\n\nFinal answer: 73", "correct"),
    ("12", "<think>so it is \\boxed{12}</think>\n\n", "correct"),  # empty answer: reasoning fallback
    ("42", "<think>So the answer is $\\boxed{42}$. But let me verify", "no_answer"),  # truncated
]


@pytest.mark.parametrize("gold,content,want", RAW_CONTENT)
def test_content_with_think_block_is_split(gold, content, want):
    from distill.verify import verify_record

    assert _math(gold, content) == want
    assert verify_record({"content": content, "domain": "math", "answer": gold}).status == want


# B13. a word answer compares as words, stated in prose (bold or not) or boxed
WORD_ANSWERS = [
    ("\\text{Monday}", "The answer is **Monday**.", "correct"),  # grader
    ("\\text{Monday}", "Final Answer: Tuesday", "wrong"),  # reverse
    ("\\text{Monday}", "$\\boxed{\\textbf{Monday}}$", "correct"),
    ("\\text{no solution}", "The answer is: no solution.", "correct"),
    ("Monday", "The answer is $\\text{monday}$.", "correct"),
    ("\\text{odd}", "$\\boxed{\\text{even}}$", "wrong"),
    ("\\text{Monday}", "The answer is **yadnoM**.", "wrong"),  # not math-verify's product of letters
    ("12", "The answer is twelve, as shown above.", "no_answer"),  # a number gold: unchanged
]


@pytest.mark.parametrize("gold,content,want", WORD_ANSWERS)
def test_word_answers(gold, content, want):
    assert _math(gold, content) == want


def test_lower_case_gold_is_not_an_option_letter():  # Euler's e compares as a number
    assert _math("e", "$\\boxed{\\mathrm{e}}$") == "correct"
    assert _math("B", "$\\boxed{\\text{(B) } 4}$") == "correct"
