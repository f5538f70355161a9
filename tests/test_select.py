"""Tests for `distill select`: strategies follow their rule, respect the budget, are seeded, and the
subset is written exactly like the filter's kept/ (so `distill train` takes it)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from distill.errors import UserError
from distill.records import ShardWriter, read_records, shard_paths
from distill.select import (
    SelectConfig,
    histogram,
    kmeans,
    load_prompts,
    load_student_results,
    parse_band,
    run,
)

DOMAINS = {"math": 60, "code": 20, "science": 10}
N_SAMPLES = 32


def _record(pid: str, s: int, domain: str, source: str, length: int, correct: bool, verdict: str) -> dict:
    return {
        "id": f"{pid}:{s}",
        "prompt_id": pid,
        "sample": s,
        "problem": f"Problem {pid} about {domain}: compute something.",
        "answer": "42",
        "domain": domain,
        "source": source,
        "teacher": {"model": "r1"},
        "reasoning": " ".join(["step"] * 5) + f" {pid} sample {s}",
        "content": "The answer is \\boxed{42}.",
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 20, "completion_tokens": length},
        "verdict": verdict,
        "checks": {
            "complete": {"ok": True},
            "length": {"ok": True, "tokens": length},
            "correct": {"ok": correct, "status": "correct" if correct else "wrong"},
            **({"per_prompt": {"ok": False}} if verdict == "per_prompt" else {}),
        },
    }


def make_pool(root: Path, seed: int = 1) -> dict[str, dict]:
    """A filter output: 90 prompts over 3 domains / 2 sources, 32 samples each, varied pass rates.

    Kept: up to 3 correct samples per prompt; the other correct ones are rejected by `per_prompt`
    (they still count as correct); wrong ones are rejected by `correct`. Returns the truth per prompt.
    """
    rng = random.Random(seed)
    truth: dict[str, dict] = {}
    kept, rejected = ShardWriter(root / "kept"), ShardWriter(root / "rejected")
    i = 0
    for domain, n in DOMAINS.items():
        for j in range(n):
            pid = f"{domain}-{j:03d}"
            source = f"{domain}-src{j % 2}"
            n_correct = rng.choice([1, 2, 3, 5, 8, 16, 24, 32])
            lengths = []
            for s in range(N_SAMPLES):
                length = rng.randint(100, 6000)
                correct = s < n_correct
                verdict = ("kept" if s < 3 else "per_prompt") if correct else "correct"
                rec = _record(pid, s, domain, source, length, correct, verdict)
                (kept if verdict == "kept" else rejected).write(rec)
                if verdict == "kept":
                    lengths.append(length)
            truth[pid] = {
                "domain": domain,
                "source": source,
                "teacher": n_correct / N_SAMPLES,
                "kept_lengths": lengths,
                "student": [0.0, 0.25, 0.5, 0.75, 1.0][i % 5],
            }
            i += 1
    kept.close()
    rejected.close()
    (root / "funnel.json").write_text("{}")
    return truth


def make_eval(root: Path, truth: dict[str, dict]) -> Path:
    """A `distill eval` output run on the prompts: 4 samples each with the truth's student rate."""
    with ShardWriter(root / "prompts", prefix="samples-") as w:
        for pid, t in truth.items():
            k = round(t["student"] * 4)
            for s in range(4):
                w.write({"id": f"{pid}:{s}", "problem_id": pid, "sample": s, "correct": s < k, "status": "x"})
    (root / "results.json").write_text("{}")
    return root


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> tuple[Path, dict[str, dict], Path]:
    root = tmp_path_factory.mktemp("pool")
    truth = make_pool(root / "filtered")
    ev = make_eval(root / "eval", truth)
    return root / "filtered", truth, ev


def _selected(out: Path) -> list[dict]:
    return list(read_records(out / "kept"))


