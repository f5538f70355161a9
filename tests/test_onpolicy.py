"""`distill train --objective opd` on tiny local models: divergence falls, files, resume, LoRA, guards."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from distill import onpolicy
from distill.errors import UserError
from distill.train import TrainConfig
from distill.train import run as train_run
from tests.test_train_data import trace, write_kept


def write_prompts(path: Path, n: int = 8, offset: int = 0) -> str:
    rows = [{"id": f"q{i}", "problem": f"What is {i + offset + 3} + {2 * i + 1}?"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def opd_env(tmp_path_factory, tiny_qwen, tiny_tokenizer):
    """Prompts, a tiny teacher (another init of the same tokenizer) and a student SFT'd on the format."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.tiny import build_model

    root = tmp_path_factory.mktemp("opd")
    teacher = build_model(root / "teacher", tiny_tokenizer, seed=1, hidden_size=48)
    base = root / "base"
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen)
    with torch.no_grad():  # scaled embeddings: the tiny model picks up the format in a few steps
        model.get_input_embeddings().weight.mul_(10)
    model.save_pretrained(base)
    AutoTokenizer.from_pretrained(tiny_qwen).save_pretrained(base)
    kept = write_kept(root / "kept", [trace(i) for i in range(4)])
    sft = root / "sft"
    common = dict(data=kept, batch_size=4, grad_accum=1, max_length=256, logging_steps=10, save_steps=1000,
                  warmup_ratio=0.0, cache_dir=str(root / "cache"))  # fmt: skip
    train_run(TrainConfig(student=str(base), output=str(sft), method="full", max_steps=80, learning_rate=1e-2,
                          **common))  # fmt: skip
    sft_lora = root / "sft-lora"
    train_run(TrainConfig(student=str(base), output=str(sft_lora), method="lora", max_steps=80, learning_rate=1e-2,
                          lora_r=16, lora_alpha=32, lora_dropout=0.0, **common))  # fmt: skip
    return {
        "root": root,
        "teacher": teacher,
        "base": base,
        "sft": sft,
        "sft_lora": sft_lora,
        "prompts": write_prompts(root / "prompts.jsonl"),
    }


def opd_cfg(env, out, **kw) -> TrainConfig:
    base = dict(
        student=str(env["sft"]),
        objective="opd",
        teacher=str(env["teacher"]),
        prompts=env["prompts"],
        prompt_template="{problem}",
        output=str(out),
        method="full",
        max_steps=8,
        learning_rate=3e-3,
        batch_size=4,
        grad_accum=1,
        max_length=256,
        max_new_tokens=40,
        logging_steps=1,
        save_steps=1000,
        warmup_ratio=0.0,
    )
    base.update(kw)
    return TrainConfig(**base)


