"""Typos, missing paths and an unreachable Hub fail at once with one line that says what to do;
a run that failed before doing any work does not block its corrected command.

The Hub is never contacted: "unreachable" is HF_ENDPOINT on a closed 127.0.0.1 port, "offline"
is HF_HUB_OFFLINE=1 (the suite's default, see conftest.py).
"""

from __future__ import annotations

import json
import shutil
import socket
import time

import pytest

from distill.errors import UserError
from distill.eval_sets import load_benchmark
from distill.evaluate import EvalConfig, _resolve_model
from distill.filter import FilterConfig
from distill.filter import run as run_filter
from distill.generate import GenerateConfig
from distill.generate import run as run_generate
from distill.records import read_manifest
from distill.sampling import resolve_teacher
from distill.train import resolve_student


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("qwen2.5-math-1.5", "qwen2.5-math-1.5b"), ("qwen2.5-math7b", "qwen2.5-math-7b"),
     ("llama-3.1-8", "llama-3.1-8b"), ("Qwen2.5-14B", "qwen2.5-14b")],
)  # fmt: skip
def test_near_miss_student_card_names_the_card(typed, meant):
    start = time.monotonic()
    with pytest.raises(UserError, match=rf"--student {typed}: .*did you mean {meant}\?"):
        resolve_student(typed)
    assert time.monotonic() - start < 2
    card, model = resolve_student(meant)  # the reverse: the right name is the card
    assert card is not None and card.name == meant


@pytest.mark.parametrize(("typed", "meant"), [("deepseek-r", "deepseek-r1"), ("qwq32b", "qwq-32b")])
def test_near_miss_teacher_card_names_the_card(typed, meant):
    with pytest.raises(UserError, match=rf"--teacher {typed}: .*did you mean {meant}\?"):
        resolve_teacher(typed)
    assert resolve_teacher(meant).name == meant


@pytest.mark.parametrize("spec", ["runs/nosuch", "./nosuch", "{tmp}/nosuch", "a/b/c"])
def test_missing_model_folder_is_one_line_without_the_hub(tmp_path, monkeypatch, spec):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()  # `runs/nosuch` is a path because runs/ is a folder here
    spec = spec.format(tmp=tmp_path)
    with pytest.raises(UserError, match=rf"--input {spec}: no such model folder"):
        _resolve_model(EvalConfig(model=spec, output="o"))
    with pytest.raises(UserError, match=rf"--student {spec}: no such model folder"):
        resolve_student(spec)


