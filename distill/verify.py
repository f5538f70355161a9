"""Answer checkers by domain: math (math-verify), multiple choice, code (sandboxed tests), judge, none.

    from distill.verify import verify, extract_answer, same_answer, GoldCache
    cache = GoldCache()                                   # parse each gold answer once
    v = verify(content, reasoning, domain="math", gold="\\frac12", cache=cache)
    v.status    # "correct" | "wrong" | "unverifiable" | "no_answer"
    v.extracted, v.detail

- math: the final answer comes from the answer part (after `</think>`) only: its last non-empty
  `\\boxed{}`, else the answer it states (read by math-verify); the reasoning's last box only when
  the answer part holds no answer (`find_answer`); a correction stated after the answer
  ("Wait, no: the answer is 13.") replaces it. Several boxes are compared together when the
  gold has several values. Both sides are normalised (`normalize_latex`), then compared with
  math-verify (`\\frac12` = 0.5, sets, intervals, units ...), whose "equal" is re-checked exactly
  for exact values (a relative 1e-6 only when a side is a decimal or E notation); lists with `\\ldots` compare
  element by element. A gold math-verify cannot parse gives `unverifiable`, never a silent pass.
- multiple_choice: the letter the answer presents as its choice (`extract_choice`: answer
  statements, boxed, bold or lone letters, an option named correct, an option's text, the option
  left after elimination; the final explicit one wins; "B or C" is no choice; only the record's
  option letters) against the gold letter.
- code: the last fenced program of the answer runs on the record's stdin/stdout tests in
  `distill.sandbox` (resource limits, no network, private temp dir, scrubbed env); output tokens
  compare exactly, decimals within 1e-6 (`same_token`), never NaN or infinities.
- none: nothing to check (general chat data).
- judge (opt-in): an OpenAI-compatible model decides when math-verify cannot, or for free-form
  domains; `Verdict.detail` records the judge model.

Timeouts: math-verify's own timeout uses `signal.alarm` and only works in a main thread. We
disable it and arm our own `setitimer` deadline instead, which works in the main thread of any
process, so also in `multiprocessing` workers (each task runs in the worker's main thread). In a
non-main thread no deadline can be armed: the call runs without one and says so in `detail`.
"""

from __future__ import annotations

import json
import logging
import math
import re
import signal
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

STATUSES = ("correct", "wrong", "unverifiable", "no_answer")

# math-verify warns once that its timeout is disabled (we arm our own); keep stderr quiet
logging.getLogger("math_verify").setLevel(logging.ERROR)
logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)


@dataclass
class Verdict:
    status: str  # correct | wrong | unverifiable | no_answer
    extracted: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "correct"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "extracted": self.extracted, "detail": self.detail}


# ---------------------------------------------------------------------------- timeouts


class VerifyTimeout(BaseException):
    """Raised by the deadline alarm; a BaseException so math-verify's `except Exception` lets it by."""


@contextmanager
def deadline(seconds: float | None) -> Iterator[bool]:
    """Raise `VerifyTimeout` after `seconds` of wall time; yields whether a deadline is armed."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield False
        return

    def _alarm(signum: int, frame: Any) -> None:
        raise VerifyTimeout()

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------------------- extraction

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")


def _braced(text: str, i: int) -> int:
    """The index of the `}` closing the `{` at `text[i]`, or -1 when it never closes."""
    depth = 0
    for j in range(i, len(text)):
        c = text[j]
        if c == "{" and text[j - 1] != "\\":
            depth += 1
        elif c == "}" and text[j - 1] != "\\":
            depth -= 1
            if depth == 0:
                return j
    return -1


_BLANK_RE = re.compile(r"\\(?:text|mathrm)\s*\{\s*\}|\\[,;:! ]|[\s$~{}]")


def _boxes(text: str) -> list[tuple[int, str]]:
    """(start, content) of every box of `text` (see `_box_spans`)."""
    return [(a, c) for a, _, c in _box_spans(text)]


def _box_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every `\\boxed{...}` / `\\fbox{...}` / `\\boxed 5` in `text`, braces
    matched, in order. Empty and unbalanced boxes are skipped (they hold no answer), and a box
    inside another one is one answer (`\\boxed{\\boxed{3}}` is 3)."""
    out: list[tuple[int, int, str]] = []
    end = -1  # where the previous box closed
    for m in _BOX_RE.finditer(text or ""):
        if m.start() < end:
            continue
        i = m.end()
        if i < len(text) and text[i] == "{":
            j = _braced(text, i)
            if j < 0:
                continue
            end = j
            inner = text[i + 1 : j].strip()
            while (w := _BOX_RE.match(inner)) and inner[w.end() : w.end() + 1] == "{":
                if _braced(inner, w.end()) != len(inner) - 1:
                    break
                inner = inner[w.end() + 1 : -1].strip()  # \boxed{\boxed{3}} -> 3
            if _BLANK_RE.sub("", inner):  # \boxed{\text{ }} is no answer either
                out.append((m.start(), j + 1, inner))
            continue
        tail = re.match(r"([^\s$]+)", text[i:])
        if tail:
            out.append((m.start(), i + tail.end(), tail.group(1)))
    return out


# what may stand between boxes that list one answer's values: "$\boxed{3}$ and $\boxed{5}$",
# "$x = \boxed{2}$ or $x = \boxed{-2}$"
_LIST_JOIN_RE = re.compile(
    r"[\s$,;]*(?:(?:and|or|&|\\quad|\\qquad|\\text\s*\{\s*(?:and|or)\s*\})[\s$,;]*)?"
    r"(?:[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*)?[\s$]*"
)


def listed_boxes(text: str) -> list[str]:
    """The last box of `text` with the boxes before it that are joined to it only by commas,
    "and"/"or" (and `x =`): the values the answer lists ("The solutions are $\\boxed{3}$ and
    $\\boxed{5}$." -> ["3", "5"])."""
    spans = _box_spans(text or "")
    if not spans:
        return []
    run = [spans[-1]]
    for prev in reversed(spans[:-1]):
        if not _LIST_JOIN_RE.fullmatch(text[prev[1] : run[0][0]]):
            break
        run.insert(0, prev)
    return [c for _, _, c in run]


def boxed_answers(text: str) -> list[str]:
    """The contents of every non-empty box of `text`, in order."""
    return [b for _, b in _boxes(text)]


def last_boxed(text: str) -> str | None:
    """Content of the last non-empty `\\boxed{...}` (or `\\fbox{...}`, `\\boxed 5`) in `text`."""
    boxes = _boxes(text)
    return boxes[-1][1] if boxes else None


_EMPTY_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{\s*\}")
# an answer statement followed by something: "The answer is seventy-three", "Final answer: none",
# "The final answer is $y = 2x + 5$" (stated even when its parse timed out)
_STATES_ANSWER_RE = re.compile(
    r"(?i)\banswer\b[*\s]*(?:is|:|=|would\s+be)[*\s:]*(?:\$+\s*|\\\(\s*)?[^\s*#:.$]"
)


# the answer part ends on an answer statement: "The final answer is $42$.", "Answer: 1,000"
_ENDS_STATING_RE = re.compile(
    r"(?i)\banswer\b[*\s]*(?:is|:)[*\s:]*(?:\$+|\\\()?\s*([^$\n]{1,80}?)\s*(?:\$+|\\\))?[\s.*]*$"
)


def _stated_number(content: str) -> str | None:
    """The number an answer part without a box ends by stating ("... the final answer is $42$."),
    when it is a plain number (`simple_number`), else None: read without math-verify's parser,
    which would find the same value there."""
    m = _ENDS_STATING_RE.search(content[-300:])
    if m is None or simple_number(m.group(1)) is None:
        return None
    return m.group(1)


def _stated_answer(content: str, timeout_s: float | None) -> list[Any]:
    """math-verify's extraction from an answer part without a box ("The final answer is 42")."""
    text = _EMPTY_BOX_RE.sub(" ", content or "")[-2000:]
    if not text.strip():
        return []
    from math_verify import parse

    with deadline(timeout_s):
        return parse(normalize_latex(text), parsing_timeout=None)  # type: ignore[arg-type]


@dataclass
class Found:
    """Where a response's final answer was found.

    `text`: the answer as written (the last box, or the expression math-verify read); `boxes`:
    every box of that part (several boxes may together be the answer); `source`: "answer" (the
    visible answer after the reasoning) or "reasoning" (fallback); `parsed`: math-verify's parse
    when the answer was read without a box.
    """

    text: str
    boxes: list[str]
    source: str
    parsed: list[Any] | None = None


