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


def _eval(folder, model: str, temp: float, acc: float) -> None:
    write_manifest(folder, "eval", {})
    atomic_write_json(
        folder / "results.json",
        {"model": model, "sampling": {"temperature": temp},
         "benchmarks": {"add": {"pass@1": acc, "n": 1, "problems": 10, "mean_response_tokens": 40.0,
                                "truncated_share": 0.0}}},
    )  # fmt: skip


def test_runs_with_same_model_folder_names_stay_apart(tmp_path):
    for run_name, acc in (("a", 0.9), ("b", 0.4)):  # two runs, each with a student-filtered model
        model = tmp_path / run_name / "student-filtered"
        write_manifest(model, "train", {})
        _eval(tmp_path / run_name / "eval-greedy", str(model), 0.0, acc)
    _eval(tmp_path / "a" / "eval-sampled", str(tmp_path / "a" / "student-filtered"), 0.7, 0.8)
    _eval(tmp_path / "x1", "/elsewhere/one/teacher", 0.0, 0.5)  # outside, same name: full paths
    _eval(tmp_path / "x2", "/elsewhere/two/teacher", 0.0, 0.6)
    _eval(tmp_path / "x3", "Qwen/Qwen2.5-Math-1.5B", 0.0, 0.1)  # a Hub id: its name
    summary = run(ReportConfig(run_dir=str(tmp_path)))
    acc = summary["accuracy"]
    assert acc["a/student-filtered"] == {"greedy": 90.0, "T=0.7": 80.0}
    assert acc["b/student-filtered"] == {"greedy": 40.0, "T=0.7": None}  # not evaluated: no value
    assert acc["/elsewhere/one/teacher"]["greedy"] == 50.0 and acc["/elsewhere/two/teacher"]["greedy"] == 60.0
    assert acc["Qwen2.5-Math-1.5B"]["greedy"] == 10.0
    assert summary["accuracy_bars"] == 6  # 5 greedy + 1 sampled: no 0 bars for missing values
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| b/student-filtered | 40.0 | — |" in md


def test_length_histogram_keeps_kept_traces_visible():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from distill.report import draw_lengths

    fig, ax = plt.subplots()
    lengths = {"kept": [100 + i for i in range(30)], "rejected": [4096] * 3000 + [50, 300]}  # a spike
    info = draw_lengths(ax, lengths)
    assert info["order"] == ["rejected", "kept"] and info["log"]  # kept on top; log counts
    kept_patch = [p for p in ax.patches if p.get_label().startswith("kept")][0]
    rejected_patch = [p for p in ax.patches if p.get_label().startswith("rejected")][0]
    assert kept_patch.get_zorder() > rejected_patch.get_zorder() and not kept_patch.get_fill()
    assert ax.get_yscale() == "log"
    plt.close(fig)
    fig, ax = plt.subplots()  # the reverse: comparable parts keep a linear axis
    assert not draw_lengths(ax, {"kept": [10, 20, 30] * 10, "rejected": [40, 50] * 10})["log"]
    plt.close(fig)