def _cfg(pool, out: Path, **kw) -> SelectConfig:
    filtered, _, ev = pool
    kw.setdefault("student_results", str(ev) if kw.get("strategy", "s1") == "s1" else None)
    return SelectConfig(input=str(filtered), output=str(out), **kw)


# ---------------------------------------------------------------------------- signals


def test_teacher_pass_rate_counts_kept_and_rejected(pool):
    filtered, truth, _ = pool
    prompts, known = load_prompts(filtered / "kept", filtered / "rejected")
    assert known
    assert set(prompts) == set(truth)
    for pid, p in prompts.items():
        assert p.samples == N_SAMPLES
        assert p.teacher == pytest.approx(truth[pid]["teacher"])
        assert sorted(n for n, _ in p.traces) == sorted(truth[pid]["kept_lengths"])
    # without rejected/, the pass rate is unknown (not silently 1.0)
    prompts, known = load_prompts(filtered / "kept", None)
    assert not known and all(p.teacher is None for p in prompts.values())


def test_student_results_pass_rate(pool):
    _, truth, ev = pool
    rates = load_student_results(ev)
    assert rates == {pid: t["student"] for pid, t in truth.items()}


def test_parse_band_and_histogram():
    assert parse_band("1/32:3/32") == (1 / 32, 3 / 32)
    assert parse_band("0.1,0.5") == (0.1, 0.5)
    for bad in ("0.5", "a:b", "0.6:0.2", "0:2"):
        with pytest.raises(UserError, match="--band"):
            parse_band(bad)
    h = histogram([0.0, 0.05, 0.1, 1.0], [0.0, 0.1, 1.0])
    assert h == {"0-0.1": 2, "0.1-1": 2}
    assert histogram([5, 50], [0, 10], overflow=True) == {"0-10": 1, ">10": 1}


# ---------------------------------------------------------------------------- strategies


@pytest.mark.parametrize("strategy", ["s1", "limo", "random"])
def test_budget_determinism_and_one_trace_per_prompt(pool, tmp_path, strategy):
    budget = 12
    kw = {"band": "1/32:8/32"} if strategy == "limo" else {}
    a = run(_cfg(pool, tmp_path / "a", strategy=strategy, budget=budget, seed=3, **kw))
    b = run(_cfg(pool, tmp_path / "b", strategy=strategy, budget=budget, seed=3, **kw))
    c = run(_cfg(pool, tmp_path / "c", strategy=strategy, budget=budget, seed=4, **kw))
    ids_a = [r["id"] for r in _selected(tmp_path / "a")]
    assert len(ids_a) == budget == a["selected"]["traces"]
    assert ids_a == [r["id"] for r in _selected(tmp_path / "b")]  # same seed, same subset
    assert set(ids_a) != {r["id"] for r in _selected(tmp_path / "c")}  # another seed, another subset
    assert a["selected"] == b["selected"] and c["budget_filled"]
    pids = [r["prompt_id"] for r in _selected(tmp_path / "a")]
    assert len(set(pids)) == len(pids)  # one trace per prompt by default


def test_limo_never_leaves_the_band(pool, tmp_path):
    _, truth, _ = pool
    lo, hi = 1 / 32, 3 / 32
    in_band = {pid for pid, t in truth.items() if lo <= t["teacher"] <= hi}
    rep = run(_cfg(pool, tmp_path / "limo", strategy="limo", budget=10_000))
    recs = _selected(tmp_path / "limo")
    assert {r["prompt_id"] for r in recs} == in_band  # every in-band prompt, nothing else
    assert all(lo <= r["selection"]["teacher_pass_rate"] <= hi for r in recs)
    assert rep["dropped_by_rule"]["too_easy"] == len(truth) - len(in_band)
    assert not rep["budget_filled"]
    # a small budget takes the hardest first within each group, never outside the band
    run(_cfg(pool, tmp_path / "small", strategy="limo", budget=5, band="2/32:5/32"))
    small = _selected(tmp_path / "small")
    assert len(small) == 5
    assert all(2 / 32 <= truth[r["prompt_id"]]["teacher"] <= 5 / 32 for r in small)