# a stated correction after the answer: "Actually, wait — it's 13.", "Wait, no: the answer is 13."
_CORRECTION_RE = re.compile(
    r"(?i)\b(?:actually|wait|oops|sorry|correction|scratch\s+that|no(?=\s*[,:;\u2014\u2013-])"
    r"|i\s+made\s+an?\s+(?:mistake|error))\b"
    r"[^.\n]*?\b(?:it'?s|it\s+is|it\s+should\s+be|should\s+be|must\s+be|is\s+actually"
    r"|answer\s+(?:is|should\s+be|must\s+be)|answer\s*[:=])[*\s:]*"
)
_VALUE_START_RE = re.compile(r"[\s*$]*(?:[-+(\[\\\d.]|[a-zA-Z]\s*=)")
_SENTENCE_END_RE = re.compile(r"(?<!\d)\.(?!\d)|\n|;")


_DISCARDED_BEFORE_RE = re.compile(
    r"(?i)\b(?:(?:earlier|previous|initial|wrong|incorrect|mistaken|rejected)\s+"
    r"(?:guess|answer|attempt|result|value|try)|first\s+(?:guess|attempt|try))\b"
)
_DISCARDED_AFTER_RE = re.compile(
    r"(?i)^[^.\n;\\]*?\b(?:was|is|were)\s+(?:wrong|incorrect|a\s+mistake|an\s+error|not\s+(?:right|correct))\b"
)


def _discarded(text: str, start: int, end: int) -> bool:
    """Whether the sentence holding the box at [start, end) discards it ("Note: an earlier guess
    of $\\boxed{5}$ was wrong.")."""
    before = text[max(0, start - 300) : start]
    before = before[max(before.rfind("\n"), before.rfind(". ")) + 1 :]
    return bool(_DISCARDED_BEFORE_RE.search(before) or _DISCARDED_AFTER_RE.match(text[end : end + 300]))


def _drop_discarded(text: str) -> str:
    """`text` with the boxes it discards (see `_discarded`) blanked out."""
    for a, e, _ in reversed(_box_spans(text)):
        if _discarded(text, a, e):
            text = text[:a] + " " * (e - a) + text[e:]
    return text


def _correction(content: str, after: int, timeout_s: float | None) -> list[Any]:
    """math-verify's reading of the value a correction after position `after` states
    ("The answer is 12. Actually, wait — it's 13." -> 13), or [] when there is none."""
    last = None
    for m in _CORRECTION_RE.finditer(content, after):
        last = m
    if last is None:
        return []
    tail = content[last.end() :]
    end = _SENTENCE_END_RE.search(tail)
    tail = tail[: end.start()] if end else tail
    if not _VALUE_START_RE.match(tail):  # "Wait, it's worth noting that n = 5 fails": no value
        return []
    from math_verify import parse

    try:
        with deadline(timeout_s):
            parsed = parse(normalize_latex(tail), parsing_timeout=None)  # type: ignore[arg-type]
    except VerifyTimeout:
        return []
    return parsed if _has_math(parsed) else []


def find_answer(content: str, reasoning: str = "", timeout_s: float | None = 5.0) -> Found | None:
    """The response's final answer, taken from the answer part (after `</think>`) only.

    1. the last non-empty box of the answer part (all its boxes are kept in `boxes`);
    2. else the answer the answer part states without a box, read by math-verify
       ("The final answer is 42", "Answer: $x = 5$");
    3. only when the answer part holds no answer at all (no box, no answer statement): the last
       box of the reasoning.
    A draft box in the reasoning never overrides an answer the answer part states, and a stated
    correction after the answer ("Actually, wait — it's 13.") replaces it.
    """
    content = _drop_discarded(content or "")
    found = _boxes(content)
    boxes = [b for _, b in found]
    corrected = _correction(content or "", found[-1][0] if found else 0, timeout_s)
    if corrected:
        return Found(str(corrected[-1]), [], "answer", corrected)
    if boxes:
        return Found(boxes[-1], boxes, "answer")
    number = _stated_number(_EMPTY_BOX_RE.sub(" ", content))
    if number is not None:  # the common case needs no parser
        return Found(number, [], "answer")
    try:
        stated = _stated_answer(content, timeout_s)
    except VerifyTimeout:
        stated = []
    if _has_math(stated):
        return Found(str(stated[-1]), [], "answer", stated)
    if _STATES_ANSWER_RE.search(_EMPTY_BOX_RE.sub(" ", content or "")):
        return None  # "The answer is seventy-three": stated, though unreadable; never a draft box
    rboxes = boxed_answers(reasoning or "")
    if rboxes:
        return Found(rboxes[-1], rboxes[-1:], "reasoning")
    return None


def extract_answer(content: str, reasoning: str = "", timeout_s: float | None = 5.0) -> str | None:
    """The final answer's text (see `find_answer`), or None."""
    found = find_answer(content, reasoning, timeout_s)
    return found.text if found else None


def _norm(s: str) -> str:
    s = re.sub(r"\\(?:left|right|displaystyle|!|,|;|:)", "", normalize_latex(s))
    return re.sub(r"\s+", "", s).rstrip(".").strip("$")


# ---------------------------------------------------------------------------- normalisation

# \operatorname{sin} -> \sin: the operator names math-verify's parser reads as commands
_OPERATORS = (
    "sin cos tan cot sec csc arcsin arccos arctan arccot arcsec arccsc sinh cosh tanh coth "
    "log ln exp lcm gcd min max"
).split()
_UNICODE = {"\u2212": "-", "\u03c0": "\\pi ", "\u221e": "\\infty ", "\u00d7": "\\times ", "\u00b7": "\\cdot ",
            "\u2264": "\\le ", "\u2265": "\\ge ", "\u221a": "\\sqrt", "\u00b0": "^\\circ"}  # fmt: skip
_UPRIGHT_RE = re.compile(r"\\(?:mathrm|mathit|mathnormal|textrm|textit|text|operatorname)\s*\{\s*([ei])\s*\}")
# commands the parser misses, and what it reads for them
_SAME_COMMANDS = (("\\lbrace", "\\{"), ("\\rbrace", "\\}"), ("\\varnothing", "\\emptyset"),
                  ("\\mathbb{R}", "(-\\infty, \\infty)"), ("\\mathbb R", "(-\\infty, \\infty)"))  # fmt: skip
# 1.5e-4, 8.67E+19: a number in E notation (never Euler's e: digits on both sides, no space)
_E_NOTATION_RE = re.compile(r"(?<![\w.\\])((?:\d+\.?\d*|\.\d+))[eE]([+-]?\d+)(?![\w.])")
# 1\ 000, 1\,234\,567, 10~000: digits grouped by a LaTeX space (a thousands separator)
_SPACED_THOUSANDS_RE = re.compile(r"(?<![\d.])\d{1,3}(?:(?:\\[ ,;:]|~|\\thinspace\s*)\d{3})+(?!\d)")
# a repeating decimal: 0.\overline{3}, 1.\overline{9}, 0.1\overline{6}
_REPEATING_RE = re.compile(r"(?<![\d.])(\d*)\.(\d*)\\overline\s*\{\s*(\d+)\s*\}")


def _repeating_fraction(m: re.Match[str]) -> str:
    """`0.1\\overline{6}` -> `\\frac{1}{6}` (the exact value of a repeating decimal)."""
    whole, fixed, rep = m.group(1) or "0", m.group(2), m.group(3)
    value = Fraction(int(whole)) + Fraction(int(fixed or "0"), 10 ** len(fixed))
    value += Fraction(int(rep), 10 ** len(fixed) * (10 ** len(rep) - 1))
    return (
        str(value.numerator)
        if value.denominator == 1
        else f"\\frac{{{value.numerator}}}{{{value.denominator}}}"
    )


_OPNAME_RE = re.compile(r"\\operatorname\*?\s*\{\s*([A-Za-z]+)\s*\}")


def normalize_latex(s: str) -> str:
    """Rewrite notation math-verify's parser misreads into the forms it reads, on either side.

    The upright constants `\\mathrm{e}`, `\\mathrm{i}` (also `\\text{e}`, `\\operatorname{i}` ...)
    become the plain letter (so `e` is Euler's number on both sides; units such as `\\mathrm{m}`
    are left to math-verify); `\\operatorname{sin}` becomes
    `\\sin` for the known operator names; `\\dfrac`/`\\tfrac`/`\\cfrac` -> `\\frac`,
    `\\dbinom`/`\\tbinom` -> `\\binom`, digits grouped by spaces `1\\ 000` -> `1000`, repeating decimals `0.\\overline{3}` -> `\\frac{1}{3}`, E notation `1.5e-4` -> `1.5\\times 10^{-4}`, `\\lbrace`/`\\rbrace` -> `\\{`/`\\}`, `\\varnothing` ->
    `\\emptyset`, `\\mathbb{R}` -> `(-\\infty, \\infty)`; Unicode minus, pi, infinity, times, dot, <=, >=, root and
    degree signs become their LaTeX commands.
    """
    for u, latex in _UNICODE.items():
        if u in s:
            s = s.replace(u, latex)
    if "e" in s or "E" in s:
        s = _E_NOTATION_RE.sub(r"\1\\times 10^{\2}", s)
    if "~" in s or "\\" in s:
        s = _SPACED_THOUSANDS_RE.sub(lambda m: re.sub(r"\D", "", m.group(0)), s)
    if "\\" not in s:
        return s
    if "overline" in s:
        s = _REPEATING_RE.sub(_repeating_fraction, s)
    s = re.sub(r"\\[dtc]frac(?![a-zA-Z])", r"\\frac", s)
    s = re.sub(r"\\[dt]binom(?![a-zA-Z])", r"\\binom", s)
    s = _UPRIGHT_RE.sub(r"\1", s)
    for cmd, same in _SAME_COMMANDS:
        if cmd in s:
            s = re.sub(re.escape(cmd) + r"(?![a-zA-Z])", lambda _m, v=same: v, s)
    return _OPNAME_RE.sub(lambda m: "\\" + m.group(1) + " " if m.group(1) in _OPERATORS else m.group(0), s)


