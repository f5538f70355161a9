"""Answer checkers by domain: math (math-verify), multiple choice, code (sandboxed tests), judge, none.

    from distill.verify import verify, extract_answer, same_answer, GoldCache
    cache = GoldCache()                                   # parse each gold answer once
    v = verify(content, reasoning, domain="math", gold="\\frac12", cache=cache)
    v.status    # "correct" | "wrong" | "unverifiable" | "no_answer"
    v.extracted, v.detail

- math: the final answer is the last `\\boxed{}` of the visible answer (else of the whole text);
  without one, math-verify looks for an answer in the visible text. Gold and prediction are
  compared with math-verify (`\\frac12` = 0.5, sets, intervals, units, `\\text{(B)}` = B ...).
  A gold math-verify cannot parse gives `unverifiable`, never a silent pass.
- multiple_choice: the chosen letter (boxed, "answer is (X)", "Answer: X") against the gold letter.
- code: the last fenced program of the answer runs on the record's stdin/stdout tests in
  `distill.sandbox` (resource limits, no network, private temp dir, scrubbed env).
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


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`, `\\boxed 5`) in `text`, braces matched."""
    if not text:
        return None
    for m in reversed(list(_BOX_RE.finditer(text))):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                c = text[j]
                if c == "{" and text[j - 1] != "\\":
                    depth += 1
                elif c == "}" and text[j - 1] != "\\":
                    depth -= 1
                    if depth == 0:
                        return text[i + 1 : j].strip()
            continue  # unbalanced: try an earlier box
        tail = re.match(r"([^\s$]+)", text[i:])
        if tail:
            return tail.group(1)
    return None


def extract_answer(content: str, reasoning: str = "") -> str | None:
    """The last `\\boxed{}` of the visible answer, else of the whole text, else None."""
    ans = last_boxed(content or "")
    if ans is None and reasoning:
        ans = last_boxed(f"{reasoning}\n{content or ''}")
    return ans