def test_s1_drops_student_solved_balances_domains_and_favours_long(pool, tmp_path):
    _, truth, _ = pool
    rep = run(_cfg(pool, tmp_path / "s1", strategy="s1", budget=24, seed=0))
    recs = _selected(tmp_path / "s1")
    assert len(recs) == 24
    assert all(truth[r["prompt_id"]]["student"] < 0.5 for r in recs)  # never a solved prompt
    assert rep["dropped_by_rule"]["student_solved"] == sum(t["student"] >= 0.5 for t in truth.values())
    # domains drawn uniformly: the 10-prompt science domain (4 unsolved) is not swamped by math
    counts = rep["selected"]["domains"]
    unsolved = {d: sum(1 for t in truth.values() if t["domain"] == d and t["student"] < 0.5) for d in DOMAINS}
    assert counts["science"] == unsolved["science"]  # exhausted before the budget ran out
    assert counts["math"] < 24 * DOMAINS["math"] / sum(DOMAINS.values())
    # within a prompt, the longest kept trace; prompts with long reasoning favoured
    for r in recs:
        assert r["usage"]["completion_tokens"] == max(truth[r["prompt_id"]]["kept_lengths"])
    assert rep["selected"]["length"]["mean"] > rep["eligible"]["length"]["mean"]
    # a stricter threshold drops more
    rep2 = run(_cfg(pool, tmp_path / "s1b", strategy="s1", budget=24, solved_at=0.25))
    assert all(truth[r["prompt_id"]]["student"] < 0.25 for r in _selected(tmp_path / "s1b"))
    assert rep2["dropped_by_rule"]["student_solved"] > rep["dropped_by_rule"]["student_solved"]


def test_s1_without_student_results_keeps_every_prompt(pool, tmp_path):
    rep = run(_cfg(pool, tmp_path / "s1", strategy="s1", budget=10, student_results=None))
    assert rep["dropped_by_rule"] == {"student_solved": 0}
    assert "no --student-results" in rep["rule"]


def test_random_and_per_prompt(pool, tmp_path):
    _, truth, _ = pool
    run(_cfg(pool, tmp_path / "r", strategy="random", budget=7, per_prompt=3, prefer="shortest"))
    recs = _selected(tmp_path / "r")
    assert len(recs) == 7
    by_prompt: dict[str, list[int]] = {}
    for r in recs:
        by_prompt.setdefault(r["prompt_id"], []).append(r["usage"]["completion_tokens"])
    for pid, lens in by_prompt.items():  # the shortest traces of each prompt
        assert sorted(lens) == sorted(truth[pid]["kept_lengths"])[: len(lens)]
    assert len(by_prompt) == 3  # 3 + 3 + 1 (the last prompt cut to the budget)


# ---------------------------------------------------------------------------- output