# ---------------------------------------------------------------------------- math

_NUM_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_FRAC_RE = re.compile(r"([+-]?)\\frac(?:\{([+-]?\d+)\}|(\d))(?:\{(\d+)\}|(\d))")
_SLASH_RE = re.compile(r"([+-]?\d+)/(\d+)")
_SCI_RE = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))\\(?:times|cdot)10\^(?:\{([+-]?\d+)\}|(\d))")


# 1,234 / 12{,}345 / 10,\\!080 / 1,234.5: digits grouped by commas, as math-verify reads them
# (a first group of 1-3 digits not starting with 0, then groups of exactly three; `0,500` is
# math-verify's decimal comma and `1, 000` a list: both left to math-verify)
_COMMA_THOUSANDS_RE = re.compile(r"[+-]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d*)?")
_COMMA_SEP_RE = re.compile(r"\{,\}|,(?:\\!\s*)+")


def simple_number(s: str) -> Fraction | None:
    """An exact value for plain integers, decimals, fractions (`\\frac12`, `3/4`), scientific
    notation (`1.5\\times 10^{-4}`, `1.5e-4`) and numbers with thousands separators (`1,000`,
    `10,\\!080`, `1\\ 000`), a leading `\\$` dropped, else None.

    The fast path of `verify_math`: most gold answers are plain numbers, and comparing two of
    them needs no LaTeX parser. Anything else (units, symbols, sets, `1, 000` ...) returns None.
    """
    raw = _COMMA_SEP_RE.sub(",", s.strip().strip("$").strip())
    if "," in raw and re.search(r"(?<!\\),\s", raw):
        return None  # `1, 000`: a list
    t = _norm(raw).replace("\\!", "")
    if t.startswith("\\$"):
        t = t[2:]
    if _NUM_RE.fullmatch(t):
        return Fraction(t)
    if "," in t:
        return Fraction(t.replace(",", "")) if _COMMA_THOUSANDS_RE.fullmatch(t) else None
    m = _FRAC_RE.fullmatch(t)
    if m:
        sign, a1, a2, b1, b2 = m.groups()
        num, den = int(a1 or a2), int(b1 or b2)
        return None if den == 0 else Fraction(-num if sign == "-" else num, den)
    m = _SLASH_RE.fullmatch(t)
    if m and int(m.group(2)) != 0:
        return Fraction(int(m.group(1)), int(m.group(2)))
    m = _SCI_RE.fullmatch(t)
    if m and abs(int(m.group(2) or m.group(3))) <= 400:
        return Fraction(m.group(1)) * Fraction(10) ** int(m.group(2) or m.group(3))
    return None


def _fast_compare(gold: str, pred: str) -> bool | None:
    """True/False when both sides are simple numbers and the answer is certain, else None."""
    g, p = simple_number(gold), simple_number(pred)
    if g is None or p is None:
        return None
    if g == p:
        return True
    if _is_decimal(gold) or _is_decimal(pred):  # a decimal is a rounded value
        return abs(g - p) <= REL_TOL_FRACTION * max(abs(g), abs(p))
    return False


REL_TOL_FRACTION = Fraction(1, 10**6)  # a decimal answer matches within a relative 1e-6


def _is_decimal(s: str) -> bool:
    """Whether a number is written with a decimal point or in E notation (a rounded value)."""
    return bool(re.search(r"\d\.\d|\.\d|\d[eE][+-]?\d", s))


_PERCENT_RE = re.compile(
    r"(?:\\[,;:! ]|\s|~)*(?:\\%|%|\\text\s*\{\s*\\?%\s*\}|\\text\s*\{\s*percent\s*\}|percent)\s*$"
)


def _percent_equal(gold: str, pred: str) -> bool:
    """Whether a number with a percent sign and the same number without one (`25` and `25\\%`,
    either side) are equal: the question asked for the percentage. `25\\%` against `\\frac14`
    is math-verify's (it reads 25% as 0.25)."""
    g, p = _PERCENT_RE.sub("", gold), _PERCENT_RE.sub("", pred)
    if g == gold and p == pred:
        return False
    return bool(_fast_compare(g, p)) or (bool(g.strip()) and _norm(g) == _norm(p))


@dataclass
class ParsedGold:
    raw: str
    parsed: list[Any]
    error: str = ""
    text: str = ""  # the gold's answer text (inside its box, without `$`)

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def multi(self) -> bool:
        """Whether the gold is several values (a set, a list or a tuple)."""
        from sympy import FiniteSet, Tuple

        if self.parsed and isinstance(self.parsed[0], FiniteSet | Tuple):
            return True
        return _top_level_commas(self.text) > 0 or _top_level_commas(_strip_brackets(self.text)[1]) > 0


def _mv_parse(latex: str, timeout_s: float | None) -> list[Any]:
    from math_verify import parse

    with deadline(timeout_s):
        return parse(f"\\boxed{{{normalize_latex(latex)}}}", parsing_timeout=None)  # type: ignore[arg-type]


def _has_math(parsed: list[Any]) -> bool:
    if not parsed:
        return False
    from sympy import Basic, MatrixBase

    return any(isinstance(p, Basic | MatrixBase) for p in parsed)


def gold_text(gold: str | None) -> str:
    """The answer text of a gold: inside its box if it has one, without surrounding `$`."""
    if gold is None:
        return ""
    raw = str(gold).strip()
    return last_boxed(raw) or raw.strip("$").strip()


def parse_gold(gold: str | None, timeout_s: float | None = 5.0) -> ParsedGold:
    """Parse a gold answer once; `error` is set when math-verify cannot read it."""
    if gold is None or not str(gold).strip():
        return ParsedGold("", [], "no gold answer")
    raw = str(gold).strip()
    inner = gold_text(raw)
    try:
        parsed = _mv_parse(inner, timeout_s)
    except VerifyTimeout:
        return ParsedGold(raw, [], f"gold parse timed out after {timeout_s}s", inner)
    if not _has_math(parsed):
        return ParsedGold(raw, parsed, f"gold answer not parseable: {raw[:80]!r}", inner)
    return ParsedGold(raw, parsed, "", inner)


class GoldCache:
    """Parsed gold answers (and recent prediction verdicts) keyed by text, LRU-bounded."""

    def __init__(self, size: int = 4096, timeout_s: float | None = 5.0) -> None:
        self.size = size
        self.timeout_s = timeout_s
        self._gold: OrderedDict[str, ParsedGold] = OrderedDict()
        self._pred: OrderedDict[tuple[str, str], Verdict] = OrderedDict()
        self.parses = 0  # how many gold answers were actually parsed

    def gold(self, gold: str | None) -> ParsedGold:
        key = "" if gold is None else str(gold)
        hit = self._gold.get(key)
        if hit is not None:
            self._gold.move_to_end(key)
            return hit
        self.parses += 1
        pg = parse_gold(gold, self.timeout_s)
        self._gold[key] = pg
        if len(self._gold) > self.size:
            self._gold.popitem(last=False)
        return pg

    def pred_get(self, gold: str, pred: str) -> Verdict | None:
        return self._pred.get((gold, pred))

    def pred_put(self, gold: str, pred: str, v: Verdict) -> None:
        self._pred[(gold, pred)] = v
        if len(self._pred) > self.size * 4:
            self._pred.popitem(last=False)


# ------------------------------------------------------------------ exactness after math-verify


def _exact_number(x: Any) -> bool:
    """A sympy number written without decimals (an integer, a fraction, 2^{-99}, \\sqrt{2} ...)."""
    from sympy import Basic, Float

    return isinstance(x, Basic) and not x.free_symbols and bool(x.is_number) and not x.has(Float)


def _exactly_equal(a: Any, b: Any) -> bool:
    """Whether two exact numbers are equal: exactly for rationals (so 2^{-99} != 2^{-98} and
    1000000006 != 1000000007), and to 40 significant digits for irrational values (where sympy
    cannot always prove a radical identity, but no rounding at 15 digits can hide a difference)."""
    from sympy import N, Number

    d = (a - b).doit()
    if isinstance(d, Number):
        return bool(d == 0)
    scale = max(abs(complex(N(a, 50))), abs(complex(N(b, 50))), 1e-300)
    return abs(complex(N(d, 60))) <= 1e-40 * scale


