"""Verifiers: math forms, multiple choice, code, unparseable gold, judge, worker-process timeouts."""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from distill.verify import (
    GoldCache,
    JudgeConfig,
    VerifyTimeout,
    deadline,
    extract_answer,
    parse_tests,
    same_answer,
    verify,
)


@pytest.mark.parametrize(
    "gold,content",
    [
        ("\\frac12", "So the answer is \\boxed{0.5}."),
        ("0.5", "\\boxed{\\frac{1}{2}}"),
        ("\\text{(B)}", "\\boxed{B}"),
        ("B", "\\boxed{\\text{(B)}}"),
        ("\\{1,2\\}", "\\boxed{\\{2, 1\\}}"),
        ("[1,2)", "\\boxed{[1, 2)}"),
        ("10", "\\boxed{10\\text{ cm}}"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "\\boxed{(3, \\pi/2)}"),
        ("x^2+2x+1", "\\boxed{(x+1)^2}"),
    ],
)
def test_math_equivalent_forms_are_correct(gold, content):
    v = verify(content, "", domain="math", gold=gold)
    assert v.status == "correct", v


@pytest.mark.parametrize(
    "gold,content", [("\\frac12", "\\boxed{0.51}"), ("[1,2)", "\\boxed{(1,2)}"), ("7", "\\boxed{8}")]
)
def test_math_wrong(gold, content):
    assert verify(content, "", domain="math", gold=gold).status == "wrong"


def test_unparseable_gold_is_unverifiable_not_a_pass():
    v = verify("\\boxed{3}", "", domain="math", gold="{\\frac{")
    assert v.status == "unverifiable" and "gold" in v.detail
    assert verify("\\boxed{3}", "", domain="math", gold=None).status == "unverifiable"


def test_no_answer():
    assert verify("I am not sure.", "thinking", domain="math", gold="3").status == "no_answer"


def test_extract_answer_prefers_visible_answer():
    assert extract_answer("final \\boxed{\\frac{1}{2}}", "maybe \\boxed{3}") == "\\frac{1}{2}"
    assert extract_answer("no box", "try \\boxed{3} then \\boxed{4}") == "4"
    assert extract_answer("nothing", "") is None
    assert extract_answer("\\boxed{\\{1, \\{2\\}\\}} and \\fbox{7}") == "7"


def test_gold_parsed_once_per_prompt():
    cache = GoldCache()
    for s in range(4):
        verify(f"\\boxed{{\\sqrt{{{s}}}}}", "", domain="math", gold="\\sqrt{3}", cache=cache)
    assert cache.parses == 1


def test_numeric_fast_path_agrees_with_math_verify():
    from distill.verify import simple_number

    assert simple_number("\\frac12") == simple_number("0.5") == simple_number("1/2")
    assert simple_number("x") is None and simple_number("10\\text{ cm}") is None
    v = verify("\\boxed{\\dfrac{3}{4}}", "", domain="math", gold="0.75")
    assert v.status == "correct" and v.detail == "numeric"
    assert verify("\\boxed{15}", "", domain="math", gold="14").status == "wrong"
    # a decimal side gets the relative 1e-6 tolerance on the fast path too
    assert verify("\\boxed{0.3333333}", "", domain="math", gold="\\frac13").status == "correct"
    assert verify("\\boxed{0.33333}", "", domain="math", gold="\\frac13").status == "wrong"


def test_same_answer():
    assert same_answer("\\frac12", "0.5")
    assert same_answer("\\{1,2\\}", "\\{2,1\\}")
    assert not same_answer("1", "2")
    assert not same_answer(None, "2")


def test_multiple_choice():
    assert verify("\\boxed{C}", "", domain="multiple_choice", gold="C").status == "correct"
    assert verify("The answer is (B).", "", domain="multiple_choice", gold="C").status == "wrong"
    assert verify("Answer: D", "", domain="science", gold="D").status == "correct"  # GPQA-style
    assert verify("no idea", "", domain="multiple_choice", gold="A").status == "no_answer"


def test_none_domain():
    assert verify("hello", "", domain="general", gold=None).status == "unverifiable"


def test_parse_tests_shapes():
    want = [{"input": "1\n", "output": "2\n"}]
    assert parse_tests([{"input": "1\n", "output": "2\n"}]) == want
    assert parse_tests({"inputs": ["1\n"], "outputs": ["2\n"]}) == want
    assert parse_tests(json.dumps({"inputs": ["1\n"], "outputs": ["2\n"]})) == want
    assert parse_tests({"test_cases": [{"input": "1\n", "output": "2\n", "type": "stdin_stdout"}]}) == want
    call = parse_tests({"fn_name": "f", "inputs": [[1, [2, 3]]], "outputs": [[4]]})
    assert call == [{"input": "[1, [2, 3]]", "output": "[4]", "fn_name": "f"}]


