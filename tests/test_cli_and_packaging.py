"""The CLI answers instantly; the wheel packages only `distill`; fixtures build real tiny models."""

from __future__ import annotations

import subprocess
import sys
import time
import zipfile

import pytest

from tests.conftest import REPO_ROOT


def test_help_is_fast_and_imports_no_heavy_library(run_cli):
    t = time.perf_counter()
    proc = run_cli("--help", check=True)
    assert time.perf_counter() - t < 3.0  # includes interpreter start-up on a loaded CI box
    for stage in ("generate", "filter", "train", "eval", "push", "select", "sweep", "report", "demo"):
        assert f"\n  {stage} " in proc.stdout, stage
    code = (
        "import sys, distill.cli; "
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'vllm', 'datasets', 'peft') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert out.stdout.strip() == "[]", out.stderr


def test_version(run_cli):
    from distill import __version__

    assert run_cli("--version", check=True).stdout.strip() == f"distill {__version__}"


def test_launcher_runs_from_checkout():
    proc = subprocess.run(
        [sys.executable, "cli.py", "--version"], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert proc.returncode == 0 and proc.stdout.startswith("distill ")


def test_only_built_stages_are_registered():
    from distill.cli import app

    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    allowed = {"generate", "filter", "train", "eval", "push", "select", "sweep", "report", "demo"}
    assert names <= allowed


@pytest.mark.slow
def test_wheel_packages_only_distill(tmp_path):
    wheel_dir = tmp_path / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            wheel_dir,
            REPO_ROOT,
        ],
        check=True,
        capture_output=True,
    )
    (whl,) = wheel_dir.glob("distill-*.whl")
    top = {n.split("/")[0] for n in zipfile.ZipFile(whl).namelist()}
    assert {t for t in top if not t.endswith(".dist-info")} == {"distill"}
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", target, whl],
        check=True,
        capture_output=True,
    )
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run(
        [sys.executable, "-c", "import distill.cli"], cwd=tmp_path, env=env, capture_output=True
    )
    assert ok.returncode == 0, ok.stderr
    for name in ("teachers", "students", "data"):
        bad = subprocess.run(
            [sys.executable, "-c", f"import {name}"], cwd=tmp_path, env=env, capture_output=True
        )
        assert bad.returncode != 0 and b"ModuleNotFoundError" in bad.stderr


def test_tiny_fixtures_are_real_models(tiny_qwen, tiny_llama):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for path, eos in ((tiny_qwen, "<|im_end|>"), (tiny_llama, "<|eot_id|>")):
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path)
        assert tok.eos_token == eos
        assert model.config.eos_token_id == tok.convert_tokens_to_ids(eos)
        text = tok.apply_chat_template(
            [
                {"role": "user", "content": "1+1?"},
                {"role": "assistant", "content": "<think>\nx\n</think>\n\n2"},
            ],
            tokenize=False,
        )
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.convert_tokens_to_ids("<think>") in ids and tok.convert_tokens_to_ids("</think>") in ids
        assert tok.decode(ids) == text
        assert model.config.vocab_size == len(tok)
    assert type(AutoModelForCausalLM.from_pretrained(tiny_llama)).__name__ == "LlamaForCausalLM"