def _exact_conflict(gold: Any, pred: Any) -> bool:
    """True when math-verify's float-rounded comparison accepted two exact values that differ.

    math-verify compares numbers by `evalf(15, chop=True)`: two exact values whose difference is
    below 1e-15 (e.g. 1/2^99 and 1/2^98) come out equal. Exact values get an exact check here;
    a side written as a decimal keeps math-verify's tolerance (rounding to 6 places).
    """
    from sympy import Eq, FiniteSet, Interval, MatrixBase, Tuple

    if isinstance(gold, Eq) and isinstance(pred, Eq):  # x = 2^{-99} against x = 2^{-98}
        if gold.lhs == pred.lhs:
            return _exact_conflict(gold.rhs, pred.rhs)
        return False
    if isinstance(pred, Eq) and not isinstance(gold, Eq):  # math-verify reads x = v as v
        return _exact_conflict(gold, pred.rhs)
    if isinstance(gold, Interval) and isinstance(pred, Interval):
        return _exact_conflict(gold.start, pred.start) or _exact_conflict(gold.end, pred.end)
    if isinstance(gold, MatrixBase) and isinstance(pred, MatrixBase) and gold.shape == pred.shape:
        return any(_exact_conflict(g, p) for g, p in zip(gold, pred, strict=True))
    if isinstance(gold, FiniteSet | Tuple) and isinstance(pred, FiniteSet | Tuple):
        ga, pa = list(gold.args), list(pred.args)
        if len(ga) != len(pa):
            return False
        if isinstance(gold, Tuple) and isinstance(pred, Tuple):
            return any(_exact_conflict(g, p) for g, p in zip(ga, pa, strict=True))
        # as sets: every gold element needs an exactly equal answer element
        return any(all(_conflict_or_mismatch(g, p) for p in pa) for g in ga if _exact_number(g))
    if _exact_number(gold) and _exact_number(pred):
        return not _exactly_equal(gold, pred)
    return False


def _conflict_or_mismatch(g: Any, p: Any) -> bool:
    if _exact_number(g) and _exact_number(p):
        return not _exactly_equal(g, p)
    return True


def _relative_close(a: Any, b: Any) -> bool | None:
    """For two numbers of which one is a decimal (a sympy Float): whether they agree to a relative
    1e-6, else None. math-verify rounds to 6 decimal places, an absolute tolerance that lets
    `0.0` pass for `10^{-9}` and fails `99.9999999` for `100`."""
    from sympy import Basic, Float, N

    if not (isinstance(a, Basic) and isinstance(b, Basic)) or not (a.has(Float) or b.has(Float)):
        return None
    if not (a.is_number and b.is_number) or a.free_symbols or b.free_symbols:
        return None
    try:
        x, y = complex(N(a, 30)), complex(N(b, 30))
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (x.real, x.imag, y.real, y.imag)):
        return None
    return abs(x - y) <= 1e-6 * max(abs(x), abs(y))


def _mv_equal(gold: list[Any], pred: list[Any]) -> bool:
    """math-verify's verdict, then exact values re-checked exactly (see `_exact_conflict`)."""
    from math_verify import verify as mv_verify
    from sympy import Basic, MatrixBase

    g_math = [g for g in gold if isinstance(g, Basic | MatrixBase)]
    p_math = [p for p in pred if isinstance(p, Basic | MatrixBase)]
    for g in g_math:
        for p in p_math:
            rel = _relative_close(g, p)
            if rel is not None:
                if rel:
                    return True
                continue
            if mv_verify([g], [p], timeout_seconds=None) and not _exact_conflict(g, p):
                return True
    return False


# --------------------------------------------------------------------- lists written with \ldots

_ELLIPSIS_RE = re.compile(r"\\[lc]?dots[bcimo]?(?![a-zA-Z])|\.\.\.|\u2026")


def _top_level_commas(s: str) -> int:
    depth = 0
    n = 0
    for c in s:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            n += 1
    return n


def _split_top(s: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for c in s:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur).strip())
    return parts


def _strip_brackets(s: str) -> tuple[str, str]:
    """('(' / '[' / '\\{' / '', inner) of a bracketed list."""
    t = _norm(s)
    for op, cl in (("\\{", "\\}"), ("(", ")"), ("[", "]")):
        if t.startswith(op) and t.endswith(cl):
            return op, t[len(op) : -len(cl)]
    return "", t


_TEXT_UNIT_RE = re.compile(
    r"(?:\\[,;:! ]|\s|~)*\\(?:text|mathrm|textrm|mbox|operatorname)\s*\{\s*([A-Za-z][A-Za-z\s./]*?)\s*\}"
    r"(\^\{?\d\}?)?\s*\.?$"
)
_WORD_UNIT_RE = re.compile(r"^[-+\d.,{}\\ ]*\d[}\s]*\s([A-Za-z]{2,})(\^\{?\d\}?)?\s*\.?$")
_UNIT_NAMES = {
    "m": "meter metre", "cm": "centimeter centimetre", "mm": "millimeter millimetre",
    "km": "kilometer kilometre", "g": "gram gramme", "kg": "kilogram", "mg": "milligram",
    "s": "sec second", "ms": "millisecond", "min": "minute", "h": "hr hour", "l": "liter litre",
    "ml": "milliliter millilitre", "in": "inch inche", "ft": "foot feet", "yd": "yard", "mi": "mile",
    "lb": "lbs pound", "oz": "ounce", "deg": "degree",
}  # fmt: skip
_UNIT_ALIASES = {alias: unit for unit, names in _UNIT_NAMES.items() for alias in names.split()}


def _unit(text: str) -> str | None:
    """The unit written after an answer's value (`5\\text{ cm}`, `5\\,\\mathrm{m}`, `5 cm`),
    in a canonical spelling (`meters` -> `m`), or None."""
    t = text.strip().strip("$")
    m = _TEXT_UNIT_RE.search(t)
    if m is None or not t[: m.start()].strip():
        m = _WORD_UNIT_RE.match(t)
    if m is None:
        return None
    name = re.sub(r"[\s.]", "", m.group(1)).lower()
    if len(name) > 3 and name.endswith("s") and name not in _UNIT_ALIASES:
        name = name[:-1]  # plural
    return _UNIT_ALIASES.get(name, name) + (re.sub(r"[{}^]", "", m.group(2) or ""))


def _units_differ(gold: str, pred: str) -> bool:
    """Whether both sides name a unit and the units differ (`5\\text{ cm}` against `5\\text{ m}`);
    an answer without a unit is read in the gold's unit."""
    if not re.search(r"[A-Za-z]", gold) or not re.search(r"[A-Za-z]", pred):
        return False
    g, p = _unit(gold), _unit(pred)
    return g is not None and p is not None and g != p


def _set_against_tuple(gold: str, pred: str) -> bool:
    """Whether one side is a set `\\{1, 2\\}` and the other a bracketed tuple or interval `(1, 2)`:
    different answers, whatever the order of the elements."""
    (gb, gi), (pb, pi) = _strip_brackets(gold), _strip_brackets(pred)
    if not (gb and pb) or gb == pb or "\\{" not in (gb, pb):
        return False
    return _top_level_commas(gi) > 0 and _top_level_commas(pi) > 0


def _compare_ellipsis_lists(gold: str, pred: str, timeout_s: float | None) -> bool:
    """Lists written with `\\ldots`: same brackets, same length, the ellipsis at the same places,
    and every other element equal (each compared like an answer). math-verify drops the `\\ldots`
    and reads `1, 2, \\ldots, 10` as 10, so `1, 3, \\ldots, 10` would otherwise match it."""
    (gb, gi), (pb, pi) = _strip_brackets(gold), _strip_brackets(pred)
    if gb != pb:
        return False
    ge, pe = _split_top(gi), _split_top(pi)
    if len(ge) != len(pe):
        return False
    for g, p in zip(ge, pe, strict=True):
        g_dots, p_dots = bool(_ELLIPSIS_RE.fullmatch(g)), bool(_ELLIPSIS_RE.fullmatch(p))
        if g_dots or p_dots:
            if g_dots != p_dots:
                return False
            continue
        if _norm(g) == _norm(p):
            continue
        fast = _fast_compare(g, p)
        if fast is not None:
            if not fast:
                return False
            continue
        gp, pp = _mv_parse(g, timeout_s), _mv_parse(p, timeout_s)
        with deadline(timeout_s):
            if not (_has_math(gp) and _has_math(pp) and _mv_equal(gp, pp)):
                return False
    return True


# ------------------------------------------------------------------ numbers written in a base

_BASE_RE = re.compile(r"((?=[0-9A-Za-z]*\d)[0-9A-Za-z]+)_\{?(\d+)\}?")


