"""Each CLI option has one home, its config field; old input spellings still work and warn.

The commands are built from the stage configs (`distill.options.opt` metadata); these tests run
them through Typer with the stage's entry function replaced by one that records the config it
was given, so what a command line turns into is checked exactly.
"""

from __future__ import annotations

import dataclasses

import pytest
import typer
from typer.testing import CliRunner

from distill.cli import app, config_options
from distill.demo import DemoConfig
from distill.evaluate import EvalConfig
from distill.filter import FilterConfig
from distill.generate import GenerateConfig
from distill.hub import PushConfig
from distill.ingest import ReadOptions
from distill.report import ReportConfig
from distill.select import SelectConfig
from distill.sweep import SweepConfig
from distill.train import TrainConfig
from tests.conftest import REPO_ROOT

CONFIGS = {
    "generate": GenerateConfig,
    "filter": FilterConfig,
    "select": SelectConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
    "push": PushConfig,
    "sweep": SweepConfig,
    "report": ReportConfig,
    "demo": DemoConfig,
}
CLI_ONLY = {"sweep": {"student_results"}}  # conveniences the command maps onto its config itself
ENTRY = {  # the module whose `run` each command calls, and what it returns
    "generate": ("distill.generate", None),
    "filter": ("distill.filter", None),
    "select": ("distill.select", {"selected": {"traces": 1, "prompts": 1}, "strategy": "s1", "budget": 1}),
    "train": ("distill.train", {"steps": 1, "model": "m", "manifest": "m/manifest.json"}),
    "eval": ("distill.evaluate", None),
    "push": ("distill.hub", {"staged": "t", "uploaded": False, "kind": "full", "rows": 0, "repo": "r"}),
    "sweep": ("distill.sweep", {"points": [], "chart": "c.png", "gpu_hours": 0.0}),
    "report": ("distill.report", {"report": "r/report.md", "charts": []}),
    "demo": ("distill.demo", None),
}


@pytest.fixture
def invoke(monkeypatch):
    """invoke(*args) -> (config the stage got, stderr); the stage itself does not run."""
    seen = []

    def call(*args: str, exit_code: int = 0):
        module, result = ENTRY[args[0]]

        def fake_run(cfg, *more):  # demo also gets the CLI's run_command
            seen.append(cfg)
            return result

        monkeypatch.setattr(f"{module}.run", fake_run)
        out = CliRunner().invoke(app, list(args))
        assert out.exit_code == exit_code, out.output
        return (seen.pop() if seen else None), out.stderr

    return call


def click_command(name: str):
    return typer.main.get_command(app).commands[name]


@pytest.mark.parametrize("name", CONFIGS)
def test_every_option_is_one_config_field_with_the_fields_default(name):
    config = CONFIGS[name]
    params = {p.name: p for p in click_command(name).params if p.name != "help"}
    fields = {o.name: o for o in config_options(config)}
    assert set(params) == set(fields) | CLI_ONLY.get(name, set())
    for fname, option in fields.items():
        default = params[fname].default
        if option.default is not option.parameter().empty and option.default is not None:
            assert default == option.default or list(default) == option.default, fname
        else:
            assert params[fname].required or default in (None, ()), fname


@pytest.mark.parametrize(
    ("args", "field", "value", "old"),
    [
        (["filter", "IN", "-o", "OUT"], "input", "IN", "a positional INPUT"),
        (["report", "RUN"], "run_dir", "RUN", "a positional INPUT"),
        (["train", "--student", "s", "--data", "D", "-o", "O"], "data", "D", "--data"),
        (["eval", "--model", "M", "-o", "O"], "model", "M", "--model"),
        (["push", "--model", "M", "--repo", "me/x"], "model", "M", "--model"),
        (["push", "-i", "M", "--repo", "me/x", "--data", "F"], "data", "F", "--data"),
        (["sweep", "--data", "F", "--student", "s", "-o", "O"], "data", "F", "--data"),
        (["sweep", "--data=F", "--student", "s", "-o", "O"], "data", "F", "--data"),
    ],
)
def test_old_spellings_still_work_and_warn(invoke, args, field, value, old):
    cfg, stderr = invoke(*args)
    assert getattr(cfg, field) == value
    assert f"distill: warning: {old} is deprecated, use " in stderr
    assert "next release" in stderr


@pytest.mark.parametrize(
    ("args", "field", "value"),
    [
        (["filter", "-i", "IN", "-o", "OUT"], "input", "IN"),
        (["filter", "--input", "IN", "--output", "OUT"], "input", "IN"),
        (["report", "--input", "RUN", "-o", "R"], "run_dir", "RUN"),
        (["train", "--student", "s", "-i", "D", "-o", "O"], "data", "D"),
        (["eval", "-i", "M", "-o", "O"], "model", "M"),
        (["push", "--input", "M", "--repo", "me/x", "--traces", "F"], "data", "F"),
        (["sweep", "-i", "F", "--student", "s", "-o", "O"], "data", "F"),
        (["select", "-i", "F", "-o", "O"], "input", "F"),
        (["generate", "--teacher", "t", "--prompts", "p", "-o", "O"], "output", "O"),
    ],
)
def test_the_rule_input_and_output_everywhere_without_a_warning(invoke, args, field, value):
    cfg, stderr = invoke(*args)
    assert getattr(cfg, field) == value
    assert "warning" not in stderr


