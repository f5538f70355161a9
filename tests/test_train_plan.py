"""`distill train --plan`: memory estimates against published figures, no weights loaded."""

from __future__ import annotations

import json

import pytest
import yaml

from distill.train import TrainConfig, run
from distill.train_plan import architecture_from_model, estimate, plan, recommend

# the six R1-Distill bases: (model, params_b, hidden, layers, heads, kv heads, intermediate, vocab, tied)
SIX = {
    "qwen2.5-math-1.5b": ("Qwen/Qwen2.5-Math-1.5B", 1.54, 1536, 28, 12, 2, 8960, 151936, True),
    "qwen2.5-math-7b": ("Qwen/Qwen2.5-Math-7B", 7.62, 3584, 28, 28, 4, 18944, 152064, False),
    "llama-3.1-8b": ("meta-llama/Llama-3.1-8B", 8.03, 4096, 32, 32, 8, 14336, 128256, False),
    "qwen2.5-14b": ("Qwen/Qwen2.5-14B", 14.77, 5120, 48, 40, 8, 13824, 152064, False),
    "qwen2.5-32b": ("Qwen/Qwen2.5-32B", 32.76, 5120, 64, 40, 8, 27648, 152064, False),
    "llama-3.3-70b": ("meta-llama/Llama-3.3-70B-Instruct", 70.55, 8192, 80, 64, 8, 28672, 128256, False),
}
# GB at short context (2k), batch 1, LoRA r 64, gradient checkpointing. Ranges from the anchors'
# published hardware tables (LLaMA-Factory: 7B full 60-120 GB, LoRA 16 GB, QLoRA-4bit 6 GB; 14B
# 120-240 / 32 / 12; 30B 300-600 / 64 / 24; 70B 600-1200 / 160 / 48), with room for activations.
RANGES = {
    "qwen2.5-math-1.5b": {"full": (12, 30), "lora": (4, 10), "qlora": (2.5, 7)},
    "qwen2.5-math-7b": {"full": (60, 120), "lora": (16, 24), "qlora": (5, 14)},
    "llama-3.1-8b": {"full": (65, 130), "lora": (17, 26), "qlora": (6, 15)},
    "qwen2.5-14b": {"full": (120, 240), "lora": (32, 45), "qlora": (12, 24)},
    "qwen2.5-32b": {"full": (300, 600), "lora": (64, 95), "qlora": (24, 42)},
    "llama-3.3-70b": {"full": (600, 1200), "lora": (150, 200), "qlora": (45, 75)},
}


def write_card(folder, name: str) -> str:
    model, p, h, n, a, kv, i, v, tie = SIX[name]
    arch = dict(
        params_b=p,
        hidden_size=h,
        num_layers=n,
        num_heads=a,
        num_kv_heads=kv,
        intermediate_size=i,
        vocab_size=v,
        tie_embeddings=tie,
    )
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "model": model, "architecture": arch, "max_length": 2048}))
    return str(path)


@pytest.mark.parametrize("name", list(SIX))
def test_plan_within_published_ranges(tmp_path, name, capsys):
    card = write_card(tmp_path, name)
    result = run(TrainConfig(student=card, plan=True, gpu_memory=80, num_processes=1))
    out = capsys.readouterr().out
    assert f"memory plan for {name}" in out and ("recommended:" in out or "nothing fits" in out)
    by_method = {e["method"]: e["total_gb"] for e in result["estimates"] if e["strategy"] == "ddp"}
    for method, (lo, hi) in RANGES[name].items():
        assert lo <= by_method[method] <= hi, (name, method, by_method[method])
    assert by_method["qlora"] < by_method["lora"] < by_method["full"]


def test_plan_recommends_what_fits():
    model, p, h, n, a, kv, i, v, tie = SIX["qwen2.5-math-7b"]
    from distill.cards import Architecture

    arch = Architecture(p, h, n, a, kv, i, v, tie)
    one = plan(arch, 2048, gpus=1)
    assert recommend(one, 24).method == "lora"  # LoRA 16-bit fits a 24 GB card, full does not
    assert recommend(one, 16).method == "qlora"
    assert recommend(one, 8) is None
    eight = plan(arch, 2048, gpus=8)
    best = recommend(eight, 80)
    assert (best.method, best.strategy) == ("full", "zero2")  # full FT of 7B on 8x80GB with ZeRO-2
    z3 = estimate(arch, "full", "zero3", 8, 2048)
    z2 = estimate(arch, "full", "zero2", 8, 2048)
    assert z3.weights_gb == pytest.approx(z2.weights_gb / 8)
    # longer context needs more activation memory
    assert (
        estimate(arch, "lora", seq=32768).activations_gb > 4 * estimate(arch, "lora", seq=4096).activations_gb
    )


def test_plan_from_model_folder_counts_params(tiny_qwen, capsys):
    import torch  # noqa: F401
    from transformers import AutoModelForCausalLM

    arch = architecture_from_model(str(tiny_qwen))
    real = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_qwen).parameters())
    biases = 0  # qwen2 q/k/v biases are not counted by the planner
    cfg = json.loads((tiny_qwen / "config.json").read_text())
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    biases = cfg["num_hidden_layers"] * hd * (cfg["num_attention_heads"] + 2 * cfg["num_key_value_heads"])
    assert arch.params_b * 1e9 == pytest.approx(real - biases, rel=1e-6)
    result = run(TrainConfig(student=str(tiny_qwen), plan=True, max_length=512))
    assert result["recommended"]["method"] == "full"


def test_plan_cli(tmp_path, run_cli):
    card = write_card(tmp_path, "qwen2.5-math-7b")
    proc = run_cli("train", "--student", card, "--plan", "--gpu-memory", "24", "--num-processes", "1")
    assert proc.returncode == 0, proc.stderr
    assert "recommended: --method lora" in proc.stdout