def _same_base_number(gold: str, pred: str) -> bool | None:
    """`204_5` against an answer, when either side is a number with a base subscript: the same
    digits in the same base (or the digits alone, the base being the question's); else None.
    math-verify drops the subscript, so `52_1` would pass for `52_8`."""
    g, p = _BASE_RE.fullmatch(_norm(gold).replace("\\text", "")), _BASE_RE.fullmatch(_norm(pred))
    if g is None and p is None:
        return None
    if g is None or not (p is not None or re.fullmatch(r"[0-9A-Za-z]+", _norm(pred))):
        return False
    digits, base = (p.group(1), p.group(2)) if p else (_norm(pred), g.group(2))
    return digits.upper() == g.group(1).upper() and base == g.group(2)


# ---------------------------------------------------------------------------- the math verifier


def _compare(
    pg: ParsedGold, pred_text: str, pred: list[Any] | None, timeout_s: float | None
) -> tuple[bool, str]:
    """(equal, how) for a parsed gold and one answer text (`pred`: its parse, if already done)."""
    if _ELLIPSIS_RE.search(pg.text) or _ELLIPSIS_RE.search(pred_text):
        return _compare_ellipsis_lists(pg.text, pred_text, timeout_s), "list with ellipsis"
    based = _same_base_number(pg.text, pred_text)
    if based is not None:
        return based, "number in base b"
    words = _words_answer(pg.text)
    if words:
        return _plain_words(pred_text).rstrip(".!") == words, "words"
    if _units_differ(pg.text, pred_text):
        return False, "different units"
    if _set_against_tuple(pg.text, pred_text):
        return False, "a set is not an ordered tuple"
    if _percent_equal(pg.text, pred_text):
        return True, "percent"
    fast = _fast_compare(pg.text, pred_text)
    if fast is not None:  # both plain numbers: no LaTeX parser needed
        return fast, "numeric"
    if _norm(pred_text) == _norm(pg.text):
        return True, "exact match"
    if pred is None:
        pred = _mv_parse(pred_text, timeout_s)
    if not _has_math(pred):
        return False, "answer not parseable"
    with deadline(timeout_s):
        return _mv_equal(pg.parsed, pred), "math-verify"


def verify_math(
    content: str, reasoning: str, gold: str | None, cache: GoldCache | None = None, timeout_s: float = 5.0
) -> Verdict:
    """Check a math answer against the gold (see `find_answer` for where the answer is taken from).

    Several boxes in the answer part are compared together (as one set or tuple) when the gold
    holds several values; otherwise the last box is the answer.
    """
    cache = cache or GoldCache(timeout_s=timeout_s)
    found = find_answer(content, reasoning, timeout_s)
    words = _words_answer(gold_text(gold))
    if words and (found is None or not found.boxes):  # "The answer is **Monday**."
        said = _stated_words(content)
        if said:
            return Verdict("correct" if said == words else "wrong", said, "words")
    if found is None:
        return Verdict("no_answer", None, "no \\boxed{} answer and no stated final answer")
    where = "" if found.source == "answer" else " (from the reasoning)"
    gtext = gold_text(gold)
    marked = "(" in gtext or "\\text" in gtext or (len(gtext) == 1 and gtext.isupper())  # not e, x
    gold_letter = _letter(gtext) if marked else None
    said = _leading_letter(found.text) if gold_letter else None
    if gold_letter and said:  # AMC style: "(B) 12" against the gold letter (B)
        return Verdict("correct" if said == gold_letter else "wrong", found.text, f"choice {said}" + where)
    listed = (
        list(dict.fromkeys(listed_boxes(_drop_discarded(content or ""))))
        if found.source == "answer" and len(found.boxes) > 1
        else []
    )
    if len(listed) > 1 and not _gold_is_multi(gold, gtext, cache):
        return Verdict("wrong", ", ".join(listed), "several values listed, the gold has one" + where)
    if _percent_equal(gtext, found.text):
        return Verdict("correct", found.text, "percent" + where)
    fast = _fast_compare(gtext, found.text)
    if fast is not None:  # both plain numbers: no LaTeX parser needed, not even for the gold
        return Verdict("correct" if fast else "wrong", found.text, "numeric" + where)
    if gtext and _norm(found.text) == _norm(gtext):  # written the same way: no parser either
        return Verdict("correct", found.text, "exact match" + where)
    pg = cache.gold(gold)
    if not pg.ok:
        return Verdict("unverifiable", found.text, pg.error)
    candidates = [(found.text, found.parsed)]
    unique = list(dict.fromkeys(found.boxes))
    if len(unique) > 1 and pg.multi:
        candidates.insert(0, (", ".join(unique), None))  # together the answer: compared first
    interval = _inequality_interval(found.text) if _is_interval(pg.parsed) else None
    if interval:
        candidates.insert(0, (interval, None))  # 1 \le x \le 3 -> [1, 3]
    values = _solution_values(found.text)
    if values and pg.multi:
        candidates.insert(0, (values, None))  # x = 3 or x = 5 -> 3, 5
    last: Verdict | None = None
    for text, parsed in candidates:
        hit = cache.pred_get(pg.raw, text)
        if hit is None:
            try:
                same, how = _compare(pg, text, parsed, timeout_s)
                hit = Verdict("correct" if same else "wrong", text, how)
            except VerifyTimeout:
                hit = Verdict("unverifiable", text, f"math-verify timed out after {timeout_s}s")
            cache.pred_put(pg.raw, text, hit)
        if hit.status == "correct":
            return Verdict(hit.status, hit.extracted, hit.detail + where)
        last = last or hit
    assert last is not None
    return Verdict(last.status, found.text if last.status == "wrong" else last.extracted, last.detail + where)


_OR_RE = re.compile(r"\s*(?:\\text\s*\{\s*(?:or|and)\s*\}|\\(?:quad|qquad|vee|lor)\b|\bor\b|\band\b|;)\s*")
_VAR_EQ_RE = re.compile(r"^\s*[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*")


def _solution_values(text: str) -> str | None:
    """The values of a solution list written as equations (`x=3 \\text{ or } x=5`,
    `x = 3, x = 5`) as a plain list (`3, 5`), else None."""
    if "=" not in text:
        return None
    parts = _split_top(_OR_RE.sub(", ", re.sub(r"\\[,;:! ]", " ", text)))
    if len(parts) < 2 or not all(_VAR_EQ_RE.match(p) for p in parts):
        return None
    values = [_VAR_EQ_RE.sub("", p).strip() for p in parts]
    return ", ".join(values) if all(values) and all("=" not in v for v in values) else None


_LESS = r"(\\leq?(?:slant)?|<|\\lt|\\geq?(?:slant)?|>|\\gt)"
_CHAIN_RE = re.compile(r"(.+?)" + _LESS + r"([a-zA-Z])" + _LESS + r"(.+)")
_ONE_SIDE_RE = re.compile(r"([a-zA-Z])" + _LESS + r"(.+)")
_ONE_SIDE_REV_RE = re.compile(r"(.+?)" + _LESS + r"([a-zA-Z])")
_IN_RE = re.compile(r"[a-zA-Z]\\in(.+)")


def _is_interval(parsed: list[Any]) -> bool:
    from sympy import Interval, Union

    return bool(parsed) and isinstance(parsed[0], Interval | Union)


def _inequality_interval(text: str) -> str | None:
    """An interval written as an inequality (`1 \\le x \\le 3` -> `[1, 3]`, `x > 2` ->
    `(2, \\infty)`, `x \\in [1, 3]` -> `[1, 3]`), else None."""
    t = _norm(text)
    if m := _IN_RE.fullmatch(t):
        return m.group(1)
    if m := _CHAIN_RE.fullmatch(t):
        lo, op1, _, op2, hi = m.groups()
        if _greater(op1) and _greater(op2):
            lo, op1, hi, op2 = hi, op2, lo, op1  # 3 \ge x \ge 1
        elif _greater(op1) or _greater(op2):
            return None
        return ("[" if _closed(op1) else "(") + f"{lo}, {hi}" + ("]" if _closed(op2) else ")")
    if m := _ONE_SIDE_RE.fullmatch(t):
        op, v = m.group(2), m.group(3)
    elif m := _ONE_SIDE_REV_RE.fullmatch(t):  # 1 \le x is x \ge 1
        v, op = m.group(1), _flip(m.group(2))
    else:
        return None
    if _greater(op):
        return ("[" if _closed(op) else "(") + f"{v}, \\infty)"
    return f"(-\\infty, {v}" + ("]" if _closed(op) else ")")


def _flip(op: str) -> str:
    if op in "<>":
        return "<" if op == ">" else ">"
    return ("\\g" if op.startswith("\\l") else "\\l") + op[2:]


def _greater(op: str) -> bool:
    return op.startswith(("\\g", ">"))


def _closed(op: str) -> bool:
    return op.startswith(("\\le", "\\ge"))


_LEADING_LETTER_RE = re.compile(r"(?:\\text(?:bf|rm)?\s*\{\s*|\\mathbf\s*\{\s*)?\(([A-J])\)")


