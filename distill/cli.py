"""The `distill` command line: one Typer command per pipeline stage.

    distill --help
    distill <stage> --help

Each command parses its options into the stage's config dataclass and calls the stage's entry
function. Heavy libraries (torch, transformers, trl, vllm) are imported inside the stages, so
`distill --help` answers at once. Errors a user can cause print one line and exit with status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from distill import __version__
from distill.errors import UserError

R = TypeVar("R")

app = typer.Typer(
    name="distill",
    help="Distil a reasoning teacher into small students: generate → filter → train → eval → push.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str) -> None:
    """Print one clear error line to stderr and exit with status 2."""
    print(f"distill: error: {message}", file=sys.stderr)
    raise typer.Exit(2)


def run_stage(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Call a stage entry function, turning a `UserError` into one line and exit status 2."""
    try:
        return fn(*args, **kwargs)
    except UserError as e:
        fail(str(e))
        raise  # unreachable


def _version(value: bool) -> None:
    if value:
        print(f"distill {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Distil a reasoning teacher into small students: generate → filter → train → eval → push."""


# ---------------------------------------------------------------------------- train


@app.command("train")
def train_cmd(
    student: Annotated[
        str,
        typer.Option(
            "--student", help="Student card (name or .yaml), a local model folder or a Hub model id."
        ),
    ],
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Training data: a kept/ folder of trace shards, a .jsonl, a .parquet with "
            "a 'messages' column, or a Hugging Face dataset id.",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Output folder (model/adapter, checkpoints/, train_log.csv)."),
    ] = None,
    method: Annotated[
        str | None, typer.Option("--method", help="lora | qlora | full (default: the card's, else lora).")
    ] = None,
    no_reasoning: Annotated[
        bool,
        typer.Option(
            "--no-reasoning", help="Train on answers only: the assistant turn without the think block."
        ),
    ] = False,
    max_steps: Annotated[
        int | None,
        typer.Option("--max-steps", help="Stop after this many optimizer steps (overrides --epochs)."),
    ] = None,
    epochs: Annotated[
        float | None, typer.Option("--epochs", help="Training epochs (default: the card's).")
    ] = None,
    learning_rate: Annotated[
        float | None,
        typer.Option(
            "--learning-rate", "--lr", help="Peak learning rate (default: card; else 1e-4 LoRA, 1e-5 full)."
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Per-device batch size (packed rows when packing).")
    ] = None,
    grad_accum: Annotated[
        int | None, typer.Option("--grad-accum", help="Gradient accumulation steps.")
    ] = None,
    max_length: Annotated[
        int | None, typer.Option("--max-length", help="Longest example in tokens (and packed row length).")
    ] = None,
    overlong: Annotated[
        str,
        typer.Option("--overlong", help="Examples over --max-length: drop (default, counted) or truncate."),
    ] = "drop",
    warmup_ratio: Annotated[
        float | None, typer.Option("--warmup-ratio", help="Share of steps for linear warm-up.")
    ] = None,
    lr_scheduler: Annotated[
        str | None, typer.Option("--lr-scheduler", help="cosine, linear, constant, ... (transformers names).")
    ] = None,
    weight_decay: Annotated[float | None, typer.Option("--weight-decay", help="AdamW weight decay.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (data order, LoRA init).")] = 42,
    save_steps: Annotated[
        int, typer.Option("--save-steps", help="Save a resumable checkpoint every N steps.")
    ] = 500,
    save_total_limit: Annotated[
        int, typer.Option("--save-total-limit", help="Keep at most this many checkpoints.")
    ] = 2,
    logging_steps: Annotated[
        int, typer.Option("--logging-steps", help="Log loss, lr and tokens/s every N steps.")
    ] = 10,
    packing: Annotated[
        bool | None,
        typer.Option(
            "--packing/--no-packing",
            help="Padding-free packing, examples kept apart by position ids (default: on with "
            "FlashAttention; else length-grouped batches, cheaper with dense attention).",
        ),
    ] = None,
    lora_r: Annotated[
        int | None, typer.Option("--lora-r", help="LoRA rank (default: the card's, 64).")
    ] = None,
    lora_alpha: Annotated[
        int | None, typer.Option("--lora-alpha", help="LoRA alpha (default: the card's, 128).")
    ] = None,
    lora_dropout: Annotated[float | None, typer.Option("--lora-dropout", help="LoRA dropout.")] = None,
    lora_targets: Annotated[
        list[str] | None,
        typer.Option("--lora-target", help="Module to adapt (repeatable; default: all linear layers)."),
    ] = None,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge", help="After LoRA/QLoRA, also write a standalone merged model to <output>/merged."
        ),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Clear an existing output folder and train afresh.")
    ] = False,
    plan: Annotated[
        bool, typer.Option("--plan", help="Print the estimated GPU memory per method / ZeRO stage and exit.")
    ] = False,
    gpu_memory: Annotated[float, typer.Option("--gpu-memory", help="GPU size in GB for --plan.")] = 80.0,
    launcher: Annotated[
        str, typer.Option("--launcher", help="none (this process) or accelerate (multi-GPU / multi-node).")
    ] = "none",
    accelerate_config: Annotated[
        str | None,
        typer.Option(
            "--accelerate-config", help="ddp | zero2 | zero3 | fsdp2 or a path to an accelerate YAML."
        ),
    ] = None,
    num_processes: Annotated[
        int | None,
        typer.Option("--num-processes", help="Processes (GPUs) for --launcher accelerate; GPUs for --plan."),
    ] = None,
    report_to: Annotated[
        str, typer.Option("--report-to", help="none, wandb, tensorboard, ... (passed to transformers).")
    ] = "none",
    chat_template: Annotated[
        str | None, typer.Option("--chat-template", help="chatml | llama3 | model (default: the card's).")
    ] = None,
    eos_token: Annotated[
        str | None, typer.Option("--eos-token", help="End-of-turn token the model learns to stop on.")
    ] = None,
    gradient_checkpointing: Annotated[
        bool | None,
        typer.Option(
            "--gradient-checkpointing/--no-gradient-checkpointing",
            help="Recompute activations (default: on, off for models under 100M params).",
        ),
    ] = None,
    bf16: Annotated[
        bool | None,
        typer.Option("--bf16/--fp32", help="Precision (default: bf16 on a GPU that supports it)."),
    ] = None,
    cache_dir: Annotated[
        str | None,
        typer.Option("--cache-dir", help="Tokenization cache (default: $DISTILL_CACHE or ~/.cache/distill)."),
    ] = None,
) -> None:
    """Supervised fine-tuning of a student on kept traces (TRL): LoRA, QLoRA or full."""
    import logging

    from distill.train import TrainConfig, run

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    config = TrainConfig(
        student=student,
        data=data,
        output=output,
        method=method,
        no_reasoning=no_reasoning,
        max_steps=max_steps,
        epochs=epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        grad_accum=grad_accum,
        max_length=max_length,
        overlong=overlong,
        warmup_ratio=warmup_ratio,
        lr_scheduler=lr_scheduler,
        weight_decay=weight_decay,
        seed=seed,
        save_steps=save_steps,
        save_total_limit=save_total_limit,
        logging_steps=logging_steps,
        packing=packing,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        lora_targets=lora_targets or None,
        merge=merge,
        overwrite=overwrite,
        plan=plan,
        gpu_memory=gpu_memory,
        launcher=launcher,
        accelerate_config=accelerate_config,
        num_processes=num_processes,
        report_to=report_to,
        chat_template=chat_template,
        eos_token=eos_token,
        gradient_checkpointing=gradient_checkpointing,
        bf16=bf16,
        cache_dir=cache_dir,
    )
    summary = run_stage(run, config)
    if not plan and summary:
        import json

        print(json.dumps(summary, indent=2))
