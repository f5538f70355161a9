"""The demo: its task is right, and `distill demo --quick` runs the whole recipe end to end."""

from __future__ import annotations

import json
import re

import pytest

from distill.demo_task import Problem, gold_trace, make_problems, reasoning
from distill.verify import verify


def test_gold_chain_of_thought_adds_correctly_and_verifies():
    for p in make_problems(300, seed=5):
        text = reasoning(p)
        digits = [int(m) for m in re.findall(r"write (\d)", text)]
        carry = re.search(r"Bring down the carry (\d)", text)
        value = sum(d * 10**i for i, d in enumerate(digits)) + (int(carry.group(1)) * 1000 if carry else 0)
        assert value == p.a + p.b
        rec = gold_trace(p)
        assert verify(rec["content"], rec["reasoning"], domain="math", gold=p.answer).status == "correct"
    assert reasoning(Problem(999, 999)).splitlines()[-2:] == [
        "Bring down the carry 1.",
        "So 999 + 999 = 1998.",
    ]


def test_problems_are_deterministic_distinct_and_exclusive():
    a = make_problems(200, seed=1)
    assert a == make_problems(200, seed=1) and len(set(a)) == 200
    b = make_problems(200, seed=2, exclude=set(a))
    assert not set(a) & set(b)


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path, run_cli):
    out = tmp_path / "demo"
    proc = run_cli("demo", "--quick", "--output", out, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    funnel = json.loads((out / "filtered" / "funnel.json").read_text())
    assert funnel["kept"] + funnel["rejected"] == funnel["input"]
    remaining = funnel["input"]
    for check in funnel["checks"]:
        assert check["remaining"] == remaining - check["dropped"]
        remaining = check["remaining"]
    assert remaining == funnel["kept"]
    contamination = next(c for c in funnel["checks"] if c["name"] == "contamination")
    assert contamination["dropped"] > 0  # the planted eval problems

    def acc(name, mode):
        res = json.loads((out / "eval" / f"{name}-{mode}" / "results.json").read_text())
        return res["benchmarks"]["eval"]["pass@1"]

    for mode in ("greedy", "sampled"):
        assert acc("student-filtered", mode) > acc("student-answers-only", mode)
    report = (out / "report" / "report.md").read_text()
    assert "| student on filtered traces |" in report
    for chart in ("accuracy.png", "loss.png", "funnel-filtered.png", "lengths-filtered.png"):
        assert (out / "report" / chart).stat().st_size > 5000
    assert "student on filtered traces" in proc.stdout