def _leading_letter(text: str) -> str | None:
    """The option letter an answer starts with (`\\text{(B) } 12`, `(C)\\ 7`), or the letter
    written alone (`B`, `\\textbf{(B)}`), else None."""
    m = _LEADING_LETTER_RE.match(text.strip().strip("$").strip())
    return m.group(1) if m else _letter(text)


_WORDS_RE = re.compile(r"[a-z][a-z'\- ]*[a-z]")
_STYLED_RE = re.compile(r"\s*\\(?:text(?:bf|rm|it|sf|tt)?|math(?:rm|bf|it|sf)|mbox)\s*\{[^{}]*\}\s*\.?")


def _words_answer(gold: str) -> str | None:
    """The words of a gold that is a word answer (`\\text{Monday}`, `Monday`, `\\text{no solution}`),
    lower-cased, else None. A plain gold counts only as a word of 3 or more letters (not `xy`)."""
    if not gold or any(c.isdigit() for c in gold):
        return None
    styled = _STYLED_RE.fullmatch(gold)
    plain = _plain_words(gold).rstrip(".")
    if not _WORDS_RE.fullmatch(plain) or not (
        styled or re.fullmatch(r"[A-Za-z]{3,}(?: [A-Za-z]+)*", gold.strip())
    ):
        return None
    return plain


def _stated_words(content: str) -> str | None:
    """The words an answer statement gives ("The answer is **Monday**." -> "monday"), else None."""
    last = None
    for m in _STATES_ANSWER_RE.finditer(content or ""):
        last = m
    if last is None:
        return None
    tail = content[last.end() - 1 :]  # the regex ends on the answer's first character
    tail = re.split(r"(?<!\d)[.!;,\n]", tail, maxsplit=1)[0]
    said = _plain_words(tail).rstrip(".!")
    return said if _WORDS_RE.fullmatch(said) else None


def _gold_is_multi(gold: str | None, gtext: str, cache: GoldCache) -> bool:
    if simple_number(gtext) is not None:  # the common case: no parse needed
        return False
    pg = cache.gold(gold)
    return pg.ok and pg.multi


def same_answer(a: str | None, b: str | None, timeout_s: float = 5.0) -> bool:
    """Whether two extracted answers are the same answer (for cons@n clustering)."""
    if a is None or b is None:
        return False
    if _norm(a) == _norm(b):
        return True
    pg = parse_gold(a, timeout_s)
    if not pg.ok:
        return False
    try:
        return _compare(pg, b, None, timeout_s)[0]
    except VerifyTimeout:
        return False


# ---------------------------------------------------------------------------- multiple choice

_LETTER = "ABCDEFGHIJ"
_STYLE_RE = re.compile(r"\\(?:text(?:bf|rm|it|sf|tt)?|math(?:bf|rm|it|sf|tt|bb)|bm|bf|mbox)\s*\{([^{}]*)\}")


def _letter(text: str | None) -> str | None:
    """The letter of a choice written alone: `B`, `(B)`, `B)`, `B.`, `\\text{(B)}`, `$B$`, `**B**`,
    or an option written out (`D) 2.1 eV`); else None."""
    if text is None:
        return None
    t = re.sub(_STYLE_RE, r"\1", str(text)).strip().strip("$*").strip()
    t = t.strip("().*: ").strip()
    if len(t) == 1 and t.upper() in _LETTER:
        return t.upper()
    m = re.match(r"^([A-J])[\).:]\s", t + " ")
    return m.group(1) if m else None


def option_texts(choices: Any = None, problem: str = "") -> dict[str, str]:
    """{letter: option text} from the record's `choices` (a list, or a dict keyed by letter),
    else from the options listed in the problem (`A) 1.2 eV` lines); {} when there are none."""
    if isinstance(choices, list | tuple) and 1 < len(choices) <= len(_LETTER):
        return {_LETTER[i]: str(c) for i, c in enumerate(choices)}
    if isinstance(choices, dict):
        return {str(k).strip().upper(): str(v) for k, v in choices.items() if len(str(k).strip()) == 1}
    listed = re.findall(r"(?m)^\s*(?:\*\*)?\(?([A-J])(?:\)|\.|:)(?:\*\*)?[ \t]+(\S[^\n]*)$", problem or "")
    return dict(reversed(listed))


def _plain_words(text: str) -> str:
    """Lower-cased text without markup (`**`, `$`, `\\text{}`) and with single spaces."""
    t = re.sub(_STYLE_RE, r"\1", text).replace("**", "").replace("$", "")
    return re.sub(r"\s+", " ", t).strip().lower()


def _option_named(tail: str, options: dict[str, str]) -> str | None:
    """The letter of the option whose text the answer statement gives ("The answer is beta.")."""
    said = _plain_words(tail).lstrip(": ")
    best = None
    for letter, text in options.items():
        want = _plain_words(text).rstrip(".")
        if want and said.startswith(want) and not said[len(want) : len(want) + 1].isalnum():
            if best is None or len(want) > len(_plain_words(options[best])):
                best = letter
    return best


def option_letters(choices: Any = None, problem: str = "") -> str:
    """The letters a question's options use: one per entry of the record's `choices`, else the
    options listed in the problem (lines starting `A)`, `(B)`, `C.` or `D:` from A on), else A-J."""
    if isinstance(choices, list | tuple) and 1 < len(choices) <= len(_LETTER):
        return _LETTER[: len(choices)]
    if isinstance(choices, dict) and choices:
        keys = "".join(sorted(str(k).strip().upper() for k in choices))
        if all(len(k) == 1 for k in map(str, choices)) and keys == _LETTER[: len(keys)]:
            return keys
    listed = re.findall(r"(?m)^\s*(?:\*\*)?\(?([A-J])(?:\)|\.|:)(?:\*\*)?\s+\S", problem or "")
    seen = "".join(dict.fromkeys(listed))
    n = 0
    while n < len(_LETTER) and _LETTER[n] in seen:
        n += 1
    return _LETTER[:n] if n >= 2 else _LETTER


# Phrases that state the choice; the letter follows in the same line.
_STATEMENT_RE = re.compile(
    r"(?i)(?:\banswer\b(?:\s*\*\*)?\s*(?:is|:|=|-|would\s+be|should\s+be|must\s+be|will\s+be)"
    r"|\b(?:option|choice)\s*(?:is|:|would\s+be|should\s+be|must\s+be)"
    r"|\bI(?:'d|\s+would|\s+will|'ll)?\s+(?:choose|pick|select|go\s+with)"
    r"|\b(?:left\s+with|leaves(?:\s+us\s+with)?|leaving(?:\s+only)?"
    r"|(?:only|remaining)\s+(?:option|choice)(?:\s+(?:left|remaining))?\s+is))"  # elimination
)
# a lower-case letter that is the whole answer ("Answer: c", "Final answer: b)")
_LOWER_LETTER_RE = re.compile(r"[\s*$]*(?:\(([a-j])\)|([a-j])\)|([a-j])[.:]?[\s*$.]*$)")
# A letter written as a choice: (B), **B**, $B$, \text{B}, \boxed{B}, or a bare capital
_CHOICE_TOKEN_RE = re.compile(
    r"\\boxed\s*\{\s*(?:\\text(?:bf)?\{)?\s*\(?(?P<boxed>[A-Ja-j])\)?\s*\}?\s*\}"
    r"|\\text(?:bf)?\{\s*\(?(?P<text>[A-J])\)?\s*\}"
    r"|\((?P<paren>[A-Ja-j])\)"
    r"|\*\*\s*\(?(?P<bold>[A-J])\)?(?:[.:)]|\s*\*\*)"
    r"|\$\s*\(?(?P<math>[A-J])\)?\s*\$"
    r"|(?<![\w'\\=+\-*/^_])(?P<bare>[A-J])(?![\w'])(?!\s*[=<>+/^_]|\s*\*(?!\*))(?:\s+(?P<word>[a-z]+))?"
)
# after "A" or "I", words that show the letter is the option, not the article or the pronoun
_LETTER_VERBS = {"is", "was", "and", "or", "because", "since", "as", "fits", "matches", "seems"}
# "(B) is correct", "Option B is the right answer", "A) is the correct answer"
_NAMED_CORRECT_RE = re.compile(
    r"(?i:option|choice)?\s*(?:\(([A-J])\)|\*\*\(?([A-J])\)?\*\*|(?<![\w'])([A-J])\)?(?![\w']))"
    r"\s+is\s+(?:the\s+)?(?:correct|right|best|true)\b"
    r"(?!\s+(?:only|if|when|for|under|in|unless|provided|as\s+long)\b)"  # "correct only for small n"
)
_BOLD_RE = re.compile(r"\*\*\s*\(?([A-J])\)?[.:]?\s*\*\*")
_LONE_LINE_RE = re.compile(r"(?m)^[ \t]*(?:\$|\\\(|\*\*)?\s*\(?([A-J])\)?[.)]?\s*(?:\$|\\\)|\*\*)?[ \t]*$")