def test_old_and_new_spelling_build_the_same_config(invoke):
    new, _ = invoke(
        "train", "--student", "s", "-i", "D", "-o", "O", "--lr", "1e-3", "--lora-target", "q_proj"
    )
    old, _ = invoke(
        "train", "--student", "s", "--data", "D", "-o", "O", "--lr", "1e-3", "--lora-target", "q_proj"
    )
    assert dataclasses.asdict(new) == dataclasses.asdict(old)
    assert new.learning_rate == 1e-3 and new.lora_targets == ["q_proj"] and new.seed == 42


def test_a_value_that_looks_like_an_old_flag_is_left_alone(invoke):
    cfg, stderr = invoke("train", "--student", "s", "-i", "D", "-o", "O", "--prompt-template", "--data")
    assert cfg.prompt_template == "--data" and cfg.data == "D" and "warning" not in stderr
    cfg, stderr = invoke("filter", "--input", "IN", "-o", "OUT", "--judge-model", "m")
    assert cfg.input == "IN" and cfg.judge_model == "m" and "warning" not in stderr


def test_values_are_converted_into_the_configs_types(invoke):
    cfg, _ = invoke(
        "filter", "-i", "IN", "-o", "O", "--checks", "complete,format", "--checks", "correct",
        "--think-tags", "<t>,</t>", "--decontaminate", "aime24, math500", "--format", "sharegpt",
        "--config", "default", "--split", "test", "--reassign-ids",
    )  # fmt: skip
    assert cfg.checks == ["complete", "format", "correct"] and cfg.skip == []
    assert cfg.think_tags == ["<t>", "</t>"] and cfg.decontaminate == ["aime24", "math500"]
    assert cfg.read == ReadOptions(
        format="sharegpt", split="test", dataset_config="default", reassign_ids=True
    )
    cfg, _ = invoke("filter", "-i", "IN", "-o", "O")
    assert cfg == FilterConfig(input="IN", output="O")  # no option given: the config's own defaults
    cfg, _ = invoke(
        "sweep", "-i", "F", "--student", "s", "-o", "O", "--seeds", "0,1", "--budgets", "10,all",
        "--select", "band=0.25:0.75", "--train", "learning_rate=1e-5", "--student-results", "E",
    )  # fmt: skip
    assert cfg.seeds == [0, 1] and cfg.budgets == ["10", "all"]
    assert cfg.select == {"band": "0.25:0.75", "student_results": "E"} and cfg.train == {
        "learning_rate": 1e-5
    }
    cfg, _ = invoke("select", "-i", "F", "-o", "O", "--balance", "domain,topic")
    assert cfg.balance == ["domain", "topic"]
    cfg, _ = invoke(
        "eval", "-i", "M", "-o", "O", "--benchmark", "aime24,math500", "--base-url", "http://a/v1"
    )
    assert cfg.benchmarks == ["aime24", "math500"] and cfg.base_urls == ["http://a/v1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["sweep", "-i", "F", "--student", "s", "-o", "O", "--seeds", "0,x"],
            "--seeds: expected comma-separated",
        ),
        (["sweep", "-i", "F", "--student", "s", "-o", "O", "--train", "lr"], "--train: expected KEY=VALUE"),
    ],
)
def test_a_bad_value_is_one_line_and_status_2(invoke, args, message):
    _, stderr = invoke(*args, exit_code=2)
    assert stderr.strip().count("\n") == 0 and message in stderr and "Traceback" not in stderr


def test_a_missing_required_input_names_the_new_flag(invoke):
    out = CliRunner().invoke(app, ["filter", "-o", "OUT"])
    assert out.exit_code == 2 and "--input" in out.stderr


def test_demo_output_follows_quick(invoke):
    assert DemoConfig().output == "runs/demo" and DemoConfig(quick=True).output == "runs/demo-quick"
    cfg, _ = invoke("demo", "--quick")
    assert cfg.output == "runs/demo-quick"
    cfg, _ = invoke("demo", "-o", "x")
    assert cfg.output == "x"


def test_old_spelling_through_the_real_stage(run_cli, tmp_path):
    # the whole path, stage included: the positional input reaches the filter, which names it
    proc = run_cli("filter", tmp_path / "missing", "-o", tmp_path / "o")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("distill: warning: a positional INPUT is deprecated, use --input ")
    assert lines[-1].startswith("distill: error:") and "missing" in lines[-1]


def test_the_cli_reads_options_without_importing_a_stage():
    import subprocess
    import sys

    code = (
        "import sys, distill.cli, typer.main; typer.main.get_command(distill.cli.app); "
        "print(sorted(m for m in sys.modules if m.startswith('distill')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert out.stdout.strip() == str(
        ["distill", "distill.cli", "distill.configs", "distill.errors", "distill.options"]
    )