def read_log(out: Path) -> list[dict]:
    with open(out / "train_log.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_full_opd_divergence_falls_and_writes_files(tmp_path, opd_env):
    out = tmp_path / "full"
    s = onpolicy.run(opd_cfg(opd_env, out))
    assert s["objective"] == "opd" and s["divergence"] == "reverse_kl" and s["beta"] == 1.0
    assert s["steps"] == 8 and s["format_ok"] == "4/4"
    rows = read_log(out)
    assert [int(r["step"]) for r in rows] == list(range(1, 9))
    div = [float(r["divergence"]) for r in rows]
    assert sum(div[-3:]) / 3 < 0.5 * sum(div[:3]) / 3, div
    assert all(float(r["completion_length"]) > 0 and r["entropy"] for r in rows)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["config"]["objective"] == "opd"
    assert manifest["config"]["teacher"] == str(opd_env["teacher"]) and manifest["counts"]["prompts"] == 8
    # a plain model folder: eval and push read it as they read an SFT output
    assert (out / "model.safetensors").exists()
    eot = json.loads((out / "generation_config.json").read_text())["eos_token_id"]
    from transformers import AutoTokenizer

    assert eot == AutoTokenizer.from_pretrained(out).convert_tokens_to_ids("<|im_end|>")
    # `distill push` takes it unchanged; the card names the objective and the teacher
    from distill.hub import PushConfig
    from distill.hub import run as push

    push(PushConfig(model=str(out), repo="me/tiny-opd", dry_run=True, to_dir=str(tmp_path / "staged")))
    card = (tmp_path / "staged" / "model" / "README.md").read_text()
    assert "on-policy-distillation" in card and "Objective: on-policy distillation" in card
    assert str(opd_env["teacher"]) in card and "reverse_kl" in card


def test_lora_opd_continues_the_sft_adapter(tmp_path, opd_env):
    out = tmp_path / "lora"
    s = onpolicy.run(opd_cfg(opd_env, out, student=str(opd_env["sft_lora"]), method="lora", learning_rate=1e-2,
                             beta=0.5, max_steps=6, merge=True))  # fmt: skip
    assert s["divergence"] == "jsd(beta=0.5)" and s["steps"] == 6
    adapter = json.loads((out / "adapter_config.json").read_text())
    # the adapter sits on the SFT adapter's base, so `distill eval`/`push` load it like any LoRA output
    assert Path(adapter["base_model_name_or_path"]) == opd_env["base"]
    assert (out / "merged" / "model.safetensors").exists()
    div = [float(r["divergence"]) for r in read_log(out)]
    assert div[-1] < div[0]


def test_resume_continues_at_checkpoint(tmp_path, opd_env):
    from transformers import TrainerCallback

    class Crash(Exception):
        pass

    class KillAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 5:
                raise Crash()

    out = tmp_path / "resume"
    c = opd_cfg(opd_env, out, max_steps=6, save_steps=2)
    with pytest.raises(Crash):
        onpolicy.run(c, callbacks=[KillAt()])
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    s = onpolicy.run(c)
    assert s["resumed_from_step"] == 4 and s["steps"] == 6
    assert [int(r["step"]) for r in read_log(out)] == list(range(1, 7))
    assert onpolicy.run(c)["steps"] == 6  # finished: not trained again
    with pytest.raises(UserError, match="different config"):
        onpolicy.run(opd_cfg(opd_env, out, max_steps=6, save_steps=2, beta=0.0))


def test_mismatched_tokenizer_is_refused_before_training(tmp_path, opd_env):
    from distill.tiny import build_model, build_tokenizer

    build_tokenizer(
        tmp_path / "tok", corpus=["completely other words for another vocabulary"], vocab_size=300
    )
    other = build_model(tmp_path / "other", tmp_path / "tok")
    out = tmp_path / "out"
    with pytest.raises(UserError, match="teacher's tokenizer is not the student's.*only in the"):
        onpolicy.run(opd_cfg(opd_env, out, teacher=str(other)))
    assert not (out / "checkpoints").exists()


def test_vocab_difference_names_what_differs():
    class Tok:
        def __init__(self, vocab):
            self.vocab = vocab

        def get_vocab(self):
            return self.vocab

    assert onpolicy.vocab_difference(Tok({"a": 0, "b": 1}), Tok({"a": 0, "b": 1})) is None
    moved = onpolicy.vocab_difference(Tok({"a": 0, "b": 1}), Tok({"a": 1, "b": 0}))
    assert "2 shared tokens have other ids" in moved
    extra = onpolicy.vocab_difference(Tok({"a": 0}), Tok({"a": 0, "c": 1}))
    assert "1 only in the teacher" in extra and "'c'" in extra


def test_unformatted_student_is_refused(tmp_path, opd_env):
    out = tmp_path / "raw"
    with pytest.raises(UserError, match="does not write the answer format: 0 of 4"):
        onpolicy.run(opd_cfg(opd_env, out, student=str(opd_env["base"])))
    assert not (out / "checkpoints").exists()
    s = onpolicy.run(opd_cfg(opd_env, out, student=str(opd_env["base"]), allow_unformatted=True, max_steps=1))
    assert s["format_ok"] == "0/4" and s["steps"] == 1


def test_cli_opd_and_errors(tmp_path, opd_env, run_cli):
    out = tmp_path / "cli"
    proc = run_cli(
        "train", "--objective", "opd", "--student", opd_env["sft"], "--teacher", opd_env["teacher"],
        "--prompts", opd_env["prompts"], "--prompt-template", "{problem}", "--output", out, "--method", "full",
        "--max-steps", "2", "--batch-size", "2", "--max-new-tokens", "24", "--logging-steps", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("distill train: ")  # one line; the summary is in the manifest
    assert json.loads((out / "manifest.json").read_text())["summary"]["objective"] == "opd"
    assert "divergence" in proc.stderr
    for args, msg in [
        (["--teacher", opd_env["teacher"]], "needs --prompts"),
        (["--prompts", opd_env["prompts"]], "needs --teacher"),
        (["--prompts", opd_env["prompts"], "--teacher", opd_env["teacher"], "--beta", "2"], "--beta"),
    ]:
        bad = run_cli(
            "train", "--objective", "opd", "--student", opd_env["sft"], "--output", tmp_path / "x", *args
        )
        assert bad.returncode == 2, bad.stderr
        assert bad.stderr.strip().splitlines()[-1].startswith("distill: error:") and msg in bad.stderr


def test_served_teacher_through_trl_server_distillation(tmp_path, opd_env, monkeypatch):
    """--teacher-url: TRL's ServerDistillationTrainer asks a vLLM-style server for the teacher's logprobs
    of the student's samples. The server here is a real tiny teacher behind vLLM's `prompt_logprobs`
    API (tests/fake_vllm_teacher.py); only TRL's "is vllm installed" check is patched, as vLLM needs a GPU."""
    import trl.generation.vllm_client as vllm_client

    from tests.fake_vllm_teacher import ScoringServer

    monkeypatch.setattr(vllm_client, "is_vllm_available", lambda *a, **k: True)
    server = ScoringServer(opd_env["teacher"]).start()
    try:
        out = tmp_path / "served"
        s = onpolicy.run(opd_cfg(opd_env, out, teacher=None, teacher_url=server.url + "/v1", max_steps=6))
    finally:
        server.stop()
    assert s["objective"] == "opd" and s["teacher"] == server.url + "/v1" and s["steps"] == 6
    assert server.requests >= 6  # one scoring call per optimizer step
    div = [float(r["divergence"]) for r in read_log(out)]
    assert len(div) == 6 and div[-1] < div[0], div
    assert json.loads((out / "manifest.json").read_text())["config"]["teacher_url"] == server.url + "/v1"


def test_served_teacher_with_another_tokenizer_is_refused(tmp_path, opd_env):
    from distill.tiny import build_model, build_tokenizer
    from tests.fake_vllm_teacher import ScoringServer

    build_tokenizer(
        tmp_path / "tok", corpus=["completely other words for another vocabulary"], vocab_size=300
    )
    server = ScoringServer(build_model(tmp_path / "other", tmp_path / "tok")).start()
    try:
        with pytest.raises(UserError, match="served teacher's tokenizer is not the student's"):
            onpolicy.run(opd_cfg(opd_env, tmp_path / "out", teacher=None, teacher_url=server.url))
    finally:
        server.stop()
    assert server.requests == 0