HEDGE = "?"  # an answer statement naming two options ("Answer: B or C"): no choice
_HEDGE_RE = re.compile(r"\s*(?:(?:,|/|&|\b(?:or|and|nor|maybe|possibly|perhaps)\b)\s*)+")


def _statement_letter(tail: str) -> str | None:
    """The first letter written as a choice in the text after an answer statement; `HEDGE` when
    a second option is joined to it ("B or C", "(C) and (D)", "B/C")."""
    for m in _CHOICE_TOKEN_RE.finditer(tail):
        if re.search(r"(?i)\b(?:not|n't)\s*$", tail[: m.start()]):
            continue  # "the answer is not (A) but (C)"
        bare = m.group("bare")
        if bare is not None:  # a bare capital: not the article "A" or the pronoun "I"
            word = m.group("word")
            if bare in "AI" and word is not None and word not in _LETTER_VERBS:
                continue
            letter = bare
            end = m.start("bare") + 1
        else:
            letter = next(
                g for g in m.group("boxed", "text", "paren", "bold", "math") if g is not None
            ).upper()
            end = m.end()
        return HEDGE if _joined_letter(tail, end, letter) else letter
    return None


def _lower_letter(tail: str) -> str | None:
    m = _LOWER_LETTER_RE.match(tail)
    return next(g for g in m.groups() if g is not None).upper() if m else None


def _joined_letter(tail: str, end: int, letter: str) -> bool:
    """Whether another option letter is joined to the one ending at `end` ("B or C")."""
    j = _HEDGE_RE.match(tail, end)
    if j is None or j.end() == end:
        return False
    m = _CHOICE_TOKEN_RE.match(tail, j.end())
    if m is None:
        return False
    other = next((g for g in m.group("boxed", "text", "paren", "bold", "math", "bare") if g is not None), "")
    return other.upper() != letter


def choice_candidates(text: str, options: dict[str, str] | None = None) -> list[tuple[int, int, str]]:
    """(strength, position, letter) of every place `text` presents a letter as its choice.

    Strength 3: an explicit statement ("Answer: (B)", "The correct option is B", "I choose B") or
    a boxed letter; strength 2: an option named correct in prose ("(B) is correct"), so an
    explanation after the stated answer never overrides it; strength 1: a bold letter or a line
    that is only a letter.
    Prose that happens to be one letter ("I", "a") is never a candidate. An answer statement
    may also give an option's text (`options`: {letter: text}) instead of its letter.
    """
    out: list[tuple[int, int, str]] = []
    for m in _STATEMENT_RE.finditer(text):
        line = text[m.end() :].split("\n", 1)[0][:300]
        letter = _statement_letter(line) or _lower_letter(line) or _option_named(line, options or {})
        if letter is not None:
            out.append((3, m.start(), letter))
    for start, box in _boxes(text):
        letter = _letter(box)
        if letter is not None and box.strip("$ ") and not re.search(r"=", box):
            out.append((3, start, letter))
    for m in _NAMED_CORRECT_RE.finditer(text):
        out.append((2, m.start(), next(g for g in m.groups() if g is not None)))
    for rx in (_BOLD_RE, _LONE_LINE_RE):
        out.extend((1, m.start(), m.group(1)) for m in rx.finditer(text))
    return out


def extract_choice(
    content: str, reasoning: str = "", letters: str = _LETTER, options: dict[str, str] | None = None
) -> str | None:
    """The letter the response chooses: of the answer part's candidates (see `choice_candidates`)
    naming one of `letters`, the last of the strongest; the reasoning's explicit statements only
    when the answer part presents no choice. None when that choice is a hedge ("Answer: B or C")."""
    for text, min_strength in ((content or "", 1), (reasoning or "", 2)):
        cands = [
            c for c in choice_candidates(text, options) if c[2] in letters + HEDGE and c[0] >= min_strength
        ]
        if cands:
            best = max(cands)[2]
            return None if best == HEDGE else best
    return None


def verify_choice(
    content: str,
    reasoning: str,
    gold: str | None,
    letters: str = _LETTER,
    options: dict[str, str] | None = None,
) -> Verdict:
    """The chosen letter (see `extract_choice`; `options`: {letter: text}) against the gold letter."""
    gold_letter = _letter(gold)
    if gold_letter is None:
        return Verdict("unverifiable", None, f"gold is not a choice letter: {str(gold)[:40]!r}")
    letter = extract_choice(content, reasoning, letters, options)
    if letter is None:
        return Verdict("no_answer", None, f"no choice among {letters[0]}-{letters[-1]} found")
    return Verdict("correct" if letter == gold_letter else "wrong", letter, f"gold {gold_letter}")


# ---------------------------------------------------------------------------- code

_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)


# fence tags -> the sandbox's languages; an untagged block is taken for Python
FENCE_LANGUAGES = {"python": "python", "py": "python", "python3": "python", "": "python",
                   "cpp": "cpp", "c++": "cpp", "cc": "cpp", "cxx": "cpp"}  # fmt: skip


def extract_program(content: str) -> tuple[str, str] | None:
    """(language, code) of the answer's program: the last fenced block tagged with a language the
    sandbox runs (Python or C++), else the last untagged block (as Python), else (tag, code) of the
    last block, which the caller cannot run."""
    blocks = [(lang.lower(), code) for lang, code in _FENCE_RE.findall(content or "")]
    if not blocks:
        return None
    tagged = [(FENCE_LANGUAGES[lang], code) for lang, code in blocks if lang and lang in FENCE_LANGUAGES]
    untagged = [("python", code) for lang, code in blocks if not lang]
    return (tagged or untagged or blocks)[-1]


def parse_tests(tests: Any) -> list[dict[str, str]]:
    """Normalise test cases to [{"input", "output"}]: a list of pairs, or a dict holding them under
    `test_cases` / `inputs`+`outputs` (TACO/APPS `input_output`), possibly as a JSON string.

    Call-based problems (a `fn_name`) give {"input": JSON list of arguments, "output": JSON return
    value, "fn_name"}: the program's function (or `Solution().fn_name`) is called with them."""
    if tests is None:
        return []
    if isinstance(tests, str):
        try:
            tests = json.loads(tests)
        except ValueError:
            return []
    if isinstance(tests, dict):
        if "test_cases" in tests:
            return parse_tests(tests["test_cases"])
        if "input_output" in tests:
            return parse_tests(tests["input_output"])
        ins, outs = tests.get("inputs"), tests.get("outputs")
        if not (isinstance(ins, list) and isinstance(outs, list) and len(ins) == len(outs)):
            return []
        if tests.get("fn_name"):  # call-based (APPS/TACO): arguments and the return value, as JSON
            fn = str(tests["fn_name"])
            return [
                {
                    "input": json.dumps(i if isinstance(i, list) else [i]),
                    "output": json.dumps(o),
                    "fn_name": fn,
                }
                for i, o in zip(ins, outs, strict=True)
            ]
        return [{"input": _text(i), "output": _text(o)} for i, o in zip(ins, outs, strict=True)]
    if isinstance(tests, list):
        out = []
        for t in tests:
            if isinstance(t, dict) and "input" in t and "output" in t:
                if t.get("type", "stdin_stdout") != "stdin_stdout":
                    continue
                out.append({"input": _text(t["input"]), "output": _text(t["output"])})
        return out
    return []


def _text(x: Any) -> str:
    if isinstance(x, list):
        return "\n".join(map(str, x))
    return str(x)


_INT_TOKEN_RE = re.compile(r"[+-]?\d+")
_DECIMAL_TOKEN_RE = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+(?:\.\d*)?[eE][+-]?\d+)")
ABS_TOL = REL_TOL = 1e-6  # the usual judges' tolerance for real-valued answers


def _close(got: float, want: float) -> bool:
    """Within absolute or relative 1e-6 (like Codeforces' checkers); NaN and infinities never match."""
    if not (math.isfinite(got) and math.isfinite(want)):
        return False
    return abs(got - want) <= max(ABS_TOL, REL_TOL * abs(want))


def same_token(got: str, want: str) -> bool:
    """One output token against the expected one: a decimal expected token (`0.5`, `1e-9`) allows
    an absolute or relative error of 1e-6; anything else, integers included, must be identical
    (so `5000050001` never passes for `5000050000`). `nan`/`inf` never pass as numbers."""
    if got == want:
        return not _is_nonfinite(want)
    if (
        _DECIMAL_TOKEN_RE.fullmatch(want)
        and _DECIMAL_TOKEN_RE.fullmatch(got)
        or (_DECIMAL_TOKEN_RE.fullmatch(want) and _INT_TOKEN_RE.fullmatch(got))
    ):
        return _close(float(got), float(want))
    return False


def _is_nonfinite(token: str) -> bool:
    return token.strip("+-").lower() in ("nan", "inf", "infinity")