def test_output_is_a_kept_folder_with_report_and_manifest(pool, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    rep = run(_cfg(pool, out, strategy="s1", budget=9))
    assert [p.name for p in shard_paths(out / "kept")] == ["shard-00000.jsonl"]
    recs = _selected(out)
    table = pq.read_table(out / "kept" / "data.parquet").to_pylist()
    assert [r["id"] for r in table] == [r["id"] for r in recs]
    msgs = table[0]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    assert msgs[1]["content"].startswith("<think>\n") and "\\boxed{42}" in msgs[1]["content"]
    # every earlier field kept, `selection` added
    assert {"verdict", "checks", "reasoning", "content", "selection"} <= set(recs[0])
    assert recs[0]["selection"]["group"]["domain"] == recs[0]["domain"]
    report = json.loads((out / "selection.json").read_text())
    assert report == json.loads(json.dumps(rep))
    assert sum(report["selected"]["domains"].values()) == 9
    assert sum(report["selected"]["length"]["histogram"].values()) == 9
    assert sum(report["selected"]["teacher_pass_rate"]["histogram"].values()) == 9
    assert report["student_results"]["matched_prompts"] == 90
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "select" and manifest["complete"]
    assert manifest["counts"]["selected_traces"] == 9
    # re-run: a no-op; another config: refused; --overwrite: replaced
    mtime = (out / "kept" / "data.parquet").stat().st_mtime_ns
    run(_cfg(pool, out, strategy="s1", budget=9))
    assert (out / "kept" / "data.parquet").stat().st_mtime_ns == mtime
    with pytest.raises(UserError, match="different config"):
        run(_cfg(pool, out, strategy="s1", budget=5))
    run(_cfg(pool, out, strategy="s1", budget=5, overwrite=True))
    assert len(_selected(out)) == 5


def test_input_may_be_the_kept_folder(pool, tmp_path):
    filtered, _, _ = pool
    rep = run(
        SelectConfig(input=str(filtered / "kept"), output=str(tmp_path / "o"), strategy="limo", budget=4)
    )
    assert rep["selected"]["traces"] == 4


# ---------------------------------------------------------------------------- errors (CLI)


def test_cli_select_and_errors(pool, tmp_path, run_cli):
    filtered, truth, ev = pool
    out = tmp_path / "cli"
    proc = run_cli(
        "select", "--input", filtered, "--output", out, "--budget", "6", "--strategy", "s1",
        "--student-results", ev, "--seed", "1", check=True,
    )  # fmt: skip
    assert "6 traces" in proc.stdout
    assert len(_selected(out)) == 6
    # limo without rejected/: one clear line, exit 2, nothing written
    only_kept = tmp_path / "only" / "kept"
    only_kept.mkdir(parents=True)
    (only_kept / "shard-00000.jsonl").write_bytes((filtered / "kept" / "shard-00000.jsonl").read_bytes())
    proc = run_cli("select", "--input", only_kept.parent, "--output", tmp_path / "x", "--strategy", "limo")
    assert proc.returncode == 2
    assert "teacher pass rate" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    for args, needle in [
        (["--strategy", "best"], "--strategy"),
        (["--budget", "0"], "--budget"),
        (["--balance", "domain,colour"], "--balance"),
        (["--balance", "topic"], "--topic-model"),
        (["--student-results", tmp_path / "nope"], "--student-results"),
        (["--strategy", "limo", "--band", "32:1"], "--band"),
        (["--strategy", "limo", "--difficulty", "student"], "--difficulty student needs --student-results"),
        (["--prefer", "long"], "--prefer"),
    ]:
        proc = run_cli("select", "--input", filtered, "--output", tmp_path / "y", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert needle in proc.stderr and "Traceback" not in proc.stderr
    # a malformed input line names its file and line
    bad = tmp_path / "bad"
    (bad / "kept").mkdir(parents=True)
    (bad / "kept" / "shard-00000.jsonl").write_text('{"id": "a:0", "problem": "p", "content": "c"}\n{oops\n')
    proc = run_cli("select", "--input", bad, "--output", tmp_path / "z", "--strategy", "random")
    assert proc.returncode == 2 and "shard-00000.jsonl:2" in proc.stderr


def test_student_results_that_match_nothing_is_an_error(pool, tmp_path):
    other = {"zzz": {"student": 1.0}}
    ev = make_eval(tmp_path / "ev", other)
    with pytest.raises(UserError, match="no problem_id matches"):
        run(_cfg(pool, tmp_path / "o", strategy="s1", budget=5, student_results=str(ev)))


# ---------------------------------------------------------------------------- topics


def test_kmeans_recovers_separated_blobs():
    import numpy as np

    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [10, 10], [-10, 10]], dtype=float)
    x = np.concatenate([c + rng.normal(size=(30, 2)) for c in centers])
    labels = kmeans(x, 3, seed=0)
    for g in range(3):
        assert len(set(labels[g * 30 : (g + 1) * 30])) == 1  # each blob one cluster
    assert len(set(labels)) == 3
    assert (kmeans(x, 3, seed=0) == labels).all()  # seeded


