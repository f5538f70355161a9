"""GPU memory planner for `distill train --plan`: estimates without loading any weights.

    distill train --student qwen2.5-math-7b --plan --max-length 8192 --gpu-memory 80 --num-processes 8

Per GPU, for each method (full, LoRA 16-bit, QLoRA 4-bit) and sharding (one GPU / DDP, ZeRO-2,
ZeRO-3 over N GPUs): weights + gradients + optimizer states + activations (with gradient
checkpointing: one saved hidden state per layer plus one layer recomputed) + logits + a fixed
framework overhead. Assumptions: bf16 weights and gradients, fp32 AdamW moments (8 bytes per
trainable parameter), LoRA adapters in fp32 (weights 4 + grads 4 + Adam 8 bytes), QLoRA NF4 with
double quantisation (~0.516 bytes per parameter) with embeddings and LM head left in bf16.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.cards import Architecture
from distill.errors import UserError

GB = 1e9
OVERHEAD_GB = 1.5  # CUDA context, allocator fragmentation, kernels workspace
NF4_BYTES = 0.516  # 4 bits + double-quantised absmax constants
METHODS = ("full", "lora", "qlora")
STRATEGIES = ("ddp", "zero2", "zero3")


@dataclass
class Estimate:
    method: str
    strategy: str
    gpus: int
    weights_gb: float
    gradients_gb: float
    optimizer_gb: float
    activations_gb: float
    total_gb: float

    def fits(self, gpu_gb: float) -> bool:
        return self.total_gb <= gpu_gb


def architecture_from_config(cfg: dict[str, Any]) -> Architecture:
    """An `Architecture` from a transformers config.json (parameter count computed when absent)."""
    cfg = cfg.get("text_config", cfg)
    try:
        h = int(cfg["hidden_size"])
        layers = int(cfg["num_hidden_layers"])
        heads = int(cfg["num_attention_heads"])
        kv = int(cfg.get("num_key_value_heads") or heads)
        inter = int(cfg["intermediate_size"])
        vocab = int(cfg["vocab_size"])
    except KeyError as e:
        raise UserError(f"config.json: missing field {e} needed by --plan") from None
    tie = bool(cfg.get("tie_word_embeddings", False))
    hd = int(cfg.get("head_dim") or h // heads)
    attn = h * heads * hd + 2 * h * kv * hd + heads * hd * h
    per_layer = attn + 3 * h * inter + 2 * h
    params = vocab * h * (1 if tie else 2) + layers * per_layer + h
    return Architecture(
        params_b=params / 1e9,
        hidden_size=h,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv,
        intermediate_size=inter,
        vocab_size=vocab,
        tie_embeddings=tie,
    )


def architecture_from_model(model: str) -> Architecture:
    """Read config.json from a local model folder or (config only) from the Hub."""
    path = Path(model)
    if path.is_dir():
        file = path / "config.json"
        if not file.exists():
            raise UserError(f"{path}: no config.json in this model folder")
    else:
        try:
            from huggingface_hub import hf_hub_download

            file = Path(hf_hub_download(model, "config.json"))
        except Exception as e:  # noqa: BLE001
            raise UserError(f"{model}: cannot read its config.json ({e})") from None
    try:
        return architecture_from_config(json.loads(file.read_text()))
    except ValueError as e:
        raise UserError(f"{file}: malformed config.json ({e})") from None


def lora_params(arch: Architecture, r: int) -> float:
    """Trainable parameters of LoRA rank r on every linear layer of every block."""
    h, i = arch.hidden_size, arch.intermediate_size
    hd = h // arch.num_heads
    q, kv = arch.num_heads * hd, arch.num_kv_heads * hd
    per_layer = (h + q) + 2 * (h + kv) + (q + h) + 2 * (h + i) + (i + h)
    return r * per_layer * arch.num_layers


def activations_gb(arch: Architecture, seq: int, batch: int, checkpointing: bool) -> float:
    """Activation memory (bf16) for one micro-batch, plus logits and their gradient."""
    h, layers = arch.hidden_size, arch.num_layers
    tokens = seq * batch
    per_layer_full = tokens * (34 * h + 4 * arch.intermediate_size)  # bytes, flash attention (no s^2 term)
    if checkpointing:
        act = layers * tokens * h * 2 + per_layer_full
    else:
        act = layers * per_layer_full
    logits = tokens * arch.vocab_size * 2 * 2  # bf16 logits and their gradient
    return (act + logits) / GB


def estimate(
    arch: Architecture,
    method: str,
    strategy: str = "ddp",
    gpus: int = 1,
    seq: int = 4096,
    batch: int = 1,
    lora_r: int = 64,
    checkpointing: bool = True,
) -> Estimate:
    """Estimated per-GPU memory for one method and sharding strategy."""
    if method not in METHODS:
        raise UserError(f"method: unknown '{method}' (expected {', '.join(METHODS)})")
    p = arch.params_b * 1e9
    if method == "full":
        weights, trainable = 2 * p, p
        grads, optim = 2 * trainable, 8 * trainable
    else:
        adapters = lora_params(arch, lora_r)
        if method == "lora":
            base = 2 * p
        else:
            embed = arch.vocab_size * arch.hidden_size * (1 if arch.tie_embeddings else 2)
            base = NF4_BYTES * (p - embed) + 2 * embed
        weights = base + 4 * adapters
        grads, optim = 4 * adapters, 8 * adapters
    n = max(1, gpus)
    if strategy in ("zero2", "zero3"):
        grads, optim = grads / n, optim / n
    if strategy == "zero3":
        weights = weights / n
    act = activations_gb(arch, seq, batch, checkpointing)
    total = (weights + grads + optim) / GB + act + OVERHEAD_GB
    return Estimate(method, strategy, n, weights / GB, grads / GB, optim / GB, act, total)


def plan(
    arch: Architecture,
    seq: int,
    batch: int = 1,
    lora_r: int = 64,
    gpus: int = 8,
    checkpointing: bool = True,
) -> list[Estimate]:
    """Every method on one GPU, then every method under ZeRO-2 and ZeRO-3 over `gpus` GPUs."""
    out = [estimate(arch, m, "ddp", 1, seq, batch, lora_r, checkpointing) for m in METHODS]
    if gpus > 1:
        for s in ("zero2", "zero3"):
            out += [estimate(arch, m, s, gpus, seq, batch, lora_r, checkpointing) for m in METHODS]
    return out


def recommend(estimates: list[Estimate], gpu_gb: float) -> Estimate | None:
    """The most capable setting that fits: full before LoRA before QLoRA, least sharding first."""
    for method in METHODS:
        for strategy in STRATEGIES:
            for e in estimates:
                if e.method == method and e.strategy == strategy and e.fits(gpu_gb):
                    return e
    return None


def format_plan(
    name: str, arch: Architecture, estimates: list[Estimate], gpu_gb: float, seq: int, chosen: str
) -> str:
    """A plain-text table for the console."""
    lines = [
        f"memory plan for {name}: {arch.params_b:.2f}B params, {arch.num_layers} layers, hidden "
        f"{arch.hidden_size}, vocab {arch.vocab_size}, max length {seq}, GPU {gpu_gb:g} GB",
        f"{'method':<7} {'sharding':<13} {'weights':>8} {'grads':>8} {'optim':>8} {'activ':>8} {'total':>8}  fits",
    ]
    for e in estimates:
        where = "1 GPU" if e.strategy == "ddp" else f"{e.strategy} x{e.gpus}"
        mark = "yes" if e.fits(gpu_gb) else "no"
        star = " <- --method" if e.method == chosen and e.strategy == "ddp" else ""
        lines.append(
            f"{e.method:<7} {where:<13} {e.weights_gb:>7.1f}G {e.gradients_gb:>7.1f}G {e.optimizer_gb:>7.1f}G "
            f"{e.activations_gb:>7.1f}G {e.total_gb:>7.1f}G  {mark}{star}"
        )
    best = recommend(estimates, gpu_gb)
    if best is None:
        lines.append(f"nothing fits a {gpu_gb:g} GB GPU at this length: lower --max-length or add GPUs")
    else:
        where = (
            "a single GPU (or DDP)"
            if best.strategy == "ddp"
            else f"DeepSpeed {best.strategy} over {best.gpus} GPUs"
        )
        lines.append(f"recommended: --method {best.method} on {where} ({best.total_gb:.1f} GB per GPU)")
    return "\n".join(lines)
