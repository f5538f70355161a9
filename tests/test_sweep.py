"""Tests for `distill sweep`: select → train → eval per point on a tiny model, resumable, with the
numbers in sweep.json taken from each point's eval, a chart, and clear errors for bad options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.errors import UserError
from distill.options import parse_override
from distill.sweep import SweepConfig, parse_budgets, run
from tests.test_select import make_eval, make_pool


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> tuple[Path, dict, Path, Path]:
    root = tmp_path_factory.mktemp("sweep-pool")
    truth = make_pool(root / "filtered")
    ev = make_eval(root / "student-eval", truth)
    bench = root / "bench.jsonl"
    bench.write_text("".join(json.dumps({"id": f"b{i}", "problem": f"What is {i}+{i}?", "answer": str(2 * i)}) + "\n"
                             for i in range(3)))  # fmt: skip
    return root / "filtered", truth, ev, bench


def _cfg(pool, tiny_qwen, out: Path, **kw) -> SweepConfig:
    filtered, _, _, bench = pool
    kw.setdefault("budgets", ["5", "all"])
    kw.setdefault("strategies", ["random", "limo"])
    kw.setdefault("steps", 2)
    return SweepConfig(
        data=str(filtered),
        student=str(tiny_qwen),
        output=str(out),
        benchmark_files=[str(bench)],
        select={"band": "1/32:1"},
        train={
            "method": "full",
            "batch_size": 2,
            "grad_accum": 1,
            "max_length": 256,
            "cache_dir": str(out.parent / "cache"),
        },
        eval={"num_samples": 1, "temperature": 0, "max_tokens": 8, "threads": 1},
        **kw,
    )


def test_sweep_end_to_end_resumes_and_reports_the_eval_numbers(pool, tiny_qwen, tmp_path):
    out = tmp_path / "sweep"
    result = run(_cfg(pool, tiny_qwen, out))
    names = [p["name"] for p in result["points"]]
    assert names == ["all-seed0", "random-5-seed0", "limo-5-seed0"]
    for p in result["points"]:
        folder = out / p["name"]
        # each point is an ordinary stage chain: its own select (not for `all`), train and eval folders
        assert (folder / "select" / "selection.json").exists() == (p["budget"] is not None)
        assert json.loads((folder / "train" / "manifest.json").read_text())["status"] == "done"
        res = json.loads((folder / "eval" / "results.json").read_text())
        assert p["pass_at_1"] == {"bench": res["benchmarks"]["bench"]["pass@1"]}  # the eval's own number
        assert p["steps"] == 2  # equal steps
    kept = sum(len(t["kept_lengths"]) for t in pool[1].values())
    assert result["points"][0]["traces"] == kept and result["points"][1]["traces"] == 5
    assert result["compute"].startswith("equal steps: 2 optimizer steps")
    train_data = json.loads((out / "all-seed0" / "train" / "manifest.json").read_text())["config"]["data"]
    assert Path(train_data) == (pool[0] / "kept").resolve()  # the reference trains on every kept trace
    sel = json.loads((out / "limo-5-seed0" / "select" / "selection.json").read_text())
    assert sel["strategy"] == "limo" and sel["band"] == "1/32:1"
    assert json.loads((out / "sweep.json").read_text()) == json.loads(json.dumps(result))
    assert (out / "sweep.png").stat().st_size > 5000
    table = (out / "sweep.md").read_text()
    assert "| random | 5 | 5 | 1 |" in table and "| all | all |" in table
    summary = {(s["strategy"], s["budget"]): s for s in result["summary"]}
    assert summary[("all", None)]["pass_at_1"]["bench"]["mean"] == result["points"][0]["pass_at_1"]["bench"]

    # `distill report` on a folder holding the sweep shows its table and chart, not 9 stage folders
    from distill.report import ReportConfig
    from distill.report import run as report

    rep = report(ReportConfig(run_dir=str(tmp_path)))
    md = Path(rep["report"]).read_text()
    assert "## Accuracy against data budget: `sweep`" in md and "| random | 5 | 5 | 1 |" in md
    assert "sweep-sweep.png" in rep["charts"] and "loss.png" not in rep["charts"]
    assert rep["stages"] == {"sweep": 1}

    # a re-run skips every finished point; a wider sweep runs only its new points
    stamps = {n: (out / n / "point.json").stat().st_mtime_ns for n in names}
    run(_cfg(pool, tiny_qwen, out))
    assert {n: (out / n / "point.json").stat().st_mtime_ns for n in names} == stamps
    wider = run(_cfg(pool, tiny_qwen, out, budgets=["5", "12", "all"], strategies=["random"]))
    assert [p["name"] for p in wider["points"]] == ["all-seed0", "random-5-seed0", "random-12-seed0"]
    assert (out / "random-5-seed0" / "point.json").stat().st_mtime_ns == stamps["random-5-seed0"]
    assert wider["points"][2]["traces"] == 12
    # another training config for the same folder: the stage refuses instead of mixing outputs
    with pytest.raises(UserError, match="different config"):
        run(_cfg(pool, tiny_qwen, out, steps=3, budgets=["5"], strategies=["random"], reference=False))


def test_equal_epochs_gives_small_subsets_fewer_steps(pool, tiny_qwen, tmp_path):
    out = tmp_path / "epochs"
    cfg = _cfg(pool, tiny_qwen, out, budgets=["4", "8"], strategies=["random"], steps=None, equal_epochs=True,
               epochs=1.0, reference=False)  # fmt: skip
    result = run(cfg)
    steps = {p["budget"]: p["steps"] for p in result["points"]}
    assert steps == {4: 2, 8: 4}  # batch 2, one epoch each
    assert all(p["epochs"] == 1.0 for p in result["points"])
    assert result["compute"] == "equal epochs: 1 per point"


def test_options_and_plan(pool, tiny_qwen, tmp_path, run_cli):
    assert parse_budgets(["250", "1_000", "all", "250"]) == ([250, 1000], True)
    assert parse_override("learning_rate=3e-3", "--train") == ("learning_rate", 0.003)
    assert parse_override("band=1/4:3/4", "--select") == ("band", "1/4:3/4")
    assert parse_override('lora-targets=["q_proj"]', "--train") == ("lora_targets", ["q_proj"])
    filtered, _, ev, bench = pool
    base = ["sweep", "--input", filtered, "--student", tiny_qwen, "--output", tmp_path / "x",
            "--benchmark-file", bench]  # fmt: skip
    for args, needle in [
        (["--budgets", "10,lots"], "--budgets"),
        (["--budgets", "0"], "--budgets"),
        (["--strategies", "limo,best"], "--strategies"),
        (["--seeds", "0,a"], "--seeds"),
        (["--train", "lerning_rate=1"], "not an option of distill train"),
        (["--train", "max_steps=5"], "set by the sweep itself"),
        (["--select", "band"], "KEY=VALUE"),
        (["--steps", "5", "--equal-epochs"], "exclude each other"),
    ]:
        proc = run_cli(*base, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert needle in proc.stderr and "Traceback" not in proc.stderr
        assert not (tmp_path / "x").exists()
    # --plan: points, equal steps, tokens and GPU hours; nothing run
    proc = run_cli(*base, "--budgets", "5,20,all", "--strategies", "s1,random", "--seeds", "0,1",
                   "--student-results", ev, "--train", "batch_size=4", "--train", "method=full", "--plan",
                   check=True)  # fmt: skip
    assert "10 points" in proc.stdout and "GPU hours" in proc.stdout
    assert "all-seed1" in proc.stderr and "s1-20-seed0" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_points_side_by_side_give_the_same_records_and_logs(pool, tiny_qwen, tmp_path):
    """--jobs 2: each point in its own process (output, training lines included, in
    logs/<point>.log); the same points, steps and trace counts as one after the other, and each
    point's pass@1 is its own eval file's (not compared across the two runs: one thread against
    several can change float sums)."""
    one = run(_cfg(pool, tiny_qwen, tmp_path / "one", budgets=["5", "all"], strategies=["random"]))
    two = run(_cfg(pool, tiny_qwen, tmp_path / "two", budgets=["5", "all"], strategies=["random"], jobs=2))
    assert [p["name"] for p in two["points"]] == [p["name"] for p in one["points"]]
    for p, q in zip(one["points"], two["points"], strict=True):
        assert (p["steps"], p["traces"]) == (q["steps"], q["traces"])
        res = json.loads((tmp_path / "two" / q["name"] / "eval" / "results.json").read_text())
        assert q["pass_at_1"] == {"bench": res["benchmarks"]["bench"]["pass@1"]}
        log = (tmp_path / "two" / "logs" / f"{q['name']}.log").read_text()
        assert "trained 2 steps" in log  # the stages' INFO lines reach the point's log, not only prints
    assert json.loads((tmp_path / "two" / "sweep.json").read_text())["points"] == two["points"]
    with pytest.raises(UserError, match="--jobs: expected >= 1"):
        run(_cfg(pool, tiny_qwen, tmp_path / "three", jobs=0))


def test_a_missing_input_fails_before_any_point_or_manifest(pool, tiny_qwen, tmp_path):
    import dataclasses

    cfg = dataclasses.replace(_cfg(pool, tiny_qwen, tmp_path / "out", jobs=2), data=str(tmp_path / "nope"))
    with pytest.raises(UserError, match=r"--input .*nope: no such file or folder"):
        run(cfg)
    assert not (tmp_path / "out").exists()  # no manifest, no logs of a run that never started