def test_topic_clusters_from_a_local_model(pool, tmp_path, tiny_qwen):
    rep = run(_cfg(pool, tmp_path / "t", strategy="random", budget=8, topic_model=str(tiny_qwen), topics=3))
    assert rep["balance"] == ["domain", "source", "topic"]
    assert sum(rep["pool"]["topics"].values()) == 90
    assert 1 <= len(rep["pool"]["topics"]) <= 3
    recs = _selected(tmp_path / "t")
    assert all(r["selection"]["group"]["topic"].startswith("topic-") for r in recs)
    # s1 balances over topics too
    rep = run(_cfg(pool, tmp_path / "t2", strategy="s1", budget=8, topic_model=str(tiny_qwen), topics=3))
    assert rep["selected"]["traces"] == 8 and "topics" in rep["selected"]


# ---------------------------------------------------------------------------- train


def test_subset_trains_with_distill_train(pool, tmp_path, tiny_qwen):
    train = pytest.importorskip("distill.train")
    out = tmp_path / "sel"
    run(_cfg(pool, out, strategy="s1", budget=6))
    summary = train.run(
        train.TrainConfig(
            student=str(tiny_qwen),
            data=str(out / "kept"),
            output=str(tmp_path / "student"),
            method="full",
            max_steps=2,
            cache_dir=str(tmp_path / "cache"),
        )
    )
    assert summary["steps"] == 2
    assert summary["examples"] + summary.get("dropped_overlength", 0) == 6
    assert (tmp_path / "student" / "train_log.csv").exists()


# ---------------------------------------------------------------------------- student-aware difficulty


@pytest.mark.parametrize("band", [None, "0:0", "1/4:3/4", "0.5:1"])
def test_limo_band_applies_to_the_student_pass_rate(pool, tmp_path, band):
    _, truth, ev = pool
    lo, hi = parse_band(band or "0:1/4")
    out = tmp_path / "limo-student"
    rep = run(_cfg(pool, out, strategy="limo", budget=10_000, student_results=str(ev), band=band))
    assert rep["difficulty"] == "student" and rep["band"] == (band or "0:1/4")
    picked = {r["prompt_id"] for r in _selected(out)}
    # exactly the prompts whose student pass rate is in the band, whatever the teacher's rate
    assert picked == {pid for pid, t in truth.items() if lo <= t["student"] <= hi}
    assert rep["dropped_by_rule"]["too_easy"] == sum(t["student"] > hi for t in truth.values())
    # hardest for the student first
    small = tmp_path / "small"
    run(_cfg(pool, small, strategy="limo", budget=5, student_results=str(ev), band=band, balance=[]))
    ranked = sorted(_selected(small), key=lambda r: r["selection"]["rank"])
    rates = [r["selection"]["student_pass_rate"] for r in ranked]
    assert rates == sorted(rates) and rates[0] == min(
        t["student"] for t in truth.values() if lo <= t["student"]
    )


def test_limo_with_the_teacher_signal_drops_what_the_student_solves(pool, tmp_path):
    _, truth, ev = pool
    out = tmp_path / "limo-teacher"
    rep = run(
        _cfg(pool, out, strategy="limo", budget=10_000, student_results=str(ev), difficulty="teacher",
             band="1/32:8/32")
    )  # fmt: skip
    want = {pid for pid, t in truth.items() if 1 / 32 <= t["teacher"] <= 8 / 32 and t["student"] < 0.5}
    assert {r["prompt_id"] for r in _selected(out)} == want
    assert rep["dropped_by_rule"]["student_solved"] == sum(t["student"] >= 0.5 for t in truth.values())
    # without student results the same band keeps the solved prompts too (the reverse case)
    rep = run(_cfg(pool, tmp_path / "plain", strategy="limo", budget=10_000, band="1/32:8/32"))
    assert rep["selected"]["prompts"] > len(want) and "student_solved" not in rep["dropped_by_rule"]


