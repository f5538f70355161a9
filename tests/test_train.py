"""`distill train` end to end on tiny local models: lora, qlora, full, merge, resume, CLI, accelerate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from distill.errors import UserError
from distill.train import TrainConfig, run
from tests.test_train_data import trace, write_kept


@pytest.fixture(scope="module")
def kept(tmp_path_factory) -> str:
    return write_kept(tmp_path_factory.mktemp("data") / "kept", [trace(i) for i in range(4)])


@pytest.fixture(scope="module")
def student(tmp_path_factory, tiny_qwen) -> Path:
    """The tiny Qwen with embeddings scaled up, so a low-rank adapter can sharpen its logits quickly."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("student") / "qwen"
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(10)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_qwen).save_pretrained(out)
    return out


def cfg(student, data, out, **kw) -> TrainConfig:
    base = dict(
        student=str(student),
        data=data,
        output=str(out),
        batch_size=4,
        grad_accum=1,
        max_length=256,
        logging_steps=5,
        save_steps=1000,
        warmup_ratio=0.0,
        lora_r=16,
        lora_alpha=32,
        lora_dropout=0.0,
        cache_dir=str(Path(out).parent / "cache"),
    )
    base.update(kw)
    return TrainConfig(**base)


def read_log(out: Path) -> list[dict]:
    with open(out / "train_log.csv", newline="") as f:
        return list(csv.DictReader(f))