def test_offline_hub_id_not_in_cache_says_so():
    with pytest.raises(UserError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE=1 is set"):
        resolve_student("nosuch-org/nosuch-model")
    # eval through an OpenAI-compatible server: the model is a served name, never looked up
    assert _resolve_model(EvalConfig(model="deepseek-reasoner", output="o", backend="openai"))[0] == (
        "deepseek-reasoner"
    )


@pytest.mark.parametrize(
    ("args", "hints"),
    [
        (["train", "--student", "Qwen/Qwen2.5-Math-1.5B", "--input", "{kept}", "--output", "{tmp}/s"],
         ["--student Qwen/Qwen2.5-Math-1.5B", "a local model folder"]),
        (["train", "--student", "qwen2.5-math-1.5b", "--input", "{kept}", "--output", "{tmp}/s"],
         ["--student qwen2.5-math-1.5b (Qwen/Qwen2.5-Math-1.5B)"]),
        (["eval", "--input", "{model}", "--benchmark", "aime24", "--output", "{tmp}/e"],
         ["benchmark 'aime24'", "--benchmark-file aime24.jsonl", "--benchmarks-dir"]),
        (["filter", "-i", "{kept}", "-o", "{tmp}/f", "--decontaminate", "math500"],
         ["benchmark 'math500'", "--decontaminate-file math500.jsonl", "--benchmarks-dir"]),
    ],
)  # fmt: skip
def test_unreachable_hub_fails_in_seconds(tmp_path, run_cli, tiny_qwen, args, hints):
    kept = tmp_path / "kept"
    kept.mkdir()
    rec = {"id": "p:0", "prompt_id": "p", "sample": 0, "problem": "1+1?", "answer": "2", "domain": "math",
           "reasoning": "1+1=2", "content": "\\boxed{2}", "finish_reason": "stop"}  # fmt: skip
    (kept / "shard-00000.jsonl").write_text(json.dumps(rec) + "\n")
    args = [a.format(tmp=tmp_path, kept=kept, model=tiny_qwen) for a in args]
    env = {
        "HF_HUB_OFFLINE": "",
        "HF_DATASETS_OFFLINE": "",
        "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
    }
    start = time.monotonic()
    proc = run_cli(*args, env=env, timeout=120)
    assert time.monotonic() - start < 20
    assert proc.returncode == 2, proc.stderr
    err = [line for line in proc.stderr.splitlines() if line.startswith("distill: error:")]
    assert len(err) == 1 and "cannot reach the Hugging Face Hub" in err[0] and "HF_HUB_OFFLINE=1" in err[0]
    for hint in hints:
        assert hint in err[0]
    assert "Retrying" not in proc.stderr and "Traceback" not in proc.stderr
    assert "--decontaminate-file" not in err[0] or args[0] == "filter"  # each command names its own flags


def test_benchmarks_dir_missing_a_file_is_an_error(tmp_path, benchmarks_dir):
    local = tmp_path / "bench"
    local.mkdir()
    shutil.copy(benchmarks_dir / "aime24.jsonl", local)
    assert len(load_benchmark("aime24", local)) == 30  # the reverse: a file that is there
    for name in ("math500", "aime25", "amc23"):
        with pytest.raises(UserError, match=rf"--benchmarks-dir {local}: it has no {name}.jsonl"):
            load_benchmark(name, local)
    with pytest.raises(UserError, match=r"--benchmarks-dir /nonexistent: no such folder"):
        load_benchmark("aime24", "/nonexistent")


def test_failed_filter_does_not_block_the_fixed_command(tmp_path, benchmarks_dir):
    src = tmp_path / "traces.jsonl"
    rec = {"id": "p:0", "prompt_id": "p", "sample": 0, "problem": "1+1?", "answer": "2", "domain": "math",
           "reasoning": "1+1=2", "content": "\\boxed{2}", "finish_reason": "stop"}  # fmt: skip
    src.write_text(json.dumps(rec) + "\n")
    out = tmp_path / "filtered"
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = FilterConfig(input=str(src), output=str(out), decontaminate=["math500"], benchmarks_dir=str(empty))
    with pytest.raises(UserError, match="it has no math500.jsonl"):
        run_filter(bad)
    assert read_manifest(out) is not None  # the failed run left its manifest ...
    fixed = FilterConfig(input=str(src), output=str(out), decontaminate=["math500"],
                         benchmarks_dir=str(benchmarks_dir), workers=1)  # fmt: skip
    assert run_filter(fixed)["kept"] == 1  # ... and the fixed command runs
    # the reverse: finished work with another config is still refused
    with pytest.raises(UserError, match="different config"):
        run_filter(FilterConfig(input=str(src), output=str(out), workers=1))


def test_generate_that_wrote_nothing_accepts_a_new_config(tmp_path, fake_server):
    server = fake_server(models=["org/right"], listing=False)  # the card's name gets HTTP 400
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"{i}?"}) + "\n" for i in range(3)))
    base = dict(teacher="org/wrong", prompts=str(prompts), output=str(tmp_path / "t"), backend="openai",
                base_url=[server.url], progress=False, max_retries=0)  # fmt: skip
    with pytest.raises(UserError, match="only 0 of 3"):
        run_generate(GenerateConfig(**base))
    # fixed: the right name and, say, another temperature; nothing was written, so it is accepted
    m = run_generate(GenerateConfig(**{**base, "teacher": "org/right", "temperature": 0.7}))
    assert m["counts"]["samples"] == 3
    with pytest.raises(UserError, match="different config"):  # the reverse, now that traces exist
        run_generate(GenerateConfig(**{**base, "teacher": "org/right", "temperature": 0.9}))


def test_prompt_and_data_typos_are_one_line(tmp_path, monkeypatch):
    from distill.prompts import load_prompts
    from distill.train_data import load_messages

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "filtered").mkdir(parents=True)
    with pytest.raises(UserError, match=r"--prompts numina-mat: .*did you mean numina-math\?"):
        load_prompts("numina-mat")
    with pytest.raises(UserError, match=r"runs/p.jsonl: no such file"):
        load_prompts("runs/p.jsonl")
    with pytest.raises(UserError, match=r"runs/filtered/kep: no such file or folder"):
        load_messages("runs/filtered/kep")
    with pytest.raises(UserError, match=r"nosuch-org/nosuch-data: .*HF_HUB_OFFLINE"):
        load_messages("nosuch-org/nosuch-data")  # offline here: never asks the Hub


def test_deepspeed_configs_say_how_to_install_it(tmp_path, tiny_qwen, run_cli):
    import importlib.util

    from distill.train import ACCELERATE_CONFIGS, _check_deepspeed

    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("DeepSpeed is installed here")
    own = tmp_path / "mine.yaml"
    own.write_text("distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: 2\n")
    for name, path in [
        ("zero2", ACCELERATE_CONFIGS["zero2"]),
        ("zero3", ACCELERATE_CONFIGS["zero3"]),
        (str(own), own),
    ]:
        with pytest.raises(
            UserError, match=r"needs DeepSpeed: pip install -e '\.\[deepspeed\]' in the distill checkout"
        ):
            _check_deepspeed(name, path)
    for name in ("ddp", "fsdp2"):  # the reverse: no DeepSpeed needed
        _check_deepspeed(name, ACCELERATE_CONFIGS[name])
    kept = tmp_path / "kept.jsonl"
    kept.write_text(json.dumps({"problem": "1+1?", "reasoning": "2", "content": "2"}) + "\n")
    proc = run_cli("train", "--student", tiny_qwen, "--input", kept, "--output", tmp_path / "s",
                   "--launcher", "accelerate", "--accelerate-config", "zero3")  # fmt: skip
    assert proc.returncode == 2 and "needs DeepSpeed" in proc.stderr and "Traceback" not in proc.stderr