def test_limo_on_student_results_needs_no_rejected_folder(pool, tmp_path):
    filtered, truth, ev = pool
    only_kept = tmp_path / "only" / "kept"
    only_kept.mkdir(parents=True)
    (only_kept / "shard-00000.jsonl").write_bytes((filtered / "kept" / "shard-00000.jsonl").read_bytes())
    rep = run(SelectConfig(str(only_kept.parent), str(tmp_path / "o"), strategy="limo", budget=100,
                           student_results=str(ev)))  # fmt: skip
    assert rep["teacher_pass_rate_known"] is False
    assert rep["selected"]["prompts"] == sum(t["student"] <= 0.25 for t in truth.values())
    with pytest.raises(UserError, match="teacher pass rate"):  # the teacher signal still needs it
        run(SelectConfig(str(only_kept.parent), str(tmp_path / "p"), strategy="limo", difficulty="teacher",
                         student_results=str(ev)))  # fmt: skip
    with pytest.raises(UserError, match="--difficulty student needs --student-results"):
        run(SelectConfig(str(filtered), str(tmp_path / "q"), strategy="limo", difficulty="student"))
    with pytest.raises(UserError, match="--difficulty"):
        run(SelectConfig(str(filtered), str(tmp_path / "q"), strategy="limo", difficulty="hardest"))


# ---------------------------------------------------------------------------- length-aware


@pytest.mark.parametrize("strategy", ["s1", "limo", "random"])
def test_prefer_shortest_takes_the_shortest_trace_and_short_prompts_first(pool, tmp_path, strategy):
    _, truth, _ = pool
    kw = {"band": "1/32:32/32"} if strategy == "limo" else {}
    long_ = run(_cfg(pool, tmp_path / "long", strategy=strategy, budget=20, prefer="longest", **kw))
    short = run(_cfg(pool, tmp_path / "short", strategy=strategy, budget=20, prefer="shortest", **kw))
    for r in _selected(tmp_path / "short"):
        assert r["usage"]["completion_tokens"] == min(truth[r["prompt_id"]]["kept_lengths"])
    for r in _selected(tmp_path / "long"):
        assert r["usage"]["completion_tokens"] == max(truth[r["prompt_id"]]["kept_lengths"])
    assert short["selected"]["length"]["mean"] < long_["selected"]["length"]["mean"]
    if strategy != "random":  # the prompts themselves are chosen by length too
        assert short["selected"]["length"]["mean"] < short["eligible"]["length"]["mean"]


def test_prefer_mix_alternates_long_and_short(pool, tmp_path):
    _, truth, _ = pool
    run(_cfg(pool, tmp_path / "mix", strategy="random", budget=30, prefer="mix"))
    longest = shortest = 0
    for r in _selected(tmp_path / "mix"):
        lengths = truth[r["prompt_id"]]["kept_lengths"]
        if len(lengths) < 2:
            continue
        n = r["usage"]["completion_tokens"]
        longest += n == max(lengths)
        shortest += n == min(lengths)
        assert n in (max(lengths), min(lengths))
        assert (n == max(lengths)) == (r["selection"]["rank"] % 2 == 0)
    assert longest > 5 and shortest > 5
    # two traces per prompt: its longest and its shortest
    run(_cfg(pool, tmp_path / "mix2", strategy="random", budget=20, prefer="mix", per_prompt=2))
    by_prompt: dict[str, list[int]] = {}
    for r in _selected(tmp_path / "mix2"):
        by_prompt.setdefault(r["prompt_id"], []).append(r["usage"]["completion_tokens"])
    for pid, lens in by_prompt.items():
        if len(lens) == 2:
            assert sorted(lens) == [min(truth[pid]["kept_lengths"]), max(truth[pid]["kept_lengths"])]