def _norm(s: str) -> str:
    s = re.sub(r"\\(?:left|right|displaystyle|!|,|;|:)", "", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return re.sub(r"\s+", "", s).rstrip(".").strip("$")


# ---------------------------------------------------------------------------- math

_NUM_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_FRAC_RE = re.compile(r"([+-]?)\\frac(?:\{([+-]?\d+)\}|(\d))(?:\{(\d+)\}|(\d))")
_SLASH_RE = re.compile(r"([+-]?\d+)/(\d+)")


def simple_number(s: str) -> Fraction | None:
    """An exact value for plain integers, decimals and fractions (`\\frac12`, `3/4`), else None.

    The fast path of `verify_math`: most gold answers are plain numbers, and comparing two of
    them needs no LaTeX parser. Anything else (units, symbols, sets ...) returns None.
    """
    t = _norm(s).replace("{,}", "").replace("\\!", "")
    if _NUM_RE.fullmatch(t):
        return Fraction(t)
    m = _FRAC_RE.fullmatch(t)
    if m:
        sign, a1, a2, b1, b2 = m.groups()
        num, den = int(a1 or a2), int(b1 or b2)
        return None if den == 0 else Fraction(-num if sign == "-" else num, den)
    m = _SLASH_RE.fullmatch(t)
    if m and int(m.group(2)) != 0:
        return Fraction(int(m.group(1)), int(m.group(2)))
    return None


def _fast_compare(gold: str, pred: str) -> bool | None:
    """True/False when both sides are simple numbers and the answer is certain, else None."""
    g, p = simple_number(gold), simple_number(pred)
    if g is None or p is None:
        return None
    if g == p:
        return True
    # math-verify rounds floats to 6 places: a long decimal may still match a fraction
    if any("." in x and len(x.split(".")[-1]) >= 5 for x in (_norm(gold), _norm(pred))):
        return None
    return False


@dataclass
class ParsedGold:
    raw: str
    parsed: list[Any]
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def _mv_parse(latex: str, timeout_s: float | None) -> list[Any]:
    from math_verify import parse

    with deadline(timeout_s):
        return parse(f"\\boxed{{{latex}}}", parsing_timeout=None)  # type: ignore[arg-type]


def _has_math(parsed: list[Any]) -> bool:
    from sympy import Basic, MatrixBase

    return any(isinstance(p, (Basic, MatrixBase)) for p in parsed)


def parse_gold(gold: str | None, timeout_s: float | None = 5.0) -> ParsedGold:
    """Parse a gold answer once; `error` is set when math-verify cannot read it."""
    if gold is None or not str(gold).strip():
        return ParsedGold("", [], "no gold answer")
    raw = str(gold).strip()
    inner = last_boxed(raw) or raw.strip("$")
    try:
        parsed = _mv_parse(inner, timeout_s)
    except VerifyTimeout:
        return ParsedGold(raw, [], f"gold parse timed out after {timeout_s}s")
    if not _has_math(parsed):
        return ParsedGold(raw, parsed, f"gold answer not parseable: {raw[:80]!r}")
    return ParsedGold(raw, parsed)


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


def verify_math(
    content: str, reasoning: str, gold: str | None, cache: GoldCache | None = None, timeout_s: float = 5.0
) -> Verdict:
    from math_verify import parse
    from math_verify import verify as mv_verify

    cache = cache or GoldCache(timeout_s=timeout_s)
    extracted = extract_answer(content, reasoning)
    if extracted is None:
        # no box: let math-verify look for "final answer is ..." etc. in the visible answer
        try:
            with deadline(timeout_s):
                pred = parse((content or "")[-2000:], parsing_timeout=None)  # type: ignore[arg-type]
        except VerifyTimeout:
            return Verdict("no_answer", None, f"answer parse timed out after {timeout_s}s")
        if not _has_math(pred):
            return Verdict("no_answer", None, "no \\boxed{} answer and no parseable final answer")
        extracted = str(pred[-1]) if isinstance(pred[-1], str) else str(pred[-1])
    else:
        pred = None
    gold_text = "" if gold is None else (last_boxed(str(gold).strip()) or str(gold).strip().strip("$"))
    if gold_text:
        fast = _fast_compare(gold_text, extracted)
        if fast is not None:  # both plain numbers: no LaTeX parser needed
            return Verdict("correct" if fast else "wrong", extracted, "numeric")
    pg = cache.gold(gold)
    if not pg.ok:
        return Verdict("unverifiable", extracted, pg.error)
    key_gold = pg.raw
    hit = cache.pred_get(key_gold, extracted)
    if hit is not None:
        return hit
    if _norm(extracted) == _norm(gold_text):
        v = Verdict("correct", extracted, "exact match")
        cache.pred_put(key_gold, extracted, v)
        return v
    try:
        if pred is None:
            pred = _mv_parse(extracted, timeout_s)
        if not pred:
            v = Verdict("wrong", extracted, "answer not parseable")
        else:
            with deadline(timeout_s):
                same = mv_verify(pg.parsed, pred, timeout_seconds=None)
            v = Verdict("correct" if same else "wrong", extracted, "math-verify")
    except VerifyTimeout:
        v = Verdict("unverifiable", extracted, f"math-verify timed out after {timeout_s}s")
    cache.pred_put(key_gold, extracted, v)
    return v


def same_answer(a: str | None, b: str | None, timeout_s: float = 5.0) -> bool:
    """Whether two extracted answers are math-verify equivalent (for cons@n clustering)."""
    if a is None or b is None:
        return False
    if _norm(a) == _norm(b):
        return True
    from math_verify import verify as mv_verify

    try:
        pa, pb = _mv_parse(a, timeout_s), _mv_parse(b, timeout_s)
        if not pa or not pb:
            return False
        with deadline(timeout_s):
            return bool(mv_verify(pa, pb, timeout_seconds=None))
    except VerifyTimeout:
        return False


# ---------------------------------------------------------------------------- multiple choice

_LETTER = "ABCDEFGHIJ"
_MC_PATTERNS = [
    re.compile(r"answer\s*(?:is|:)?\s*[:\-]?\s*\(?\**\s*\(?([A-J])\)?\b", re.IGNORECASE),
    re.compile(r"\(([A-J])\)"),
]


def _letter(text: str | None) -> str | None:
    if text is None:
        return None
    t = re.sub(r"\\text(?:bf)?\{([^{}]*)\}", r"\1", str(text)).strip().strip("$").strip()
    t = t.strip("().*: ").strip()
    if len(t) == 1 and t.upper() in _LETTER:
        return t.upper()
    m = re.match(r"^([A-J])[\).:\s]", t + " ")
    return m.group(1) if m else None


def verify_choice(content: str, reasoning: str, gold: str | None) -> Verdict:
    gold_letter = _letter(gold)
    if gold_letter is None:
        return Verdict("unverifiable", None, f"gold is not a choice letter: {str(gold)[:40]!r}")
    boxed = extract_answer(content, reasoning)
    letter = _letter(boxed)
    if letter is None:
        for pat in _MC_PATTERNS:
            found = pat.findall(content or "")
            if found:
                letter = found[-1].upper()
                break
    if letter is None:
        return Verdict("no_answer", boxed, "no choice letter found")
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


def _same_output(got: str, want: str) -> bool:
    a, b = got.split(), want.split()
    if a == b:
        return True
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        try:
            if abs(float(x) - float(y)) > 1e-6 * max(1.0, abs(float(y))):
                return False
        except ValueError:
            return False
    return True


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
    if isinstance(got, bool) or isinstance(want, bool):
        return got == want
    if isinstance(got, int | float) and isinstance(want, int | float):
        return abs(got - want) <= 1e-6 * max(1.0, abs(want))
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
) -> Verdict:
    """Check a response's final answer against the gold for its domain; never raises for bad input."""
    kind = verifier_for(domain, gold)
    if kind == "none":
        v = Verdict("unverifiable", None, "domain has no verifier")
        if judge_cfg is not None and gold:
            return judge(judge_cfg, problem, gold, content)
        return v
    if kind == "math":
        v = verify_math(content, reasoning, gold, cache, timeout_s)
    elif kind == "choice":
        v = verify_choice(content, reasoning, gold)
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
        **kw,
    )
