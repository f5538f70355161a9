"""`distill generate` on CPU: transformers backend on the tiny model, resume, shards, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill.errors import UserError
from distill.generate import GenerateConfig, run
from distill.records import read_records
from distill.teachers import SamplingParams, make_backend, split_reasoning

SCHEMA = {
    "id", "prompt_id", "sample", "problem", "answer", "domain", "source", "teacher",
    "reasoning", "content", "finish_reason", "usage", "reasoning_closed",
}  # fmt: skip


def make_prompts(path: Path, n: int) -> Path:
    path.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
            for i in range(n)
        )
    )
    return path


def cfg(model, prompts, out, **kw) -> GenerateConfig:
    base = dict(num_samples=3, temperature=1.0, max_tokens=12, batch_size=16, progress=False)
    base.update(kw)
    return GenerateConfig(teacher=str(model), prompts=str(prompts), output=str(out), **base)


def test_split_reasoning():
    assert split_reasoning("<think>a b</think>\n\nans") == ("a b", "ans", True)
    assert split_reasoning("a b</think>ans") == ("a b", "ans", True)  # opening tag was in the template
    assert split_reasoning("<think>still going") == ("still going", "", False)
    assert split_reasoning("plain answer") == ("", "plain answer", False)
    assert split_reasoning("still going", opened=True) == ("still going", "", False)


def test_transformers_counts_ids_schema_resume(tiny_qwen, tmp_path):
    prompts = make_prompts(tmp_path / "p.jsonl", 10)
    out = tmp_path / "traces"
    m = run(cfg(tiny_qwen, prompts, out))
    recs = list(read_records(out))
    assert len(recs) == 30 and len({r["id"] for r in recs}) == 30
    assert {r["id"] for r in recs} == {f"q{i}:{s}" for i in range(10) for s in range(3)}
    for r in recs:
        assert set(r) == SCHEMA
        assert r["problem"].startswith("What is") and r["problem"].endswith("\\boxed{}.")  # R1 math template
        assert r["teacher"]["backend"] == "transformers" and r["teacher"]["temperature"] == 1.0
        assert 1 <= r["usage"]["completion_tokens"] <= 12 and r["usage"]["prompt_tokens"] > 5
        assert r["finish_reason"] in ("stop", "length")
        if r["finish_reason"] == "length":
            assert r["usage"]["completion_tokens"] == 12
        else:  # stopped at eos, which is counted
            assert r["usage"]["completion_tokens"] <= 12
    c = m["counts"]
    assert (c["prompts"], c["samples"], c["failed"]) == (10, 30, 0)
    assert c["completion_tokens"] == sum(r["usage"]["completion_tokens"] for r in recs)
    assert c["prompt_tokens"] == sum(r["usage"]["prompt_tokens"] for r in recs)
    assert c["cost_usd"] == 0.0

    # resume: drop some records, tear the last line, raise n -> only the missing ones are produced
    shard = out / "shard-00000.jsonl"
    lines = shard.read_text().splitlines(keepends=True)
    shard.write_text("".join(lines[:20]) + lines[20][:15])
    m2 = run(cfg(tiny_qwen, prompts, out, num_samples=4))
    recs2 = list(read_records(out))
    assert len(recs2) == 40 and len({r["id"] for r in recs2}) == 40
    assert [r for r in recs2[:20]] == recs[:20]  # nothing rewritten
    assert m2["counts"]["samples"] == 40

    # a finished run is a no-op; a changed sampling config is refused
    run(cfg(tiny_qwen, prompts, out, num_samples=4))
    assert len(list(read_records(out))) == 40
    with pytest.raises(UserError, match="different config"):
        run(cfg(tiny_qwen, prompts, out, num_samples=4, temperature=0.5))
    run(cfg(tiny_qwen, prompts, out, num_samples=1, temperature=0.5, overwrite=True))
    assert len(list(read_records(out))) == 10


def test_token_counts_exact_and_deterministic(tiny_qwen):
    be = make_backend("transformers", str(tiny_qwen), batch_size=8)
    msgs = [[{"role": "user", "content": "What is 1 + 1?"}], [{"role": "user", "content": "Hi"}]]
    p = SamplingParams(temperature=1.0, top_p=1.0, max_tokens=16, n=3, seed=5)
    a = dict(be.generate(msgs, p))
    b = dict(be.generate(msgs, p))
    assert a == b  # same seed, same batch layout
    tok = be.tokenizer
    for i, m in enumerate(msgs):
        rendered = tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
        n_prompt = len(tok(rendered, add_special_tokens=False)["input_ids"])
        assert all(c.prompt_tokens == n_prompt for c in a[i])  # padding excluded
    greedy = dict(be.generate(msgs, SamplingParams(temperature=0, max_tokens=16, n=2)))
    assert greedy[0][0] == greedy[0][1]


def test_shards_split_prompts(tiny_qwen, tmp_path):
    prompts = make_prompts(tmp_path / "p.jsonl", 12)
    out = tmp_path / "traces"
    for k in range(3):
        run(cfg(tiny_qwen, prompts, out, num_samples=1, num_shards=3, shard_index=k))
    ids = [r["id"] for r in read_records(out)]
    assert sorted(ids) == sorted(f"q{i}:0" for i in range(12))
    assert all((out / "jobs" / f"{k:05d}-of-00003" / "manifest.json").exists() for k in range(3))


def test_cli_tiny_model_local_file(tiny_qwen, tmp_path, run_cli):
    prompts = make_prompts(tmp_path / "p.jsonl", 6)
    out = tmp_path / "traces"
    proc = run_cli(
        "generate", "--teacher", tiny_qwen, "--prompts", prompts, "--num-samples", "2", "--temperature", "1.0",
        "--max-tokens", "8", "--seed", "1", "--batch-size", "8", "--threads", "1", "--output", out, check=True,
    )  # fmt: skip
    assert len({r["id"] for r in read_records(out)}) == 12
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["samples"] == 12 and "wrote 12 traces" in proc.stderr


@pytest.mark.parametrize("case", ["missing_file", "missing_column", "empty", "bad_teacher"])
def test_cli_bad_input(case, tiny_qwen, tmp_path, run_cli):
    prompts = make_prompts(tmp_path / "p.jsonl", 3)
    args = {"teacher": str(tiny_qwen), "prompts": str(prompts)}
    extra: list[str] = []
    if case == "missing_file":
        args["prompts"] = str(tmp_path / "nope.jsonl")
    elif case == "missing_column":
        extra = ["--problem-column", "question"]
    elif case == "empty":
        (tmp_path / "e.jsonl").write_text("")
        args["prompts"] = str(tmp_path / "e.jsonl")
    else:
        args["teacher"] = str(tmp_path / "no-such-teacher.yaml")
    out = tmp_path / "traces"
    proc = run_cli(
        "generate", "--teacher", args["teacher"], "--prompts", args["prompts"], "--output", out, *extra
    )
    assert proc.returncode == 2
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("distill: error:"), proc.stderr
    expected = {"missing_file": "no such file", "missing_column": "columns are: answer, id, problem",
                "empty": "empty dataset", "bad_teacher": "card not found"}[case]  # fmt: skip
    assert expected in err[0]
    assert not out.exists()


def test_sigkill_then_resume(tiny_qwen, tmp_path):
    """A run killed with SIGKILL mid-way, then re-run: exactly prompts × n unique ids."""
    prompts = make_prompts(tmp_path / "p.jsonl", 120)
    out = tmp_path / "traces"
    args = [sys.executable, "-m", "distill", "generate", "--teacher", str(tiny_qwen), "--prompts", str(prompts),
            "--num-samples", "3", "--max-tokens", "24", "--temperature", "1.0", "--batch-size", "3",
            "--output", str(out), "--no-progress", "--threads", "1"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shard = out / "shard-00000.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not shard.exists() or shard.read_text().count("\n") < 30):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = shard.read_text().count("\n")
    assert 30 <= done_before < 360, "the run was not killed mid-way"
    with open(shard, "a") as f:  # a torn write, as a kill during write() would leave
        f.write('{"id": "q999:0", "prompt_id": "q9')
    rerun = [a if a != "3" or args[k - 1] != "--batch-size" else "60" for k, a in enumerate(args)]
    subprocess.run(rerun, env=env, check=True, capture_output=True)
    ids = [r["id"] for r in read_records(out)]
    assert len(ids) == 360 and len(set(ids)) == 360
    assert set(ids) == {f"q{i}:{s}" for i in range(120) for s in range(3)}
