"""The report stage: render any run folder into `report.md` plus PNG charts.

    distill report -i runs/demo           # writes runs/demo/report/report.md and *.png
    distill report -i runs/my-gpu-run --output reports/r1

It finds every stage output below the folder by its `manifest.json` (generate, filter, train, eval)
and draws what each one holds: the filter funnel, reasoning-length histograms of kept vs rejected
traces, training loss curves, an accuracy chart over eval runs, and a token/compute summary. Works
on the demo's run folder and on real GPU runs alike.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.configs import ReportConfig
from distill.errors import UserError
from distill.records import MANIFEST, atomic_write_text, read_records


def find_stages(root: Path, max_depth: int = 4) -> dict[str, list[tuple[Path, dict[str, Any]]]]:
    """Stage outputs below `root`, by stage name, in path order.

    The stages inside a `distill sweep` folder are not listed one by one: the sweep is (its
    sweep.md table and sweep.png chart summarise them).
    """
    found: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    manifests: list[tuple[Path, dict[str, Any]]] = []
    for path in sorted(root.rglob(MANIFEST)):
        rel = path.parent.relative_to(root)
        if len(rel.parts) > max_depth or "checkpoints" in rel.parts:
            continue
        try:
            manifests.append((path.parent, json.loads(path.read_text())))
        except ValueError:
            continue
    sweeps = [folder for folder, m in manifests if m.get("stage") == "sweep"]
    for folder, manifest in manifests:
        if not any(s in folder.parents for s in sweeps):
            found.setdefault(manifest.get("stage", "?"), []).append((folder, manifest))
    return found


def _label(root: Path, folder: Path) -> str:
    rel = folder.relative_to(root)
    return str(rel) if str(rel) != "." else folder.name


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_train_log(folder: Path) -> list[dict[str, float]]:
    path = folder / "train_log.csv"
    if not path.exists():
        return []
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})
            except ValueError:
                continue
    return rows


def eval_rows(root: Path, evals: list[tuple[Path, dict[str, Any]]]) -> list[dict[str, Any]]:
    results = []
    for folder, _ in evals:
        res_path = folder / "results.json"
        if res_path.exists():
            results.append((folder, json.loads(res_path.read_text())))
    labels = model_labels(root, list(dict.fromkeys(str(res.get("model", "")) for _, res in results)))
    rows = []
    for folder, res in results:
        temp = res.get("sampling", {}).get("temperature")
        for bench, r in res.get("benchmarks", {}).items():
            cons_key = next((k for k in r if k.startswith("cons@")), None)
            rows.append(
                {
                    "run": _label(root, folder),
                    "model": labels[str(res.get("model", ""))],
                    "mode": "greedy" if temp == 0 else f"T={temp}",
                    "benchmark": bench,
                    "pass@1": r["pass@1"],
                    "cons": (cons_key, r[cons_key]) if cons_key else None,
                    "problems": r["problems"],
                    "n": r["n"],
                    "mean_tokens": r["mean_response_tokens"],
                    "truncated": r["truncated_share"],
                }
            )
    return rows


def model_labels(root: Path, models: list[str]) -> dict[str, str]:
    """A short, unique label per model: its path below the run folder (`a/student`), else its
    folder or Hub name; two different models with the same short name get their full path or id,
    so two runs' `student` folders stay two models."""
    short = {}
    for model in models:
        try:
            short[model] = str(Path(model).resolve().relative_to(root.resolve()))
        except (ValueError, OSError):
            short[model] = Path(model).name or model
    clashes = {label for label in short.values() if list(short.values()).count(label) > 1}
    return {m: (m if label in clashes else label) for m, label in short.items()}


