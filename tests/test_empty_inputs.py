"""Empty input to filter, select and train: one line naming the input, non-zero exit, at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.errors import UserError
from distill.filter import FilterConfig
from distill.filter import run as run_filter
from distill.select import SelectConfig
from distill.select import run as run_select
from distill.train import TrainConfig
from distill.train import run as run_train

TRACE = {"id": "p0:0", "prompt_id": "p0", "sample": 0, "problem": "1+1?", "answer": "2", "domain": "math",
         "reasoning": "1+1=2", "content": "\\boxed{2}", "finish_reason": "stop"}  # fmt: skip


def empty_shards(folder: Path, n: int = 1, blank: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        (folder / f"shard-{k:05d}.jsonl").write_text("\n\n" if blank else "")
    return folder


@pytest.mark.parametrize("kind", ["one empty shard", "two blank shards", "an empty .jsonl file"])
def test_filter_refuses_empty_input(tmp_path, kind):
    if kind == "an empty .jsonl file":
        src = tmp_path / "traces.jsonl"
        src.write_text("")
    else:
        src = empty_shards(tmp_path / "traces", 2 if "two" in kind else 1, blank="blank" in kind)
    with pytest.raises(UserError, match=rf"{src}: no traces in this input"):
        run_filter(FilterConfig(input=str(src), output=str(tmp_path / "out")))
    assert not (tmp_path / "out" / "manifest.json").exists()  # the fixed command is not blocked


def test_filter_with_one_trace_runs(tmp_path):  # the reverse case
    src = tmp_path / "traces"
    src.mkdir()
    (src / "shard-00000.jsonl").write_text(json.dumps(TRACE) + "\n")
    funnel = run_filter(FilterConfig(input=str(src), output=str(tmp_path / "out"), workers=1))
    assert funnel["input"] == 1 and funnel["kept"] == 1


def test_select_refuses_a_filter_output_that_kept_nothing(tmp_path):
    filtered = tmp_path / "filtered"
    empty_shards(filtered / "kept")
    (filtered / "rejected").mkdir()
    (filtered / "rejected" / "shard-00000.jsonl").write_text(json.dumps(TRACE) + "\n")
    with pytest.raises(UserError, match=r"filtered/kept: no traces in this input"):
        run_select(SelectConfig(input=str(filtered), output=str(tmp_path / "sel"), budget=4))


@pytest.mark.parametrize("data", ["kept", "kept.jsonl"])
def test_train_refuses_empty_data_before_loading_anything(tmp_path, data, run_cli):
    path = tmp_path / data
    if data == "kept":
        empty_shards(path, blank=True)
    else:
        path.write_text("")
    cfg = TrainConfig(student="org/not-loaded", data=str(path), output=str(tmp_path / "student"))
    with pytest.raises(UserError, match=rf"--input {path}: no training examples"):
        run_train(cfg)
    proc = run_cli("train", "--student", "org/not-loaded", "--input", path, "--output", tmp_path / "s2")
    assert proc.returncode == 2 and "no training examples" in proc.stderr and "Traceback" not in proc.stderr
