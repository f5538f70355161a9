"""pass@1, cons@n and truncation share on hand-made sample sets with known answers."""

from __future__ import annotations

import pytest

from distill.evaluate import cons_at_n, majority_correct, pass_at_1, summarize


def test_pass_at_1_is_mean_over_problems_of_mean_over_samples():
    # problem A: 3/4 correct, problem B: 0/4, problem C: 4/4  -> (0.75 + 0 + 1) / 3
    correct = [[True, True, False, True], [False] * 4, [True] * 4]
    assert pass_at_1(correct) == pytest.approx(1.75 / 3)
    assert pass_at_1([]) == 0.0


def test_majority_vote():
    # majority answer "5" is wrong although one sample is right
    assert majority_correct(["5", "5", "7", None], [False, False, True, False]) is False
    # majority right; missing answers don't vote
    assert majority_correct([None, None, "7", "7", "5"], [False, False, True, True, False]) is True
    # tie goes to the answer seen first
    assert majority_correct(["7", "5"], [True, False]) is True
    assert majority_correct(["5", "7"], [False, True]) is False
    assert majority_correct([None, None], [False, False]) is False
    # equivalence function groups different spellings of one answer
    same = lambda a, b: a.replace(" ", "") == b.replace(" ", "")  # noqa: E731
    assert majority_correct(["1/2", "1 / 2", "3"], [True, True, False], same) is True
    assert cons_at_n([["5", "5", "7"], ["1", "2", "2"]], [[False, False, True], [False, True, True]]) == 0.5


def test_summarize_counts_truncation_and_tokens():
    samples = []
    for pid, outcomes in {"a": [True, False], "b": [True, True]}.items():
        for s, ok in enumerate(outcomes):
            samples.append(
                {
                    "problem_id": pid,
                    "sample": s,
                    "correct": ok,
                    "status": "correct" if ok else "wrong",
                    "extracted": "1" if ok else "2",
                    "finish_reason": "length" if (pid, s) == ("a", 1) else "stop",
                    "completion_tokens": 10 * (s + 1),
                }
            )
    r = summarize(samples)
    assert r["pass@1"] == pytest.approx(0.75)
    assert r["cons@2"] == pytest.approx(1.0)  # a: tie -> first ("1", correct); b: "1"
    assert r["n"] == 2 and r["problems"] == 2 and r["samples"] == 4 and r["correct_samples"] == 3
    assert r["truncated_share"] == pytest.approx(0.25)
    assert r["mean_response_tokens"] == pytest.approx(15.0)