def draw_lengths(ax: Any, lengths: dict[str, list[int]]) -> dict[str, Any]:
    """Histogram of kept vs rejected lengths on shared bins, kept drawn last as an outline so a
    spike of rejected traces cannot hide it; a log count axis when one part dwarfs the other."""
    import numpy as np

    values = [v for vals in lengths.values() for v in vals]
    bins = np.histogram_bin_edges(values, bins=40)
    style = {
        "rejected": {"histtype": "stepfilled", "alpha": 0.35, "color": "#999999", "zorder": 1},
        "kept": {"histtype": "step", "linewidth": 2.0, "color": "#1f5fa8", "zorder": 3},
    }
    peaks = {}
    order = [p for p in ("rejected", "kept") if lengths.get(p)]
    for part in order:
        counts, _, _ = ax.hist(
            lengths[part], bins=bins, label=f"{part} ({len(lengths[part])})", **style[part]
        )
        peaks[part] = max(counts)
    log = len(peaks) == 2 and max(peaks.values()) > 10 * max(1.0, min(peaks.values()))
    if log:
        ax.set_yscale("log")
    return {"bins": bins, "order": order, "log": log}


def draw_accuracy(
    ax: Any, models: list[str], modes: list[str], cells: dict[tuple[str, str], float], width: float
) -> int:
    """Grouped pass@1 bars, one group per model; a model not evaluated in a mode has no bar there
    (never a 0 bar). Returns the number of bars drawn."""
    drawn = 0
    for j, mo in enumerate(modes):
        have = [i for i, m in enumerate(models) if (m, mo) in cells]
        bars = ax.bar(
            [i + j * width for i in have], [cells[(models[i], mo)] for i in have], width=width, label=mo
        )
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
        drawn += len(have)
    return drawn


def accuracy_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[str], dict[tuple[str, str], float]]:
    """Pivot eval rows into model × mode (pass@1, %) for one table per benchmark set."""
    models: list[str] = []
    modes: list[str] = []
    cells: dict[tuple[str, str], float] = {}
    for r in rows:
        key = r["model"] if len({x["benchmark"] for x in rows}) == 1 else f"{r['model']} · {r['benchmark']}"
        if key not in models:
            models.append(key)
        if r["mode"] not in modes:
            modes.append(r["mode"])
        cells[(key, r["mode"])] = 100 * r["pass@1"]
    modes.sort(key=lambda m: (m != "greedy", m))
    return models, modes, cells


def run(cfg: ReportConfig) -> dict[str, Any]:
    """Write `report.md` and its charts for the run folder `cfg.run_dir`; returns what was drawn
    (stage counts, accuracy cells, the report's path and chart names)."""
    root = Path(cfg.run_dir)
    if not root.is_dir():
        raise UserError(f"{root}: no such run folder")
    out = Path(cfg.output) if cfg.output else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    stages = find_stages(root, cfg.max_depth)
    if not stages:
        raise UserError(f"{root}: no stage outputs found (no manifest.json below it)")
    charts = Charts(out, _plt())
    summary: dict[str, Any] = {"stages": {k: len(v) for k, v in stages.items()}}
    md: list[str] = [f"# distill report: {root.name}", ""]
    md += compute_section(root, stages)
    for folder, _ in stages.get("filter", []):
        funnel_path = folder / "funnel.json"
        if funnel_path.exists():
            label = _label(root, folder)
            md += funnel_section(label, json.loads(funnel_path.read_text()), charts)
            md += lengths_section(label, folder, charts)
    md += loss_section(root, stages.get("train", []), charts)
    md += eval_section(root, stages.get("eval", []), charts, summary)
    for folder, _ in stages.get("sweep", []):
        md += sweep_section(_label(root, folder), folder, charts)

    extra = root / "demo.md"
    if extra.exists():
        md = md[:2] + [extra.read_text().strip(), ""] + md[2:]
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    summary.update({"report": str(out / "report.md"), "charts": charts.names})
    return summary


