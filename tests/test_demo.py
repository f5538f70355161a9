"""The demo: its task is right, and `distill demo --quick` runs the whole recipe end to end."""

from __future__ import annotations

import dataclasses
import json
import random
import re
import time

import pytest

from distill.demo_task import Problem, digits_of, gold_trace, make_problems, reasoning
from distill.verify import verify


def test_gold_chain_of_thought_adds_correctly_and_verifies():
    for p in make_problems(300, seed=5):
        lines = reasoning(p).splitlines()
        assert len(lines) == 3
        carry, units = 0, []
        for line, x, y in zip(lines, str(p.a)[::-1], str(p.b)[::-1], strict=True):
            m = re.fullmatch(r"(\d)\+(\d)\+([01])=(\d\d)", line)
            assert m, line
            assert (m[1], m[2], int(m[3])) == (x, y, carry)  # the column's digits and the carry in
            assert int(m[4]) == int(x) + int(y) + carry
            carry, units = int(m[4]) // 10, [m[4][1], *units]
        # the answer is readable off the lines: the last carry, then the units digits from the last line
        assert int(("1" if carry else "") + "".join(units)) == p.a + p.b
        rec = gold_trace(p)
        assert verify(rec["content"], rec["reasoning"], domain="math", gold=p.answer).status == "correct"
    assert reasoning(Problem(983, 969)) == "3+9+0=12\n8+6+1=15\n9+9+1=19"
    assert gold_trace(Problem(983, 969))["content"] == "The answer is \\boxed{1952}."


@pytest.mark.parametrize("digits", [2, 4, 5, 6])
def test_gold_chain_of_thought_for_every_difficulty(digits):
    problems = make_problems(200, seed=digits, digits=(digits,))
    assert {p.digits for p in problems} == {digits} and {digits_of(p.id) for p in problems} == {digits}
    for p in problems:
        lines = reasoning(p).splitlines()
        assert len(lines) == digits  # one line per column: more digits, a longer chain
        carry, units = 0, []
        for line, x, y in zip(lines, str(p.a)[::-1], str(p.b)[::-1], strict=True):
            m = re.fullmatch(r"(\d)\+(\d)\+([01])=(\d\d)", line)
            assert m and (m[1], m[2], int(m[3])) == (x, y, carry) and int(m[4]) == int(x) + int(y) + carry
            carry, units = int(m[4]) // 10, [m[4][1], *units]
        assert int(("1" if carry else "") + "".join(units)) == p.a + p.b
        rec = gold_trace(p)
        assert verify(rec["content"], rec["reasoning"], domain="math", gold=p.answer).status == "correct"
        wrong = dict(rec, content=f"The answer is \\boxed{{{p.a + p.b + 1}}}.")  # the reverse case
        assert verify(wrong["content"], wrong["reasoning"], domain="math", gold=p.answer).status == "wrong"


def _check_lines(p, text):
    """Each line holds the column's two digits (either order), the carry in and their sum."""
    carry, units = 0, []
    lines = text.splitlines()
    assert len(lines) == p.digits
    for line, x, y in zip(lines, str(p.a)[::-1], str(p.b)[::-1], strict=True):
        m = re.fullmatch(r"(\d)\+(\d)\+([01])=(\d\d)", line)
        assert m, line
        assert sorted((m[1], m[2])) == sorted((x, y)) and int(m[3]) == carry
        assert int(m[4]) == int(x) + int(y) + carry
        carry, units = int(m[4]) // 10, [m[4][1], *units]
    assert int(("1" if carry else "") + "".join(units)) == p.a + p.b


@pytest.mark.parametrize("digits", [2, 3, 5, 6])
def test_varied_wording_is_still_a_correct_chain_and_varies(digits):
    rng = random.Random(digits)
    for p in make_problems(100, seed=digits, digits=(digits,)):
        variants = {reasoning(p, rng) for _ in range(200)}
        for text in variants:
            _check_lines(p, text)
        orders = 2 ** sum(
            x != y for x, y in zip(str(p.a), str(p.b), strict=True)
        )  # per column with two digits
        assert len(variants) == orders if digits <= 3 else len(variants) >= min(orders, 16)
        rec = gold_trace(p, rng=rng)
        assert verify(rec["content"], rec["reasoning"], domain="math", gold=p.answer).status == "correct"
    # where both digits of a column are equal, both orders are one text: fewer variants, never a wrong one
    assert {reasoning(Problem(55, 55), rng) for _ in range(20)} == {"5+5+0=10\n5+5+1=11"}
    # without rng the wording is canonical (the digit of a first), the same text each time
    assert {reasoning(Problem(983, 969)) for _ in range(5)} == {"3+9+0=12\n8+6+1=15\n9+9+1=19"}