def test_call_based_code_verifier():
    """APPS/TACO call-based problems: the function (or Solution method) is called with each input."""
    tests = {"fn_name": "add_all", "inputs": [[1, [2, 3]], [0, []]], "outputs": [[6], [0]]}  # APPS wraps
    func = "```python\ndef add_all(a, xs):\n    return a + sum(xs)\n```"
    assert verify(func, "", domain="code", gold=None, tests=tests).status == "correct"
    method = "```python\nclass Solution:\n    def add_all(self, a, xs):\n        return a + sum(xs)\n```"
    assert verify(method, "", domain="code", gold=None, tests=json.dumps(tests)).status == "correct"
    wrong = "```python\ndef add_all(a, xs):\n    return a\n```"
    v = verify(wrong, "", domain="code", gold=None, tests=tests)
    assert v.status == "wrong" and "test 0: wrong return value" in v.detail
    crash = "```python\ndef add_all(a, xs):\n    raise ValueError('no')\n```"
    assert verify(crash, "", domain="code", gold=None, tests=tests).status == "wrong"
    # unwrapped expected values, floats within tolerance, lists of pairs (tuples come back as lists)
    tests = {"fn_name": "f", "inputs": [[2]], "outputs": [[[1.0000000001, "x"], [2, "y"]]]}
    pairs = "```python\ndef f(n):\n    return [(1.0, 'x'), (n, 'y')]\n```"
    assert verify(pairs, "", domain="code", gold=None, tests=tests).status == "correct"
    # printing the marker-like text does not fake a result
    cheat = "```python\nprint('<<distill-call-result>>[6]')\ndef add_all(a, xs):\n    return -1\n```"
    tests = {"fn_name": "add_all", "inputs": [[1, [2, 3]]], "outputs": [[6]]}
    assert verify(cheat, "", domain="code", gold=None, tests=tests).status == "wrong"


def test_code_verifier():
    prog = "```python\nprint(sum(map(int, input().split())))\n```"
    tests = {"inputs": ["1 2\n", "5 5\n"], "outputs": ["3\n", "10\n"]}
    assert verify(prog, "", domain="code", gold=None, tests=tests).status == "correct"
    bad = "```python\nprint(0)\n```"
    assert verify(bad, "", domain="code", gold=None, tests=tests).status == "wrong"
    assert verify("no code", "", domain="code", gold=None, tests=tests).status == "no_answer"
    assert verify(prog, "", domain="code", gold=None, tests=None).status == "unverifiable"
    rust = "```rust\nfn main() {}\n```"
    assert verify(rust, "", domain="code", gold=None, tests=tests).status == "unverifiable"
    # a tagged program is preferred over untagged blocks (sample input shown after the code)
    answer = "```python\nprint(sum(map(int, input().split())))\n```\nExample:\n```\n1 2\n```"
    assert verify(answer, "", domain="code", gold=None, tests=tests).status == "correct"


@pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("clang++") is None, reason="needs a C++ compiler"
)
def test_cpp_code_verifier():
    tests = {"inputs": ["1 2\n", "40 2\n", "-5 5\n"], "outputs": ["3\n", "42\n", "0\n"]}
    good = "```cpp\n#include <bits/stdc++.h>\nint main() { long long a, b; std::cin >> a >> b; std::cout << a + b; }\n```"
    v = verify(good, "", domain="code", gold=None, tests=tests)
    assert v.status == "correct" and "passed 3 tests (cpp)" in v.detail
    wrong = good.replace("a + b", "a - b")
    assert verify(wrong, "", domain="code", gold=None, tests=tests).detail == "test 0: wrong output"
    broken = "```c++\nint main() { return x; }\n```"
    v = verify(broken, "", domain="code", gold=None, tests=tests)
    assert v.status == "wrong" and "does not compile" in v.detail and "x" in v.detail
    crash = "```cpp\nint main() { int *p = nullptr; return *p; }\n```"
    assert "test 0: crash" in verify(crash, "", domain="code", gold=None, tests=tests).detail
    spin = "```cpp\nint main() { volatile long x = 0; while (true) x++; }\n```"
    assert "test 0: timeout" in verify(spin, "", domain="code", gold=None, tests=tests).detail
    call = {"fn_name": "f", "inputs": [[1]], "outputs": [[1]]}
    assert verify(good, "", domain="code", gold=None, tests=call).status == "unverifiable"


def _slow_in_worker(_: int) -> tuple[bool, float]:
    t = time.monotonic()
    try:
        with deadline(0.3):
            while True:
                pass
    except VerifyTimeout:
        return True, time.monotonic() - t
    return False, 0.0


def test_deadline_works_in_worker_processes():
    with mp.get_context("fork").Pool(2) as pool:
        res = pool.map(_slow_in_worker, range(2))
    assert all(ok and dt < 2 for ok, dt in res)


def test_deadline_off_thread_does_not_crash():
    out = []
    th = threading.Thread(target=lambda: out.append(verify("\\boxed{2}", "", domain="math", gold="2").status))
    th.start()
    th.join()
    assert out == ["correct"]


@pytest.fixture
def judge_server():
    seen = []

    class H(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            text = body["messages"][0]["content"]
            reply = "YES" if "forty-two" in text else "NO"
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_port}/v1", seen
    srv.shutdown()


def test_judge_for_unparseable_answers(judge_server):
    url, seen = judge_server
    cfg = JudgeConfig(url, "judge-model")
    v = verify("It is forty-two.", "", domain="general", gold="42", judge_cfg=cfg, problem="q")
    assert v.status == "correct" and "judge-model" in v.detail
    v = verify("\\boxed{3}", "", domain="math", gold="{\\frac{", judge_cfg=cfg, problem="q")
    assert v.status == "wrong" and v.extracted == "3"
    assert len(seen) == 2 and seen[0]["model"] == "judge-model"
