"""The filter stage end to end: funnel arithmetic, outputs, resume, idempotence, bad lines, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill import filter as stage
from distill.errors import UserError
from distill.filter import FilterConfig, run
from distill.records import read_records


def make_traces(folder: Path, n_prompts: int = 12, samples: int = 4) -> list[dict]:
    """Hand-made trace records with a known mix of failures."""
    recs = []
    for p in range(n_prompts):
        gold = str(p + 2)
        for s in range(samples):
            r = {
                "id": f"p{p}:{s}",
                "prompt_id": f"p{p}",
                "sample": s,
                "problem": f"Compute {p} plus two, problem number {p}.",
                "answer": gold,
                "domain": "math",
                "source": "unit",
                "teacher": {"model": "t"},
                "reasoning": f"We add {p} and 2." + " More thought." * s,
                "content": f"The answer is \\boxed{{{gold}}}.",
                "finish_reason": "stop",
                "reasoning_closed": True,
                "usage": {"prompt_tokens": 5, "completion_tokens": 10},
            }
            if s == 3 and p % 3 == 0:
                r["content"] = "\\boxed{999}"  # wrong
            if s == 2 and p % 4 == 0:
                r["finish_reason"] = "length"  # incomplete
            if s == 1 and p % 5 == 0:
                r["reasoning"] = recs[-1]["reasoning"]  # duplicate of sample 0
            recs.append(r)
    folder.mkdir(parents=True, exist_ok=True)
    half = len(recs) // 2
    for i, chunk in enumerate((recs[:half], recs[half:])):
        with open(folder / f"shard-{i:05d}.jsonl", "w") as f:
            for r in chunk:
                f.write(json.dumps(r) + "\n")
    return recs


def cfg(tmp_path: Path, **kw) -> FilterConfig:
    return FilterConfig(input=str(tmp_path / "in"), output=str(tmp_path / "out"), workers=1, **kw)


def test_funnel_adds_up(tmp_path):
    recs = make_traces(tmp_path / "in")
    funnel = run(cfg(tmp_path, max_per_prompt=2))
    out = tmp_path / "out"
    kept = list(read_records(out / "kept"))
    rejected = list(read_records(out / "rejected"))
    assert funnel["input"] == len(recs) == len(kept) + len(rejected)
    assert funnel["kept"] == len(kept) and funnel["rejected"] == len(rejected)
    names = [c["name"] for c in funnel["checks"]]
    assert names == ["complete", "format", "language", "readability", "correct", "duplicate", "per_prompt"]
    assert sum(c["dropped"] for c in funnel["checks"]) == len(rejected)
    assert funnel["checks"][-1]["remaining"] == len(kept)
    by = {c["name"]: c["dropped"] for c in funnel["checks"]}
    assert by["complete"] == 3 and by["correct"] == 4 and by["duplicate"] == 3
    # every kept record passed everything; every rejected one names its first failing check
    assert all(r["verdict"] == "kept" and all(c["ok"] for c in r["checks"].values()) for r in kept)
    assert all(r["checks"][r["verdict"]]["ok"] is False for r in rejected)
    # at most 2 per prompt, the shortest ones
    per = {}
    for r in kept:
        per.setdefault(r["prompt_id"], []).append(r["sample"])
    assert max(len(v) for v in per.values()) == 2
    assert per["p1"] == [0, 1]
    # the input order is kept
    ids = [r["id"] for r in recs]
    assert [r["id"] for r in kept] == [i for i in ids if i in {k["id"] for k in kept}]
    # funnel.json on disk, parquet with messages
    assert json.loads((out / "funnel.json").read_text()) == funnel
    import pyarrow.parquet as pq

    table = pq.read_table(out / "kept" / "data.parquet")
    assert table.num_rows == len(kept)
    assert set(table.column_names) >= {"messages", "id", "prompt_id", "domain", "source"}
    msgs = table.column("messages")[0].as_py()
    assert msgs[0]["role"] == "user" and msgs[1]["content"].startswith("<think>\n")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["counts"]["kept"] == len(kept)


def test_parallel_matches_serial(tmp_path):
    make_traces(tmp_path / "in", n_prompts=40)
    a = run(cfg(tmp_path, max_per_prompt=3))
    kept_a = [r["id"] for r in read_records(tmp_path / "out" / "kept")]
    b = run(
        FilterConfig(str(tmp_path / "in"), str(tmp_path / "out2"), max_per_prompt=3, workers=2, batch_size=7)
    )
    kept_b = [r["id"] for r in read_records(tmp_path / "out2" / "kept")]
    assert a == b and kept_a == kept_b


def test_rerun_is_noop_and_config_change_refused(tmp_path, monkeypatch):
    make_traces(tmp_path / "in")
    first = run(cfg(tmp_path))
    mtime = (tmp_path / "out" / "kept" / "shard-00000.jsonl").stat().st_mtime_ns

    def boom(*a, **k):
        raise AssertionError("re-run did work")

    monkeypatch.setattr(stage, "_pass1", boom)
    assert run(cfg(tmp_path)) == first
    assert (tmp_path / "out" / "kept" / "shard-00000.jsonl").stat().st_mtime_ns == mtime
    with pytest.raises(UserError, match="different config"):
        run(cfg(tmp_path, max_per_prompt=1))
    monkeypatch.undo()
    assert run(cfg(tmp_path, max_per_prompt=1, overwrite=True))["kept"] <= 12


def test_resume_after_crash(tmp_path, monkeypatch):
    make_traces(tmp_path / "in", n_prompts=20)
    clean = run(FilterConfig(str(tmp_path / "in"), str(tmp_path / "clean"), workers=1))
    clean_kept = [r["id"] for r in read_records(tmp_path / "clean" / "kept")]

    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(stage, "_pass2", crash)
    with pytest.raises(KeyboardInterrupt):
        run(cfg(tmp_path))
    monkeypatch.undo()
    work = tmp_path / "out" / ".work" / "shard-00000.jsonl"
    lines = work.read_bytes().splitlines(keepends=True)
    work.write_bytes(b"".join(lines[: len(lines) // 2]) + lines[len(lines) // 2][:20])  # torn line
    calls = []
    orig = stage._check_batch
    monkeypatch.setattr(stage, "_check_batch", lambda b: calls.append(len(b)) or orig(b))
    resumed = run(cfg(tmp_path))
    assert sum(calls) == len(lines) - len(lines) // 2  # only the missing part was checked again
    assert resumed == clean
    assert [r["id"] for r in read_records(tmp_path / "out" / "kept")] == clean_kept
    assert not (tmp_path / "out" / ".work").exists()


def test_bad_lines(tmp_path):
    make_traces(tmp_path / "in", n_prompts=3)
    shard = tmp_path / "in" / "shard-00000.jsonl"
    with open(shard, "a") as f:
        f.write('{"id": "broken", \n')
    with pytest.raises(UserError, match=r"shard-00000.jsonl:7: malformed JSON"):
        run(cfg(tmp_path))
    funnel = run(cfg(tmp_path, skip_bad_lines=True))
    assert funnel["bad_lines"] == 1 and funnel["input"] == 12
    assert funnel["kept"] + funnel["rejected"] == 12


def test_checks_switchable(tmp_path):
    make_traces(tmp_path / "in")
    f = run(cfg(tmp_path, checks=["complete", "correct"]))
    assert [c["name"] for c in f["checks"]] == ["complete", "correct"]
    f = run(
        FilterConfig(str(tmp_path / "in"), str(tmp_path / "o2"), workers=1, skip=["correct", "duplicate"])
    )
    assert "correct" not in [c["name"] for c in f["checks"]]
    with pytest.raises(UserError, match="unknown check"):
        run(cfg(tmp_path, checks=["nope"]))
    with pytest.raises(UserError, match="decontaminate"):
        run(cfg(tmp_path, checks=["contamination"]))


def test_near_duplicate_prompts(tmp_path):
    make_traces(tmp_path / "in", n_prompts=4, samples=1)
    base = "A train leaves the station at noon traveling east at sixty miles per hour toward a distant city far away"
    extra = []
    for i, text in enumerate(
        [base, base + " today", "Completely different question about prime numbers and their sums"]
    ):
        extra.append(
            {
                "id": f"n{i}:0",
                "prompt_id": f"n{i}",
                "sample": 0,
                "problem": text,
                "answer": "1",
                "domain": "math",
                "source": "u",
                "teacher": {},
                "reasoning": f"thinking {i}",
                "content": "\\boxed{1}",
                "finish_reason": "stop",
            }
        )
    with open(tmp_path / "in" / "shard-00001.jsonl", "a") as f:
        for r in extra:
            f.write(json.dumps(r) + "\n")
    f = run(cfg(tmp_path, near_dup_threshold=0.7))
    rejected = {r["id"]: r for r in read_records(tmp_path / "out" / "rejected")}
    assert (
        rejected["n1:0"]["verdict"] == "duplicate" and "n0" in rejected["n1:0"]["checks"]["duplicate"]["why"]
    )
    assert "n0:0" not in rejected and "n2:0" not in rejected


def test_cli_with_decontamination(tmp_path, run_cli, benchmarks_dir):
    make_traces(tmp_path / "in", n_prompts=3)
    bench = [json.loads(line) for line in open(benchmarks_dir / "math500.jsonl")]
    leak = {
        "id": "leak:0",
        "prompt_id": "leak",
        "sample": 0,
        "problem": bench[7]["problem"].upper(),
        "answer": bench[7]["answer"],
        "domain": "math",
        "source": "u",
        "teacher": {},
        "reasoning": "I know this one.",
        "content": f"\\boxed{{{bench[7]['answer']}}}",
        "finish_reason": "stop",
    }
    with open(tmp_path / "in" / "shard-00001.jsonl", "a") as f:
        f.write(json.dumps(leak) + "\n")
    proc = run_cli(
        "filter",
        "-i",
        tmp_path / "in",
        "-o",
        tmp_path / "out",
        "--workers",
        "2",
        "--decontaminate-file",
        benchmarks_dir / "math500.jsonl",
        "--checks",
        "format,complete,correct,contamination,duplicate",
    )
    assert proc.returncode == 0, proc.stderr
    assert "funnel" in proc.stderr
    funnel = json.loads((tmp_path / "out" / "funnel.json").read_text())
    by = {c["name"]: c["dropped"] for c in funnel["checks"]}
    assert by["contamination"] == 1
    rej = {r["id"]: r for r in read_records(tmp_path / "out" / "rejected")}
    assert rej["leak:0"]["verdict"] == "contamination"
    # a user error is one line and exit 2
    bad = run_cli("filter", "-i", tmp_path / "missing", "-o", tmp_path / "o2")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "no such file" in bad.stderr