@dataclass
class Charts:
    """Where the report's PNG charts go, the pyplot module drawing them, and the names written so far."""

    out: Path
    plt: Any
    names: list[str] = field(default_factory=list)

    def save(self, fig: Any, name: str) -> str:
        """Lay out `fig`, write it as `out/name` (110 dpi), close it; returns `name`."""
        fig.tight_layout()
        fig.savefig(self.out / name, dpi=110)
        self.plt.close(fig)
        self.names.append(name)
        return name


def _figures(counts: dict[str, Any]) -> str:
    """A manifest's scalar counts as `key: value` (thousands separated, floats to 2 places)."""
    return ", ".join(
        f"{k}: {v:,.2f}" if isinstance(v, float) else f"{k}: {v:,}" if isinstance(v, int) else f"{k}: {v}"
        for k, v in counts.items()
        if not isinstance(v, dict | list)
    )


def compute_section(root: Path, stages: dict[str, list[tuple[Path, dict[str, Any]]]]) -> list[str]:
    """Markdown table: each generate/filter/train/eval output and its manifest's counts."""
    md = ["## Tokens and compute", "", "| stage | output | figures |", "|---|---|---|"]
    for stage in ("generate", "filter", "train", "eval"):
        for folder, m in stages.get(stage, []):
            figures = _figures(m.get("counts", {}))
            md.append(f"| {stage} | `{_label(root, folder)}` | {figures or '—'} |")
    md.append("")
    return md


def funnel_section(label: str, funnel: dict[str, Any], charts: Charts) -> list[str]:
    """The filter funnel (funnel.json): a chart of traces remaining after each check, and its table."""
    names = ["input"] + [c["name"] for c in funnel.get("checks", [])]
    remaining = [funnel.get("input", 0)] + [c.get("remaining", 0) for c in funnel.get("checks", [])]
    fig, ax = charts.plt.subplots(figsize=(7, 0.5 * len(names) + 1.2))
    ax.barh(names[::-1], remaining[::-1], color="#4c72b0")
    for i, v in enumerate(remaining[::-1]):
        ax.text(v, i, f" {v}", va="center", fontsize=8)
    ax.set_xlabel("traces remaining")
    ax.set_title(f"filter funnel: {label}")
    name = charts.save(fig, f"funnel-{label.replace('/', '-')}.png")
    md = [
        f"## Filter funnel: `{label}`",
        "",
        "| step | dropped | remaining | % of input |",
        "|---|---:|---:|---:|",
    ]
    total = max(funnel.get("input", 0), 1)
    md.append(f"| input | | {funnel.get('input', 0)} | 100.0% |")
    for c in funnel.get("checks", []):
        md.append(
            f"| {c['name']} | {c.get('dropped', 0)} | {c.get('remaining', 0)} | {100 * c.get('remaining', 0) / total:.1f}% |"
        )
    md += [
        f"| **kept** | | **{funnel.get('kept', 0)}** | {100 * funnel.get('kept', 0) / total:.1f}% |",
        "",
    ]
    return md + [f"![funnel]({name})", ""]


def lengths_section(label: str, folder: Path, charts: Charts) -> list[str]:
    """Histogram of completion lengths, kept vs rejected traces of one filter output (none: no lines)."""
    lengths: dict[str, list[int]] = {}
    for part in ("kept", "rejected"):
        if (folder / part).is_dir():
            lengths[part] = [
                int(
                    (r.get("usage") or {}).get("completion_tokens") or len((r.get("reasoning") or "").split())
                )
                for r in read_records(folder / part, skip_bad_lines=True)
            ]
    if not any(lengths.values()):
        return []
    fig, ax = charts.plt.subplots(figsize=(7, 3.5))
    draw_lengths(ax, lengths)
    ax.set_xlabel("completion tokens (reasoning + answer)")
    ax.set_ylabel("traces")
    ax.set_title(f"response length: {label}")
    ax.legend()
    name = charts.save(fig, f"lengths-{label.replace('/', '-')}.png")
    return [f"![lengths]({name})", ""]