def _same_output(got: str, want: str) -> bool:
    """Program output against the expected output, token by token (see `same_token`)."""
    a, b = got.split(), want.split()
    return len(a) == len(b) and all(same_token(x, y) for x, y in zip(a, b, strict=True))


RESULT_MARK = "\n<<distill-call-result>>"
CALL_HARNESS = """{program}


def _distill_call():
    import json as _json
    import sys as _sys

    _args = _json.loads(_sys.stdin.read())
    _fn = globals().get({fn!r})
    if _fn is None and "Solution" in globals():
        _fn = getattr(Solution(), {fn!r})
    _result = _fn(*_args)
    _sys.stdout.write({mark!r} + _json.dumps(_result, default=str))


_distill_call()
"""


def _same_value(got: Any, want: Any) -> bool:
    """A returned JSON value against the expected one: integers (and booleans, strings) exactly,
    a float expected value within 1e-6 absolute or relative, never NaN or infinities."""
    if isinstance(got, bool) or isinstance(want, bool):
        return type(got) is type(want) and got == want
    if isinstance(want, int) and isinstance(got, int | float):
        return got == want if isinstance(got, int) else got.is_integer() and int(got) == want
    if isinstance(want, float) and isinstance(got, int | float):
        return _close(float(got), want)
    if isinstance(got, list) and isinstance(want, list):
        return len(got) == len(want) and all(_same_value(a, b) for a, b in zip(got, want, strict=True))
    if isinstance(got, dict) and isinstance(want, dict):
        return got.keys() == want.keys() and all(_same_value(got[k], want[k]) for k in got)
    return got == want


def _same_return(stdout: str, want_json: str) -> bool:
    """The called function's return value equals the expected one (APPS wraps it in a list)."""
    if RESULT_MARK not in stdout:
        return False
    try:
        got = json.loads(stdout.rsplit(RESULT_MARK, 1)[1])
        want = json.loads(want_json)
    except ValueError:
        return False
    return _same_value(got, want) or (isinstance(want, list) and len(want) == 1 and _same_value(got, want[0]))


def verify_code(content: str, tests: Any, limits: Any = None, max_tests: int = 20) -> Verdict:
    from distill.sandbox import SandboxedProgram, cpp_compiler

    found = extract_program(content)
    if found is None:
        return Verdict("no_answer", None, "no fenced program in the answer")
    language, program = found
    if language not in ("python", "cpp"):
        return Verdict("unverifiable", None, f"only Python and C++ programs are run (got {language})")
    cases = parse_tests(tests)
    if not cases:
        return Verdict("unverifiable", None, "no test cases")
    cases = cases[:max_tests]
    if any(c.get("fn_name") for c in cases) and language != "python":
        return Verdict("unverifiable", None, "call-based tests need a Python program")
    if language == "cpp" and cpp_compiler() is None:
        return Verdict("unverifiable", None, "no C++ compiler (g++ or clang++) on this machine")
    fn = cases[0].get("fn_name")
    source = CALL_HARNESS.format(program=program, fn=fn, mark=RESULT_MARK) if fn else program
    with SandboxedProgram(source, language, limits) as prog:
        if prog.build.status != "ok":
            return Verdict("wrong", None, f"does not compile ({prog.build.stderr.strip()[-160:]})")
        for i, case in enumerate(cases):
            res = prog.run(case["input"])
            if res.status != "ok":
                return Verdict("wrong", None, f"test {i}: {res.status} ({res.stderr.strip()[-160:]})")
            same = (
                _same_return(res.stdout, case["output"]) if fn else _same_output(res.stdout, case["output"])
            )
            if not same:
                return Verdict("wrong", None, f"test {i}: wrong {'return value' if fn else 'output'}")
    return Verdict(
        "correct", None, f"passed {len(cases)} tests ({language}); sandbox: {','.join(res.isolation)}"
    )


# ---------------------------------------------------------------------------- judge


@dataclass
class JudgeConfig:
    base_url: str  # OpenAI-compatible server, e.g. http://localhost:8000/v1
    model: str
    api_key_env: str | None = None
    timeout_s: float = 60.0


JUDGE_PROMPT = (
    "You check whether a response's final answer matches the reference answer.\n\n"
    "Problem:\n{problem}\n\nReference answer:\n{gold}\n\nResponse's final answer section:\n{answer}\n\n"
    "Do they express the same final answer? Reply with exactly one word: YES or NO."
)


def judge(cfg: JudgeConfig, problem: str, gold: str | None, content: str) -> Verdict:
    """Ask an OpenAI-compatible model whether the answer matches the reference."""
    import os

    import httpx

    headers = {}
    if cfg.api_key_env and os.environ.get(cfg.api_key_env):
        headers["Authorization"] = f"Bearer {os.environ[cfg.api_key_env]}"
    body = {
        "model": cfg.model,
        "temperature": 0.0,
        "max_tokens": 4,
        "messages": [
            {
                "role": "user",
                "content": JUDGE_PROMPT.format(problem=problem, gold=gold, answer=(content or "")[-3000:]),
            }
        ],
    }
    try:
        r = httpx.post(
            cfg.base_url.rstrip("/") + "/chat/completions", json=body, headers=headers, timeout=cfg.timeout_s
        )
        r.raise_for_status()
        reply = r.json()["choices"][0]["message"]["content"] or ""
    except (httpx.HTTPError, KeyError, IndexError, ValueError) as e:
        return Verdict("unverifiable", None, f"judge {cfg.model} failed: {e}")
    word = reply.strip().upper()
    if word.startswith("YES"):
        return Verdict("correct", None, f"judge {cfg.model}: YES")
    if word.startswith("NO"):
        return Verdict("wrong", None, f"judge {cfg.model}: NO")
    return Verdict("unverifiable", None, f"judge {cfg.model}: unclear reply {reply[:40]!r}")


# ---------------------------------------------------------------------------- dispatch

# domain -> verifier kind; unknown domains use "none" (nothing to verify)
DOMAIN_VERIFIERS: dict[str, str] = {
    "math": "math",
    "code": "code",
    "multiple_choice": "choice",
    "mcq": "choice",
    "science": "auto",  # a letter gold (GPQA) -> choice, else math
    "general": "none",
    "chat": "none",
}


def verifier_for(domain: str | None, gold: str | None) -> str:
    kind = DOMAIN_VERIFIERS.get((domain or "general").lower(), "none")
    if kind == "auto":
        kind = "choice" if _letter(gold) is not None else "math"
    return kind


def verify(
    content: str,
    reasoning: str = "",
    *,
    domain: str,
    gold: str | None,
    tests: Any = None,
    problem: str = "",
    cache: GoldCache | None = None,
    timeout_s: float = 5.0,
    judge_cfg: JudgeConfig | None = None,
    sandbox_limits: Any = None,
    choices: Any = None,
) -> Verdict:
    """Check a response's final answer against the gold for its domain; never raises for bad input.

    `choices` (multiple choice): the record's options, which fix the valid letters; without them
    the options listed in `problem` do, else A-J.

    A `content` that still holds its reasoning block (`<think>…</think>answer`, or a lone
    `…</think>answer`) is split first with `distill.ingest.split_reasoning`, so a draft box inside
    the block is reasoning, never the answer; a block that never closes leaves no answer
    (`no_answer`).
    """
    from distill.ingest import THOUGHT_MARKERS, split_reasoning  # stdlib only; lazy: no cycle

    if content and any(close in content or open_ in content for open_, close in THOUGHT_MARKERS):
        inner, content, closed = split_reasoning(content)
        if not closed:
            return Verdict("no_answer", None, "the reasoning block never closes (truncated)")
        reasoning = "\n\n".join(r for r in (reasoning, inner) if r)
    kind = verifier_for(domain, gold)
    if kind == "none":
        v = Verdict("unverifiable", None, "domain has no verifier")
        if judge_cfg is not None and gold:
            return judge(judge_cfg, problem, gold, content)
        return v
    if kind == "math":
        v = verify_math(content, reasoning, gold, cache, timeout_s)
    elif kind == "choice":
        v = verify_choice(
            content, reasoning, gold, option_letters(choices, problem), option_texts(choices, problem)
        )
    else:
        v = verify_code(content, tests, sandbox_limits)
    if v.status == "unverifiable" and judge_cfg is not None and gold and kind != "code":
        j = judge(judge_cfg, problem, gold, content)
        j.extracted = v.extracted
        return j
    return v


def verify_record(record: dict[str, Any], **kw: Any) -> Verdict:
    """`verify` on a trace record's fields (content, reasoning, domain, answer, tests, problem)."""
    tests = record.get("tests", record.get("verification_info", record.get("input_output")))
    return verify(
        record.get("content") or "",
        record.get("reasoning") or "",
        domain=record.get("domain") or "general",
        gold=record.get("answer"),
        tests=tests,
        problem=record.get("problem") or "",
        choices=record.get("choices", record.get("options")),
        **kw,
    )