def test_a_wrong_column_in_a_varied_trace_is_caught_by_the_check():
    rng = random.Random(0)
    text = reasoning(Problem(983, 969), rng).replace("+0=12", "+0=13")  # a wrong column sum
    with pytest.raises(AssertionError):
        _check_lines(Problem(983, 969), text)
    with pytest.raises(AssertionError):  # a digit from another column
        _check_lines(Problem(983, 969), "3+8+0=11\n8+6+1=15\n9+9+1=19")


def test_demo_teacher_data_has_varied_wording(tmp_path):
    from distill import demo

    sizes = dataclasses.replace(demo.QUICK, teacher_sft=200, prompts=20, eval_problems=10, leaked=2)
    demo.prepare(tmp_path, sizes, seed=0)
    rows = [json.loads(line) for line in (tmp_path / "data" / "teacher_sft.jsonl").read_text().splitlines()]
    canonical = sum(
        r["reasoning"] == reasoning(Problem(*map(int, r["prompt_id"].split("-")[1:]))) for r in rows
    )
    assert 0 < canonical < len(rows) // 2  # most traces differ from the canonical wording


def test_mixed_difficulty_draws_every_digit_count():
    problems = make_problems(1000, seed=0, digits=(2, 3, 4, 5))
    counts = {d: sum(p.digits == d for p in problems) for d in (2, 3, 4, 5)}
    assert all(200 <= n <= 300 for n in counts.values()), counts  # uniform over the digit counts
    assert all(len(str(p.a)) == len(str(p.b)) for p in problems)
    assert make_problems(1000, seed=0, digits=(2, 3, 4, 5)) == problems


def test_problems_are_deterministic_distinct_and_exclusive():
    a = make_problems(200, seed=1)
    assert a == make_problems(200, seed=1) and len(set(a)) == 200
    b = make_problems(200, seed=2, exclude=set(a))
    assert not set(a) & set(b)