def loss_section(root: Path, trains: list[tuple[Path, dict[str, Any]]], charts: Charts) -> list[str]:
    """Training loss curves of every train output with a logged loss, and a first/final loss table."""
    logs = [(folder, read_train_log(folder)) for folder, _ in trains]
    logs = [(f, rows) for f, rows in logs if any("loss" in r for r in rows)]
    if not logs:
        return []
    fig, ax = charts.plt.subplots(figsize=(7, 3.8))
    md = ["## Training", "", "| run | steps | first loss | final loss |", "|---|---:|---:|---:|"]
    for folder, rows in logs:
        pts = [(r["step"], r["loss"]) for r in rows if "loss" in r and "step" in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=_label(root, folder))
        md.append(f"| `{_label(root, folder)}` | {int(pts[-1][0])} | {pts[0][1]:.3f} | {pts[-1][1]:.3f} |")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.set_title("training loss")
    charts.save(fig, "loss.png")
    return md + ["", "![loss](loss.png)", ""]


def eval_section(
    root: Path, evals: list[tuple[Path, dict[str, Any]]], charts: Charts, summary: dict[str, Any]
) -> list[str]:
    """Accuracy: the model × mode table and chart, then one row per eval run and benchmark; the
    cells go to `summary["accuracy"]` and the number of bars to `summary["accuracy_bars"]`."""
    rows = eval_rows(root, evals)
    if not rows:
        return []
    models, modes, cells = accuracy_table(rows)
    summary["accuracy"] = {m: {mode: cells.get((m, mode)) for mode in modes} for m in models}
    md = [
        "## Accuracy (pass@1, %)",
        "",
        "| model | " + " | ".join(modes) + " |",
        "|---|" + "---:|" * len(modes),
    ]
    for m in models:
        md.append(
            f"| {m} | "
            + " | ".join(f"{cells[(m, mo)]:.1f}" if (m, mo) in cells else "—" for mo in modes)
            + " |"
        )
    md.append("")
    summary["accuracy_bars"] = _accuracy_chart(models, modes, cells, charts)
    md += [
        "![accuracy](accuracy.png)",
        "",
        "| eval run | benchmark | pass@1 | cons@n | problems | mean tokens | truncated |",
    ]
    md.append("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        cons = f"{100 * r['cons'][1]:.1f} ({r['cons'][0]})" if r["cons"] else "—"
        md.append(
            f"| `{r['run']}` | {r['benchmark']} | {100 * r['pass@1']:.1f} | {cons} | {r['problems']} | "
            f"{r['mean_tokens']:.0f} | {100 * r['truncated']:.1f}% |"
        )
    md.append("")
    return md


def _accuracy_chart(
    models: list[str], modes: list[str], cells: dict[tuple[str, str], float], charts: Charts
) -> int:
    """`accuracy.png`: grouped pass@1 bars per model; returns the number of bars drawn."""
    fig, ax = charts.plt.subplots(figsize=(max(6, 1.3 * len(models)), 3.8))
    width = 0.8 / max(len(modes), 1)
    drawn = draw_accuracy(ax, models, modes, cells, width)
    ax.set_xticks([i + width * (len(modes) - 1) / 2 for i in range(len(models))])
    ax.set_xticklabels(models, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("pass@1 (%)")
    ax.set_ylim(0, 105)
    ax.legend()
    ax.set_title("accuracy")
    charts.save(fig, "accuracy.png")
    return drawn


def sweep_section(label: str, folder: Path, charts: Charts) -> list[str]:
    """A sweep's own table (sweep.md) and chart (sweep.png, copied in); none before it has a table."""
    table, chart = folder / "sweep.md", folder / "sweep.png"
    if not table.exists():
        return []
    md = [f"## Accuracy against data budget: `{label}`", "", table.read_text().strip(), ""]
    if chart.exists():
        name = f"sweep-{label.replace('/', '-')}.png"
        shutil.copyfile(chart, charts.out / name)
        charts.names.append(name)
        md += [f"![sweep]({name})", ""]
    return md
