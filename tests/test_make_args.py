"""`make pipeline`: a stage's arguments are part of its target, so changed *_ARGS re-run that
stage and the ones after it, and unchanged ones leave the pipeline up to date (`make -q`, `make -n`:
nothing is run)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("traces", "filtered", "student", "eval")


def make(out: Path, *args: str, dry: str = "-q") -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-C", str(ROOT), dry, "pipeline", f"OUT={out}", "DISTILL=distill", *args],
        capture_output=True,
        text=True,
    )


def finish_all(out: Path) -> None:
    """Pretend every stage finished after its arguments were recorded (newer manifests, in order)."""
    import time

    now = time.time()
    for stamp in (out / ".args").iterdir():
        os.utime(stamp, (now - 100, now - 100))
    for k, stage in enumerate(STAGES, 1):
        (out / stage).mkdir(parents=True, exist_ok=True)
        manifest = out / stage / "manifest.json"
        manifest.write_text("{}")
        os.utime(manifest, (now - 50 + k, now - 50 + k))


def stages_to_run(out: Path, *args: str) -> list[str]:
    p = make(out, *args, dry="-n")
    return [s for s in ("generate", "filter", "train", "eval") if f"distill {s} " in p.stdout]


def test_changed_stage_arguments_rerun_that_stage_and_later_ones(tmp_path):
    out = tmp_path / "run"
    base = ["TRAIN_ARGS=--max-steps 2", "FILTER_ARGS=--workers 1"]
    assert make(out, *base).returncode == 1  # nothing done yet
    finish_all(out)
    assert make(out, *base).returncode == 0  # the same arguments: up to date
    assert stages_to_run(out, *base) == []
    current = dict(a.split("=", 1) for a in base)
    cases = [  # each changes one variable of the previous arguments
        ("TRAIN_ARGS", "--max-steps 3", ["train", "eval"]),
        ("FILTER_ARGS", "--workers 2", ["filter", "train", "eval"]),
        ("EVAL_ARGS", "--benchmark aime24", ["eval"]),
        ("STUDENT", "qwen2.5-math-7b", ["train", "eval"]),
        ("NUM_SAMPLES", "8", ["generate", "filter", "train", "eval"]),
        ("GENERATE_ARGS", "--temperature 0.7", ["generate", "filter", "train", "eval"]),
    ]
    for name, value, expected in cases:
        finish_all(out)  # up to date with the previous arguments
        current[name] = value
        args = [f"{k}={v}" for k, v in current.items()]
        assert stages_to_run(out, *args) == expected, args
        assert make(out, *args).returncode == 1
        finish_all(out)
        assert make(out, *args).returncode == 0  # and once run, up to date again
