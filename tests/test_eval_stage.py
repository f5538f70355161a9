"""distill eval end to end on the tiny model with local benchmark files: files, counts, resume."""

from __future__ import annotations

import json

import pytest

from distill.errors import UserError
from distill.evaluate import EvalConfig, _items, run
from distill.records import read_records


def _cfg(tmp_path, model, bench, **kw) -> EvalConfig:
    base = dict(model=str(model), output=str(tmp_path / "eval"), benchmark_files=[str(bench)], num_samples=2,
                max_tokens=8, limit=4, batch_size=16, seed=0)  # fmt: skip
    base.update(kw)
    return EvalConfig(**base)


def test_eval_writes_results_and_samples_and_resumes(tmp_path, tiny_qwen, benchmarks_dir):
    cfg = _cfg(tmp_path, tiny_qwen, benchmarks_dir / "aime24.jsonl", student_card="qwen2.5-math-1.5b")
    summary = run(cfg)
    out = tmp_path / "eval"
    res = json.loads((out / "results.json").read_text())
    assert res == json.loads(json.dumps(summary))
    r = res["benchmarks"]["aime24"]
    assert (r["problems"], r["n"], r["samples"]) == (4, 2, 8)
    assert r["truncated_share"] == 1.0  # 8 tokens from a random model never finish
    assert r["mean_response_tokens"] == 8.0 and r["completion_tokens"] == 64
    assert res["published"]["aime24"] == 28.9
    samples = list(read_records(out / "aime24", prefix="samples-"))
    assert sorted(s["id"] for s in samples) == sorted(
        f"aime24-{i:03d}:{s}" for i in range(4) for s in range(2)
    )
    assert all(s["status"] in ("wrong", "no_answer") and s["correct"] is False for s in samples)
    assert json.loads((out / "manifest.json").read_text())["counts"] == {
        "aime24": {"problems": 4, "samples": 8}
    }

    # resume: drop the last 3 sample lines (a crash), re-run: exactly the missing ones come back
    shard = out / "aime24" / "samples-00000.jsonl"
    lines = shard.read_text().splitlines(keepends=True)
    shard.write_text("".join(lines[:-3]) + lines[-3][:10])  # and a torn line
    run(cfg)
    again = list(read_records(out / "aime24", prefix="samples-"))
    assert sorted(s["id"] for s in again) == sorted(s["id"] for s in samples)
    # a finished run is a no-op; a changed config is refused
    run(cfg)
    assert len(list(read_records(out / "aime24", prefix="samples-"))) == 8
    with pytest.raises(UserError, match="different config"):
        run(_cfg(tmp_path, tiny_qwen, benchmarks_dir / "aime24.jsonl", temperature=1.0))
    # --overwrite with another config starts afresh: no sample of the old run survives
    run(_cfg(tmp_path, tiny_qwen, benchmarks_dir / "aime24.jsonl", temperature=1.0, limit=2, overwrite=True))
    fresh = list(read_records(out / "aime24", prefix="samples-"))
    assert sorted(s["id"] for s in fresh) == sorted(f"aime24-{i:03d}:{s}" for i in range(2) for s in range(2))


def test_greedy_eval_is_deterministic(tmp_path, tiny_qwen):
    bench = tmp_path / "b.jsonl"
    bench.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "problem": f"What is {i}+1?", "answer": str(i + 1)}) + "\n"
            for i in range(3)
        )
    )
    a = run(_cfg(tmp_path, tiny_qwen, bench, temperature=0.0, num_samples=1, output=str(tmp_path / "a")))
    run(_cfg(tmp_path, tiny_qwen, bench, temperature=0.0, num_samples=1, output=str(tmp_path / "b")))
    sa = {s["id"]: s["content"] for s in read_records(tmp_path / "a" / "b", prefix="samples-")}
    sb = {s["id"]: s["content"] for s in read_records(tmp_path / "b" / "b", prefix="samples-")}
    assert sa == sb and a["benchmarks"]["b"]["n"] == 1


def test_multiple_choice_options_are_shuffled_with_the_seed():
    rows = [{"id": f"g{i}", "problem": "Which?", "answer": "right", "domain": "multiple_choice",
             "choices": ["right", "w1", "w2", "w3"]} for i in range(20)]  # fmt: skip
    items = _items(rows, seed=0, limit=None)
    assert items == _items(rows, seed=0, limit=None)
    assert len({i.answer for i in items}) > 1  # the gold is not always A
    for it in items:
        line = next(x for x in it.problem.splitlines() if x.startswith(f"{it.answer})"))
        assert line == f"{it.answer}) right"
    assert [i.answer for i in _items(rows, seed=1, limit=None)] != [i.answer for i in items]


def test_eval_errors(tmp_path, tiny_qwen, run_cli):
    with pytest.raises(UserError, match="no benchmark given"):
        run(EvalConfig(model=str(tiny_qwen), output=str(tmp_path / "e")))
    proc = run_cli(
        "eval",
        "--input",
        tiny_qwen,
        "--benchmark-file",
        tmp_path / "missing.jsonl",
        "--output",
        tmp_path / "e",
    )
    assert proc.returncode == 2 and "benchmark file not found" in proc.stderr.splitlines()[-1]
    proc = run_cli("eval", "--input", tiny_qwen, "--benchmark", "nope", "--output", tmp_path / "e")
    assert proc.returncode == 2 and "unknown benchmark 'nope'" in proc.stderr
