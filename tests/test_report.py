"""distill report renders any run folder (found by manifests) into report.md + PNG charts."""

from __future__ import annotations

import pytest

from distill.errors import UserError
from distill.records import ShardWriter, atomic_write_json, atomic_write_text, write_manifest
from distill.report import ReportConfig, run


def _trace(i: int, tokens: int) -> dict:
    return {"id": f"p{i}:0", "prompt_id": f"p{i}", "sample": 0, "reasoning": "r " * tokens,
            "content": "x", "usage": {"prompt_tokens": 5, "completion_tokens": tokens}}  # fmt: skip


@pytest.fixture()
def run_folder(tmp_path):
    write_manifest(
        tmp_path / "traces", "generate", {}, counts={"samples": 10, "completion_tokens": 500, "cost_usd": 0.5}
    )
    filt = tmp_path / "filtered"
    with ShardWriter(filt / "kept") as w:
        for i in range(6):
            w.write(_trace(i, 20 + i))
    with ShardWriter(filt / "rejected") as w:
        for i in range(6, 10):
            w.write(_trace(i, 80 + i))
    atomic_write_json(
        filt / "funnel.json",
        {"input": 10, "kept": 6, "rejected": 4,
         "checks": [{"name": "format", "dropped": 1, "remaining": 9}, {"name": "correct", "dropped": 3, "remaining": 6}]},
    )  # fmt: skip
    write_manifest(filt, "filter", {})
    for name, losses in {"student-a": [3.0, 2.0, 1.0], "student-b": [3.0, 2.5, 2.2]}.items():
        d = tmp_path / name
        write_manifest(d, "train", {}, counts={"steps": 3})
        atomic_write_text(
            d / "train_log.csv",
            "step,epoch,loss,learning_rate,tokens_per_s\n"
            + "".join(f"{i + 1},0.1,{loss},1e-3,100\n" for i, loss in enumerate(losses)),
        )
    for model, mode_acc in {"student-a": {0.0: 0.9, 0.7: 0.8}, "student-b": {0.0: 0.5, 0.7: 0.3}}.items():
        for temp, acc in mode_acc.items():
            d = tmp_path / "eval" / f"{model}-{temp}"
            write_manifest(d, "eval", {})
            atomic_write_json(
                d / "results.json",
                {"model": f"/x/{model}", "sampling": {"temperature": temp},
                 "benchmarks": {"add": {"pass@1": acc, "cons@1": acc, "n": 1, "problems": 10,
                                        "mean_response_tokens": 40.0, "truncated_share": 0.0}}},
            )  # fmt: skip
    return tmp_path


def test_report_renders_every_stage(run_folder):
    summary = run(ReportConfig(run_dir=str(run_folder)))
    out = run_folder / "report"
    assert set(summary["charts"]) == {
        "funnel-filtered.png",
        "lengths-filtered.png",
        "loss.png",
        "accuracy.png",
    }
    for name in summary["charts"]:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    md = (out / "report.md").read_text()
    assert "| correct | 3 | 6 | 60.0% |" in md and "| **kept** | | **6** | 60.0% |" in md
    assert "| `student-a` | 3 | 3.000 | 1.000 |" in md
    assert "| model | greedy | T=0.7 |" in md
    assert "| student-a | 90.0 | 80.0 |" in md and "| student-b | 50.0 | 30.0 |" in md
    assert "cost_usd: 0.50" in md
    assert summary["accuracy"]["student-a"] == {"greedy": 90.0, "T=0.7": 80.0}


def test_report_errors(tmp_path):
    with pytest.raises(UserError, match="no such run folder"):
        run(ReportConfig(run_dir=str(tmp_path / "nope")))
    with pytest.raises(UserError, match="no stage outputs found"):
        run(ReportConfig(run_dir=str(tmp_path)))
