"""The demo's synthetic reasoning task: addition of two n-digit numbers with a column-by-column chain of thought.

    problems = make_problems(n=1000, seed=0, exclude=set(), digits=(2, 3, 4, 5))
    rec = gold_trace(problem)        # a trace record with the gold reasoning and `\\boxed{sum}`
    rec = gold_trace(problem, rng=random.Random(0))  # the same, each line's two digits in either order

The gold trace for "Add 983 and 969. What is the sum?" (each line: digit + digit + carry in = column sum):

    <think>
    3+9+0=12
    8+6+1=15
    9+9+1=19
    </think>

    The answer is \\boxed{1952}.

The demo trains its teacher on varied wordings (`rng`: `3+9+0=12` or `9+3+0=12` per line), so its
correct samples differ in wording as a real teacher's do, and exact-duplicate removal keeps several
correct traces of a problem rather than one.

Difficulty is the number of digits: one reasoning line per digit, so a longer chain with more
places to slip, and digits to find further back in the prompt. Answers are checkable by math-verify (`The answer is \\boxed{936}.`). The problem text has 8 words,
so its single word 8-gram holds both numbers: the filter's 8-gram decontamination sees exactly the
same problem, never a different one with the same wording.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    a: int
    b: int

    @property
    def id(self) -> str:
        return f"add-{self.a}-{self.b}"

    @property
    def text(self) -> str:
        # exactly 8 words: its one word 8-gram holds both numbers, so decontamination matches only
        # the same problem, never another one with the same wording
        return f"Add {self.a} and {self.b}. What is the sum?"

    @property
    def answer(self) -> str:
        return str(self.a + self.b)

    @property
    def digits(self) -> int:
        """Digits per operand: the problem's difficulty (one reasoning line per digit)."""
        return len(str(self.a))

    def as_prompt(self) -> dict[str, str]:
        return {"id": self.id, "problem": self.text, "answer": self.answer}


def digits_of(problem_id: str) -> int:
    """Digits per operand of a problem from its id (`add-983-969` -> 3)."""
    return len(problem_id.split("-")[1])


def reasoning(p: Problem, rng: random.Random | None = None) -> str:
    """Column-by-column addition, least significant digit first: one line per column.

    `7+9+1=17` reads "digit of a + digit of b + carry in = two-digit column sum"; the sum's tens
    digit is the next column's carry, and the answer is the last carry (if any) followed by the
    units digits from the last line to the first. Every line has the same shape, so each digit sits
    at a fixed distance from the one it is copied from: a tiny model learns it in a few hundred steps.

    With `rng`, each line writes the column's two digits in either order (`3+9+0=12` or `9+3+0=12`,
    a fair coin per line): equivalent wordings of one correct reasoning, as a real teacher's correct
    traces differ in wording. A teacher trained on them samples varied correct traces, so the
    filter's exact-duplicate check keeps several correct traces of a problem, not one. Without
    `rng` the digit of `a` comes first.
    """
    da, db = str(p.a)[::-1], str(p.b)[::-1]
    carry = 0
    lines = []
    for x, y in zip(da, db, strict=True):
        s = int(x) + int(y) + carry
        first, second = (y, x) if rng is not None and rng.random() < 0.5 else (x, y)
        lines.append(f"{first}+{second}+{carry}={s:02d}")
        carry = s // 10
    return "\n".join(lines)


def answer_text(p: Problem) -> str:
    return f"The answer is \\boxed{{{p.a + p.b}}}."


def make_problems(
    n: int, seed: int, exclude: set[Problem] | None = None, digits: tuple[int, ...] = (3,)
) -> list[Problem]:
    """`n` distinct random problems, none in `exclude`, deterministic under `seed`.

    Each problem adds two numbers of the same number of digits, drawn uniformly from `digits`.
    """
    rng = random.Random(seed)
    exclude = exclude or set()
    seen: set[Problem] = set()
    out: list[Problem] = []
    while len(out) < n:
        d = rng.choice(digits)
        p = Problem(rng.randint(10 ** (d - 1), 10**d - 1), rng.randint(10 ** (d - 1), 10**d - 1))
        if p in seen or p in exclude:
            continue
        seen.add(p)
        out.append(p)
    return out


def gold_trace(p: Problem, source: str = "demo-gold", rng: random.Random | None = None) -> dict:
    """A trace record (DESIGN.md schema) holding the gold chain of thought, for teacher training.

    `rng` varies the wording of the reasoning (see `reasoning`); without it, one canonical trace.
    """
    return {
        "id": f"{p.id}:0",
        "prompt_id": p.id,
        "sample": 0,
        "problem": p.text,
        "answer": p.answer,
        "domain": "math",
        "source": source,
        "teacher": {"model": "gold", "backend": "rule"},
        "reasoning": reasoning(p, rng),
        "content": answer_text(p),
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 0, "completion_tokens": 0},
    }


def corpus(problems: list[Problem]) -> list[str]:
    """Texts to train the demo tokenizer on (the chat roles too, so each is one token)."""
    return [
        f"user\n{p.text}\nassistant\n<think>\n{reasoning(p)}\n</think>\n\n{answer_text(p)}" for p in problems
    ]