def test_a_run_folder_is_not_mixed_across_sizes_or_seeds(tmp_path):
    from distill import demo
    from distill.errors import UserError

    demo.prepare(tmp_path, demo.QUICK, seed=0)
    demo.prepare(tmp_path, demo.QUICK, seed=0)  # the same run: a resume, nothing redone
    with pytest.raises(UserError, match="other sizes or another seed"):
        demo.prepare(tmp_path, demo.FULL, seed=0)
    with pytest.raises(UserError, match="other sizes or another seed"):
        demo.prepare(tmp_path, demo.QUICK, seed=1)
    with pytest.raises(UserError, match="other sizes or another seed"):  # another difficulty range
        demo.prepare(tmp_path, dataclasses.replace(demo.QUICK, digits=(3,)), seed=0)
    with pytest.raises(UserError, match="other sizes or another seed"):  # the canonical wording
        demo.prepare(tmp_path, dataclasses.replace(demo.QUICK, varied=False), seed=0)


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path, run_cli):
    out = tmp_path / "demo"
    start = time.monotonic()
    proc = run_cli("demo", "--quick", "--output", out, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # measured 110 s on the idle 2-core machine; 400 s catches a regression without flaking on slow CI
    assert time.monotonic() - start < 400
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

    # seed 0 on one machine: filtered 61% / 50%, unfiltered 30% / 17%, answers only 0% / 0%; the
    # ordering is what the demo claims (the digits move between machines)
    for mode in ("greedy", "sampled"):
        assert acc("student-filtered", mode) > acc("student-unfiltered", mode)
        assert acc("student-unfiltered", mode) >= acc("student-answers-only", mode) + 0.1
    logs = out / "logs"  # the students trained side by side, each one's output in its own log
    assert {p.name for p in logs.iterdir()} >= {"student-filtered.log", "student-unfiltered.log"}
    assert "distill train" in (logs / "student-filtered.log").read_text()
    report = (out / "report" / "report.md").read_text()
    assert "| student on filtered traces |" in report
    for chart in ("accuracy.png", "loss.png", "funnel-filtered.png", "lengths-filtered.png"):
        assert (out / "report" / chart).stat().st_size > 5000
    assert "student on filtered traces" in proc.stdout


@pytest.mark.slow
def test_study_sweeps_the_kept_traces_with_the_student_aware_signal(tmp_path):
    """`distill demo --study`'s sweep on a prepared run folder, shrunk to a few steps."""
    from distill import demo
    from distill.cli import run_command
    from distill.records import ShardWriter

    run = tmp_path / "demo"
    sizes = demo.DemoSizes(teacher_sft=50, teacher_steps=1, prompts=60, samples=2, student_steps=100,
                           eval_problems=8, leaked=0)  # fmt: skip
    demo.prepare(run, sizes, seed=0)
    # a filter output: the teacher right on both, one or none of its samples (gold vs. off-by-one)
    rows = [json.loads(line) for line in (run / "data" / "prompts.jsonl").read_text().splitlines()]
    with ShardWriter(run / "filtered" / "kept") as kept, ShardWriter(run / "filtered" / "rejected") as rej:
        for i, row in enumerate(rows):
            a, b = (int(x) for x in row["id"].split("-")[1:])
            for s in range(2):
                ok = s < i % 3
                rec = gold_trace(Problem(a, b)) | {"id": f"{row['id']}:{s}", "sample": s}
                rec["checks"] = {"correct": {"ok": ok}}
                (kept if ok and s == 0 else rej).write(rec | {"verdict": "kept" if ok and s == 0 else "x"})
    # the answers-only student stands in with the untrained one (it solves nothing)
    demo.train_model(
        run_command,
        run,
        "student-answers-only",
        run / "student-init",
        run / "filtered" / "kept",
        1,
        1e-3,
        0,
        4,
    )
    st = demo.StudySizes(
        budgets=(5, 10),
        strategies=("limo", "s1", "random"),
        seeds=1,
        steps_share=0.02,
        kd_weight=0,
        opd_steps=0,
    )
    result = demo.study(run_command, run, sizes, st, seed=0)
    names = [p["name"] for p in result["points"]]
    assert names[0] == "all-seed0" and "limo-5-seed0" in names and len(names) == 7
    assert all(p["steps"] == 2 for p in result["points"])  # equal steps: 2% of 100
    limo = json.loads((run / "study" / "limo-5-seed0" / "select" / "selection.json").read_text())
    assert limo["difficulty"] == "teacher" and limo["band"] == "1/4:3/4"
    assert limo["selected"]["teacher_pass_rate"]["mean"] == 0.5  # right on one of two samples
    s1 = json.loads((run / "study" / "s1-5-seed0" / "select" / "selection.json").read_text())
    assert s1["student_results"]["matched_prompts"] == 40  # the pool eval of the answers-only student
    assert (run / "study" / "sweep.png").exists()
    # the objectives table starts from the sweep's full-data student, evaluated like the demo's models
    (row,) = result["objectives"]
    assert row["name"] == "all-seed0" and row["steps"] == 2
    greedy = json.loads((run / "eval" / "all-seed0-greedy" / "results.json").read_text())
    assert row["greedy"] == greedy["benchmarks"]["eval"]["pass@1"]
    assert "| SFT on every kept trace (the sweep's all) | 0 | 2 |" in demo.objectives_table(
        result["objectives"]
    )


def test_a_demo_step_runs_in_process_and_a_failing_one_stops_the_demo(tmp_path, capsys):
    """The CLI hands the demo `run_command`; `shown` prints each command, and a failure names it."""
    from distill import demo
    from distill.cli import run_command
    from distill.errors import UserError

    step = demo.shown(run_command)
    step(["--version"])
    assert "$ distill --version" in capsys.readouterr().err
    missing = tmp_path / "no run here"
    with pytest.raises(UserError, match=r"^demo step failed: distill report exited with 2$"):
        step(["report", str(missing)])
    err = capsys.readouterr().err
    assert f"$ distill report '{missing}'" in err and "distill: error:" in err
