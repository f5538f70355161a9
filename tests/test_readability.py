"""The `readability` rule on R1-shaped reasoning: ordinary traces pass, walls of text do not.

R1 writes one paragraph per line with blank lines between paragraphs, and lays computations,
case checks and lists out one step per line with single line breaks. `r1_like_reasoning` builds
traces of that shape (seeded); the old rule (words between blank lines) dropped many of them at
its 600-word default, the rule now measures words between any line breaks.
"""

from __future__ import annotations

import random
import re

from distill.checks import Context, check_readability, longest_paragraph

WORDS = (
    "so the sum of the roots is equal to minus b over a which gives us the value we need here "
    "let me check that again using the other equation since the discriminant must be positive "
    "wait that does not look right maybe I made an arithmetic mistake in the previous step"
).split()
OPENERS = ("Wait,", "Hmm,", "Alternatively,", "So", "Let me", "But", "Therefore,", "Okay,")


def _prose(rng: random.Random, n: int) -> str:
    return rng.choice(OPENERS) + " " + " ".join(rng.choice(WORDS) for _ in range(n - 1)) + "."


def _steps(rng: random.Random, n: int) -> str:
    """A computation laid out one step per line (single line breaks), as R1 does."""
    lines = []
    for k in range(n):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        lines.append(
            rng.choice(
                [
                    f"{a} * {b} = {a * b}",
                    f"x_{k} = {a} + {b} = {a + b}",
                    f"Case {k + 1}: n = {a}, so 2n = {2 * a}, which works.",
                ]
            )
        )
    return "\n".join(lines)


def r1_like_reasoning(rng: random.Random) -> str:
    """One R1-shaped reasoning of 10-40 blocks between blank lines: prose paragraphs (one line each,
    log-normal, median ~40 words, at most 300), runs of a few sentences on consecutive lines, and
    step blocks (log-normal, median ~12 lines of 3-12 words; a few run past 60 lines)."""
    blocks = []
    for _ in range(rng.randint(10, 40)):
        kind = rng.random()
        if kind < 0.2:
            blocks.append(_steps(rng, min(150, max(3, int(rng.lognormvariate(2.5, 0.9))))))
        elif kind < 0.35:  # re-checks: "Wait, ..." sentences on consecutive lines
            blocks.append("\n".join(_prose(rng, rng.randint(8, 50)) for _ in range(rng.randint(2, 6))))
        else:
            blocks.append(_prose(rng, min(300, max(3, int(rng.lognormvariate(3.7, 0.7))))))
    return "\n\n".join(blocks)


def blank_line_paragraph(text: str) -> int:
    """The old measure: words between blank lines."""
    return max(len(p.split()) for p in re.split(r"\n\s*\n", text))


def test_ordinary_r1_shaped_traces_pass_and_walls_of_text_do_not():
    rng = random.Random(0)
    traces = [r1_like_reasoning(rng) for _ in range(200)]
    ctx = Context(max_paragraph_words=600)  # the filter stage's default
    dropped = [t for t in traces if not check_readability({"reasoning": t, "content": "4"}, ctx)["ok"]]
    old = sum(blank_line_paragraph(t) > 600 for t in traces)
    assert not dropped
    assert old >= 10  # the old blank-line measure drops 16 of the same 200 (README, `readability`)
    assert max(longest_paragraph(t) for t in traces) <= 300
    walls = [
        _prose(rng, 700),  # one paragraph of 700 words, no break
        "Let me think.\n\n" + "Wait, let me check that again. " * 150,  # a degenerate loop on one line
        "Step one.\n" + " ".join(["the value is"] * 400) + "\nSo 4.",
    ]
    for w in walls:
        res = check_readability({"reasoning": w, "content": "4"}, ctx)
        assert not res["ok"] and "without a line break" in res["why"]
    # ... and 0 turns the rule off
    assert check_readability({"reasoning": walls[0], "content": "4"}, Context(max_paragraph_words=0))["ok"]


def test_paragraph_measure_counts_words_between_line_breaks():
    assert longest_paragraph("a b c\n\nd e\nf g h i") == 4
    assert longest_paragraph("one two\r\nthree") == 2
    assert longest_paragraph("") == 0