def greedy(model_dir: Path, prompt: str, max_new_tokens: int = 60) -> tuple[list[int], object]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    enc = tok.apply_chat_template(
        [{"role": "user", "content": prompt}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return out[0, enc["input_ids"].shape[1] :].tolist(), tok


def test_lora_loss_falls_and_merged_model_stops(tmp_path, student, kept):
    out = tmp_path / "lora"
    s = run(cfg(student, kept, out, method="lora", max_steps=80, learning_rate=1e-2, merge=True))
    assert s["steps"] == 80 and s["method"] == "lora"
    assert s["final_loss"] < 0.6 * s["first_loss"]
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
    rows = read_log(out)
    assert [int(r["step"]) for r in rows] == list(range(5, 81, 5))
    assert {"step", "epoch", "loss", "learning_rate", "tokens_per_s"} <= set(rows[0])
    assert float(rows[-1]["tokens_per_s"]) > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "train" and manifest["status"] == "done" and manifest["counts"]["kept"] == 4
    # the merged model is standalone: plain transformers, no peft, and it stops at <|im_end|>
    merged = out / "merged"
    assert not (merged / "adapter_config.json").exists()
    gen = json.loads((merged / "generation_config.json").read_text())
    new, tok = greedy(merged, "What is 4 + 3?")
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    assert gen["eos_token_id"] == eot
    assert new[-1] == eot and len(new) < 60
    assert tok.decode(new).startswith("<think>")


def test_qlora_4bit_trains_on_cpu(tmp_path, student, kept):
    out = tmp_path / "qlora"
    s = run(cfg(student, kept, out, method="qlora", max_steps=30, learning_rate=1e-2))
    assert s["final_loss"] < 0.8 * s["first_loss"]
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 16


def test_full_llama_card_trains_and_saves_eot(tmp_path, tiny_llama, kept):
    card = tmp_path / "students" / "tiny-llama.yaml"
    card.parent.mkdir()
    card.write_text(
        yaml.safe_dump(
            {
                "name": "tiny-llama",
                "model": str(tiny_llama),
                "architecture": dict(
                    params_b=0.0001,
                    hidden_size=32,
                    num_layers=2,
                    num_heads=4,
                    num_kv_heads=2,
                    intermediate_size=64,
                    vocab_size=400,
                ),
                "chat_template": "llama3",
                "eos_token": "<|eot_id|>",
                "method": "full",
                "learning_rate": 3e-3,
                "max_length": 256,
            }
        )
    )
    out = tmp_path / "full"
    s = run(cfg(card, kept, out, max_steps=30, learning_rate=None, max_length=None))
    assert s["method"] == "full" and s["eos_token"] == "<|eot_id|>"
    assert s["final_loss"] < 0.8 * s["first_loss"]
    assert (out / "model.safetensors").exists()
    tok_cfg = json.loads((out / "tokenizer_config.json").read_text())
    assert tok_cfg["eos_token"] == "<|eot_id|>"
    from transformers import AutoTokenizer

    eot = AutoTokenizer.from_pretrained(out).convert_tokens_to_ids("<|eot_id|>")
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == eot
    assert json.loads((out / "manifest.json").read_text())["config"]["learning_rate"] == 3e-3  # card value


class Crash(Exception):
    pass


def test_resume_continues_at_checkpoint_step(tmp_path, student, kept):
    from transformers import TrainerCallback

    class KillAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 7:
                raise Crash()

    out = tmp_path / "resume"
    c = cfg(
        student, kept, out, method="full", max_steps=12, save_steps=4, logging_steps=1, learning_rate=3e-3
    )
    with pytest.raises(Crash):
        run(c, callbacks=[KillAt()])
    assert (out / "checkpoints" / "checkpoint-4").exists()
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    s = run(c)
    assert s["resumed_from_step"] == 4 and s["steps"] == 12
    steps = [int(r["step"]) for r in read_log(out)]
    assert steps == list(range(1, 13))  # rows past the checkpoint were dropped, then continued
    # a finished run is not trained again; a changed config is refused; --overwrite starts afresh
    again = run(c)
    assert again["steps"] == 12 and again["resumed_from_step"] == 4
    with pytest.raises(UserError, match="different config"):
        run(cfg(student, kept, out, method="full", max_steps=12, save_steps=4, learning_rate=1e-3))
    fresh = run(cfg(student, kept, out, method="full", max_steps=3, overwrite=True, learning_rate=1e-3))
    assert fresh["steps"] == 3 and fresh["resumed_from_step"] == 0


def test_packing_modes(tmp_path, student, kept):
    # CPU (sdpa attention): length-grouped padded batches by default
    s = run(cfg(student, kept, tmp_path / "grouped", method="full", max_steps=3, learning_rate=1e-3))
    assert s["packing"] is False and 0.0 < s["padding_share"] < 0.5
    # forced padding-free packing: no padding at all (examples kept apart by position_ids)
    s = run(
        cfg(student, kept, tmp_path / "packed", method="full", max_steps=3, packing=True, learning_rate=1e-3)
    )
    assert s["packing"] is True and s["padding_share"] == 0.0


def test_foreign_output_folder_is_refused(tmp_path, student, kept):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not empty"):
        run(cfg(student, kept, out, method="full", max_steps=1))
    assert (out / "notes.txt").read_text() == "keep me"


def test_cli_train_and_errors(tmp_path, student, kept, run_cli):
    out = tmp_path / "cli"
    proc = run_cli(
        "train", "--student", student, "--input", kept, "--output", out, "--method", "full", "--max-steps", "3",
        "--batch-size", "2", "--max-length", "256", "--logging-steps", "1", "--cache-dir", tmp_path / "c",
        "--no-reasoning",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # one short line (the details are in the manifest), not a JSON dump; no library noise
    assert proc.stdout.strip().splitlines() == [
        f"distill train: 3 steps -> {out} (details: {out / 'manifest.json'})"
    ]
    summary = json.loads((out / "manifest.json").read_text())["summary"]
    assert summary["steps"] == 3 and (out / "model.safetensors").exists()
    assert "step 3/3 loss" in proc.stderr
    for noise in ("Loading weights", "Writing model shards", "FutureWarning", "pip install kernels"):
        assert noise not in proc.stderr, noise
    bad = run_cli(
        "train", "--student", student, "--input", tmp_path / "nope.jsonl", "--output", tmp_path / "x"
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("distill: error:")
    assert "nope.jsonl" in bad.stderr


@pytest.mark.slow
def test_accelerate_two_process_cpu(tmp_path, student, kept):
    out = tmp_path / "ddp"
    s = run(
        cfg(
            student, kept, out, method="full", max_steps=4, batch_size=2, learning_rate=1e-3,
            launcher="accelerate", accelerate_config="ddp", num_processes=2,
        )
    )  # fmt: skip
    assert s["processes"] == 2 and s["steps"] == 4
    assert (out / "model.safetensors").exists()
    assert json.loads((out / "manifest.json").read_text())["status"] == "done"


def test_gradient_checkpointing_with_lora(tmp_path, student, kept):
    s = run(
        cfg(
            student,
            kept,
            tmp_path / "gc",
            method="lora",
            max_steps=10,
            learning_rate=1e-2,
            gradient_checkpointing=True,
        )
    )
    assert s["gradient_checkpointing"] is True and s["final_loss"] < s["first_loss"]


def test_rows_the_guard_drops_are_counted_in_the_summary_and_manifest(tmp_path, student):
    stray = {**trace(9), "content": "The answer is 21.</think>"}  # a stray tag: dropped, not fatal
    cut = {**trace(8), "finish_reason": "length", "content": ""}  # unfinished: never trained
    data = write_kept(tmp_path / "kept", [trace(0), stray, trace(1), cut, trace(2)])
    out = tmp_path / "out"
    s = run(cfg(student, data, out, method="full", max_steps=1))
    assert (s["examples"], s["kept_examples"], s["dropped_guard"], s["dropped_unfinished"]) == (5, 3, 1, 1)
    assert s["think_block"] == "3 with the data's reasoning in one think block"
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["dropped_guard"] == 1 and len(counts["dropped_rows"]) == 2
    assert any("shard-00000.jsonl:2: more than one think block" in r for r in counts["dropped_rows"])
    assert any("shard-00000.jsonl:4: finish_reason=length" in r for r in counts["dropped_rows"])
