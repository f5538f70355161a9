"""The SFT stage: train a Qwen/Llama student on kept traces with LoRA, QLoRA or full fine-tuning (TRL).

    distill train --student qwen2.5-math-1.5b -i runs/kept --method lora --output runs/student
    distill train --student ./my-model -i kept.parquet --method full --output out --max-steps 400
    distill train --student qwen2.5-math-7b --plan --gpu-memory 80          # memory plan, no weights
    distill train ... --launcher accelerate --accelerate-config zero3 --num-processes 8

From Python: `run(TrainConfig(student=..., data=..., output=...)) -> dict` (the summary).

Output folder: the final model (or LoRA adapter) at the root with its tokenizer and
generation_config (eos = the card's end-of-turn token), `checkpoints/` (resume points),
`merged/` (with --merge), `train_log.csv` (step, epoch, loss, learning_rate, tokens_per_s, ...)
and `manifest.json`. A re-run in the same output resumes from the last checkpoint; a finished
output is left as is (returns its summary); a different config is refused unless --overwrite.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill import cards as cards
from distill import records
from distill.configs import TrainConfig
from distill.errors import UserError
from distill.ingest import ReadOptions

log = logging.getLogger("distill.train")

METHODS = ("lora", "qlora", "full")
LAUNCHERS = ("none", "accelerate")
ACCELERATE_CONFIGS = {
    name: Path(__file__).resolve().parent / "accelerate_configs" / f"{name}.yaml"
    for name in ("ddp", "zero2", "zero3", "fsdp2")
}
# Packing is padding-free: a batch is flattened into one sequence and examples are kept apart by
# position_ids. With FlashAttention (varlen kernels) each example costs only its own attention, so
# that is the default there. With sdpa/eager these model types still keep examples apart (a
# block-diagonal mask built from position_ids) but pay dense attention over the whole flattened
# batch, so the default there is length-grouped padded batches; --packing forces packing.
PACKING_MODEL_TYPES = {
    "qwen2",
    "qwen3",
    "qwen2_moe",
    "qwen3_moe",
    "llama",
    "mistral",
    "mixtral",
    "gemma",
    "gemma2",
    "phi3",
    "olmo2",
    "granite",
}
LOG_COLUMNS = [
    "step",
    "epoch",
    "loss",
    "learning_rate",
    "grad_norm",
    "tokens_per_s",
    "train_tokens",
    "time_s",
]
# config fields that change nothing in the trained model (ignored when checking a resume)
RUNTIME_FIELDS = (
    "overwrite",
    "plan",
    "gpu_memory",
    "launcher",
    "accelerate_config",
    "num_processes",
    "report_to",
    "cache_dir",
    "merge",
    "logging_steps",
    "allow_unfiltered",  # unfinished traces are dropped either way
    "show_example",
    "allow_unformatted",
)

# fields added after the first release: absent from a manifest while at their default, so older runs resume
NEW_FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in (
    "objective", "teacher", "teacher_url", "teacher_top_k", "prompts", "prompt_template", "beta",
    "max_new_tokens", "temperature", "allow_unformatted", "kd_weight")}  # fmt: skip
OBJECTIVES = ("sft", "opd")


# ---------------------------------------------------------------------------- resolving


def resolve_student(student: str) -> tuple[cards.StudentCard | None, str]:
    """(card or None, model path/id) for a card name/path, a local model folder or a Hub id.

    Decided locally first (`distill.resolve`): a missing folder or a mistyped card name is one
    line at once; a Hub id is checked on the Hub (or in the cache offline) in seconds.
    """
    from distill.resolve import check_hub, locate

    kind = locate(student, "--student", cards="students", what="model folder")
    p = Path(student)
    if kind == "card" or p.suffix in (".yaml", ".yml"):
        card = cards.load_student(student)
        return card, card.model
    if kind == "local" and not p.is_dir():
        raise UserError(f"--student {student}: not a model folder and not a student card")
    if kind == "hub":
        check_hub(student, "--student", local="a local model folder or a student card")
    return None, student


def resolve(config: TrainConfig) -> tuple[TrainConfig, cards.StudentCard | None, str]:
    """Fill every None from the student card (or defaults) and validate; returns (resolved, card, model)."""
    card, model = resolve_student(config.student)
    base = card or cards.StudentCard(
        name=Path(model).name,
        model=model,
        architecture=cards.Architecture(0, 0, 0, 0, 0, 0, 0),
        chat_template="model",
        eos_token="",
    )
    method = config.method or (base.method if card else "lora")
    if method not in METHODS:
        raise UserError(f"--method: unknown '{method}' (expected {', '.join(METHODS)})")
    if card:
        lr = base.learning_rate
    else:
        lr = 1e-5 if method == "full" else 1e-4
    targets = base.lora.target_modules
    r = dataclasses.replace(
        config,
        method=method,
        epochs=config.epochs if config.epochs is not None else base.epochs,
        learning_rate=config.learning_rate if config.learning_rate is not None else lr,
        batch_size=config.batch_size or base.per_device_batch_size,
        grad_accum=config.grad_accum or base.gradient_accumulation_steps,
        max_length=config.max_length or base.max_length,
        warmup_ratio=config.warmup_ratio if config.warmup_ratio is not None else base.warmup_ratio,
        lr_scheduler=config.lr_scheduler or base.lr_scheduler,
        weight_decay=config.weight_decay if config.weight_decay is not None else base.weight_decay,
        lora_r=config.lora_r or base.lora.r,
        lora_alpha=config.lora_alpha or base.lora.alpha,
        lora_dropout=config.lora_dropout if config.lora_dropout is not None else base.lora.dropout,
        lora_targets=config.lora_targets or ([targets] if isinstance(targets, str) else list(targets)),
        chat_template=config.chat_template or base.chat_template,
        eos_token=config.eos_token or (base.eos_token if card else None),
        max_steps=config.max_steps if config.max_steps is not None else -1,
        accelerate_config=config.accelerate_config or (base.accelerate_config if card else "ddp"),
    )
    if r.overlong not in ("drop", "truncate"):
        raise UserError(f"--overlong: unknown '{r.overlong}' (drop | truncate)")
    if r.launcher not in LAUNCHERS:
        raise UserError(f"--launcher: unknown '{r.launcher}' (expected {', '.join(LAUNCHERS)})")
    if r.chat_template not in ("chatml", "llama3", "model"):
        raise UserError(f"--chat-template: unknown '{r.chat_template}' (chatml | llama3 | model)")
    if r.objective not in OBJECTIVES:
        raise UserError(f"--objective: unknown '{r.objective}' (expected {', '.join(OBJECTIVES)})")
    if r.kd_weight < 0:
        raise UserError(f"--kd-weight {r.kd_weight}: must be >= 0")
    if not r.plan:
        if r.objective == "opd" and not r.prompts:
            raise UserError("--objective opd needs --prompts (the prompts the student samples on)")
        if r.objective == "sft" and not r.data:
            raise UserError("--input is required (a kept/ folder, .jsonl, .parquet or dataset id)")
        if not r.output and r.show_example is None:
            raise UserError("--output is required")
        if r.max_steps <= 0 and (r.epochs or 0) <= 0:
            raise UserError("--epochs must be > 0 (or give --max-steps)")
    return r, card, model


def manifest_config(resolved: TrainConfig) -> dict[str, Any]:
    d = dataclasses.asdict(resolved)
    for k in RUNTIME_FIELDS:
        d.pop(k, None)
    if not d.get("all_turns"):  # absent when off: runs from before the option still resume
        d.pop("all_turns", None)
    if d.get("read") == dataclasses.asdict(ReadOptions()):  # the same for the default read options
        d.pop("read", None)
    for k, default in NEW_FIELD_DEFAULTS.items():
        if d.get(k) == default:
            d.pop(k, None)
    for key in ("data", "student", "prompts"):  # a local path, relative or absolute, is the same input
        value = d.get(key)
        if value and Path(value).expanduser().exists():
            d[key] = str(Path(value).expanduser().resolve())
    return d


# ---------------------------------------------------------------------------- plan


def run_plan(config: TrainConfig) -> dict[str, Any]:
    """Print the memory plan (no weights loaded) and return it."""
    from distill import train_plan

    r, card, model = resolve(config)
    if card is not None and card.architecture.params_b > 0:
        arch, name = card.architecture, card.name
    else:
        arch, name = train_plan.architecture_from_model(model), model
    gpus = r.num_processes or 8
    ckpt = r.gradient_checkpointing is not False
    estimates = train_plan.plan(arch, r.max_length, r.batch_size, r.lora_r, gpus, ckpt)
    print(train_plan.format_plan(name, arch, estimates, r.gpu_memory, r.max_length, r.method))
    best = train_plan.recommend(estimates, r.gpu_memory)
    return {
        "student": name,
        "max_length": r.max_length,
        "gpu_memory": r.gpu_memory,
        "estimates": [dataclasses.asdict(e) for e in estimates],
        "recommended": dataclasses.asdict(best) if best else None,
    }


# ---------------------------------------------------------------------------- show an example


def show_example(config: TrainConfig) -> dict[str, Any]:
    """Print example `config.show_example` (0-based, over the examples training would use) as the
    student sees it, trained tokens between ⟦ and ⟧, with the template guard's verdict; no training."""
    from transformers import AutoTokenizer

    from distill import train_data

    r, _, model_id = resolve(config)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_id)
    except OSError as e:
        raise UserError(f"--student {model_id}: cannot load the tokenizer ({e})") from None
    eos = train_data.apply_chat_settings(tokenizer, r.chat_template, r.eos_token)
    rows = train_data.load_rows(r.data, with_reasoning=not r.no_reasoning, read=r.read)
    rows, cut = train_data.finished_rows(rows, r.data, r.allow_unfiltered)
    n = int(r.show_example or 0)
    if not rows:
        raise UserError(
            f"--show-example {n}: {r.data} has 0 trainable examples: all {len(cut)} are unfinished traces "
            f"({train_data.reason_counts(train_data.unfinished_counts(cut))}), e.g. {cut[0].where}"
        )
    if not 0 <= n < len(rows):
        raise UserError(
            f"--show-example {n}: {r.data} has {len(rows)} trainable examples (0..{len(rows) - 1})"
        )
    row = rows[n]
    ex = train_data.tokenize_example(row.messages, tokenizer, r.all_turns)
    why = train_data.check_example(row.messages, ex, tokenizer)
    think = {
        "data": "the data's reasoning",
        "template": "an empty one the chat template writes itself",
        "none": "none (answer-only)",
    }[train_data.think_source(row.messages, ex)]
    plain = train_data.plain_specials(ex)
    fits = (
        ""
        if len(ex.input_ids) <= r.max_length
        else f"; longer than --max-length {r.max_length}: {r.overlong}"
    )
    print(
        f"example {n} of {len(rows)} ({row.where}); chat template {r.chat_template}, end of turn {eos!r}\n"
        f"{len(ex.input_ids)} tokens, {ex.n_trainable} trained (between {train_data.TRAINED_OPEN} and "
        f"{train_data.TRAINED_CLOSE}); think block: {think}{fits}\n"
        f"template guard: {'ok' if why is None else 'drops this row: ' + why}"
        + "".join(f"\n{k} x {t!r} in the messages: plain text, not the token" for t, k in plain.items())
        + (f"\n({len(cut)} unfinished traces are left out of the count)" if cut else "")
        + "\n"
        + "-" * 40
    )
    print(train_data.show(ex, tokenizer))
    return {
        "example": n,
        "where": row.where,
        "tokens": len(ex.input_ids),
        "trained_tokens": ex.n_trainable,
        "guard": why or "ok",
    }


# ---------------------------------------------------------------------------- launcher


def _check_data(data: str | None) -> None:
    """Fail at once when --input is a local folder or .jsonl that holds no records."""
    path = Path(data or "")
    files = records.shard_paths(path) if path.is_dir() else [path] if path.suffix == ".jsonl" else []
    if files and all(f.is_file() for f in files) and not records.has_lines(files):
        raise UserError(
            f"--input {data}: no training examples (empty); did the filter keep any? (see funnel.json)"
        )


def _launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 or "ACCELERATE_MIXED_PRECISION" in os.environ


def _checkpointing_arg(config_cls: Any) -> str:
    """`activation_checkpointing` (newer transformers 5), else its older name `gradient_checkpointing`."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def common_trainer_args(r: TrainConfig, config_cls: Any, bf16: bool, ckpt: bool) -> dict[str, Any]:
    """The TrainingArguments fields every objective (SFT, on-policy) sets the same way from `r`;
    `config_cls` (SFTConfig, DistillationConfig) names the checkpointing field."""
    import torch

    return dict(
        per_device_train_batch_size=r.batch_size,
        gradient_accumulation_steps=r.grad_accum,
        learning_rate=r.learning_rate,
        num_train_epochs=r.epochs or 1.0,
        max_steps=r.max_steps,
        warmup_steps=r.warmup_ratio if (r.warmup_ratio or 0) < 1 else int(r.warmup_ratio),
        lr_scheduler_type=r.lr_scheduler,
        weight_decay=r.weight_decay,
        logging_steps=r.logging_steps,
        save_steps=r.save_steps,
        save_total_limit=r.save_total_limit,
        seed=r.seed,
        bf16=bf16,
        fp16=False,
        **{_checkpointing_arg(config_cls): ckpt},
        report_to=r.report_to if r.report_to != "none" else "none",
        dataloader_num_workers=0,
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
    )


def _check_deepspeed(name: str, config_file: Path) -> None:
    """An accelerate config that uses DeepSpeed (zero2, zero3, ...) needs the package: say so at once."""
    import importlib.util

    text = config_file.read_text(encoding="utf-8")
    if "DEEPSPEED" in text or "deepspeed_config" in text:
        if importlib.util.find_spec("deepspeed") is None:
            raise UserError(
                f"--accelerate-config {name} needs DeepSpeed: pip install -e '.[deepspeed]' in the distill "
                "checkout (or choose ddp / fsdp2)"
            )


def launch(resolved: TrainConfig, module: str = "distill.train") -> dict[str, Any]:
    """Run `module` (its `main(spec.json)`) under `accelerate launch` with a packaged (or given) config;
    return its summary."""
    name = resolved.accelerate_config or "ddp"
    cfg_path = ACCELERATE_CONFIGS.get(name, Path(name))
    if not cfg_path.exists():
        raise UserError(
            f"--accelerate-config: '{name}' is neither {', '.join(ACCELERATE_CONFIGS)} nor an existing file"
        )
    _check_deepspeed(name, cfg_path)
    out = Path(resolved.output or ".")
    out.mkdir(parents=True, exist_ok=True)
    child = dataclasses.replace(resolved, launcher="none")
    spec = out / ".launch-config.json"
    records.atomic_write_json(spec, dataclasses.asdict(child))
    import torch

    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cfg_path)]
    if resolved.num_processes:
        cmd += ["--num_processes", str(resolved.num_processes)]
    if not torch.cuda.is_available():  # CPU data-parallel over gloo (tests, laptops)
        cmd += ["--mixed_precision", "no"]
    cmd += ["-m", module, str(spec)]
    log.info("launching: %s", " ".join(cmd))
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        raise UserError(f"accelerate launch failed (exit {proc.returncode}); see the log above")
    manifest = records.read_manifest(out) or {}
    return manifest.get("summary", {})


# ---------------------------------------------------------------------------- callbacks


class CountingCollator:
    """Wraps the trainer's collator to count real and total (padded) tokens per process."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.real = 0
        self.total = 0

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.inner(examples)
        self.real += sum(len(e["input_ids"]) for e in examples)
        self.total += int(batch["input_ids"].numel())
        return batch

    @property
    def padding_share(self) -> float:
        return 1.0 - self.real / self.total if self.total else 0.0


def _make_callbacks(
    out: Path,
    counter: CountingCollator,
    world: int,
    resume_step: int,
    total_steps_hint: int,
    extra_columns: tuple[str, ...] = (),
):
    columns = LOG_COLUMNS + list(extra_columns)  # extra: logged metrics (e.g. the KD loss terms)

    from transformers import TrainerCallback

    class LogCallback(TrainerCallback):
        """Loss, learning rate and tokens/s to the console (stderr) and `train_log.csv`."""

        def __init__(self) -> None:
            self.path = out / "train_log.csv"
            self.last_t = time.time()
            self.last_tokens = 0
            self.t0 = time.time()
            self.rows = 0
            self.progress = None
            self.task = None

        def on_train_begin(self, args, state, control, **kw):
            if not state.is_world_process_zero:
                return
            _restart_log(self.path, columns, resume_step)
            self.last_t = time.time()
            self.last_tokens = counter.real
            self.progress = _progress_bar()
            self.progress.start()
            self.task = self.progress.add_task(
                "train", total=state.max_steps, completed=state.global_step, info=""
            )

        def on_step_end(self, args, state, control, **kw):
            if self.progress is not None:
                self.progress.update(self.task, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kw):
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return
            now = time.time()
            tokens = counter.real
            tps = (tokens - self.last_tokens) * world / max(now - self.last_t, 1e-9)
            self.last_t, self.last_tokens = now, tokens
            row = _log_row(state, logs, tps, tokens * world, now - self.t0, extra_columns)
            with open(self.path, "a", newline="") as f:
                f.write(",".join(str(row[c]) for c in columns) + "\n")
            msg = (
                f"step {state.global_step}/{state.max_steps} loss {float(row['loss']):.4f} "
                f"lr {float(row['learning_rate'] or 0):.2e} tok/s {tps:,.0f}"
            )
            if self.progress is not None and not self.progress.disable:
                self.progress.update(self.task, info=msg)
            log.info(msg)

        def on_train_end(self, args, state, control, **kw):
            if self.progress is not None:
                self.progress.stop()

    return [LogCallback()]


def _log_row(
    state: Any, logs: dict[str, Any], tps: float, tokens: int, seconds: float, extra: tuple[str, ...]
) -> dict[str, Any]:
    """One `train_log.csv` row: the step, the logged metrics, throughput (all processes) and time."""
    row = {
        "step": state.global_step,
        "epoch": round(state.epoch or 0.0, 4),
        "loss": logs.get("loss"),
        "learning_rate": logs.get("learning_rate"),
        "grad_norm": logs.get("grad_norm", ""),
        "tokens_per_s": round(tps, 1),
        "train_tokens": tokens,
        "time_s": round(seconds, 2),
    }
    row.update({c: logs.get(c, "") for c in extra})
    return row


def _restart_log(path: Path, columns: list[str], resume_step: int) -> None:
    """Rewrite `train_log.csv` with its header and, on a resume, the rows up to `resume_step`."""
    kept = []
    if path.exists() and resume_step > 0:
        with open(path, newline="") as f:
            kept = [row for row in csv.DictReader(f) if int(float(row["step"])) <= resume_step]
    buf = [",".join(columns)] + [",".join(str(row.get(c, "")) for c in columns) for row in kept]
    records.atomic_write_text(path, "\n".join(buf) + "\n")


def _progress_bar() -> Any:
    """A rich progress bar on stderr (steps done of all, ETA, the last log line); off when not a tty."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("train"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=Console(stderr=True),
        transient=True,
        disable=not sys.stderr.isatty(),
    )


# ---------------------------------------------------------------------------- model


GROUP_BY_LENGTH_ABOVE = 0.25


def random_padding_share(input_ids: Any, batch_size: int, seed: int = 0) -> float:
    """Share of padding when examples are batched at random (measured on one seeded shuffle).

    Length-grouped batches only pay off when this is large: on data whose length tracks its content
    (a synthetic task, one source), grouping makes every batch alike and slows learning a lot.
    """
    import random

    lengths = [len(x) for x in input_ids]
    random.Random(seed).shuffle(lengths)
    real = total = 0
    for i in range(0, len(lengths), max(batch_size, 1)):
        chunk = lengths[i : i + batch_size]
        real += sum(chunk)
        total += max(chunk) * len(chunk)
    return 1.0 - real / total if total else 0.0


def _load_model(model_id: str, method: str, bf16: bool, tokenizer: Any):
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = torch.bfloat16 if bf16 else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype}
    if torch.cuda.is_available():
        try:
            import flash_attn  # noqa: F401

            kwargs["attn_implementation"] = "flash_attention_2"
        except ImportError:
            pass
    if method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_quant_storage=dtype,
        )
        if torch.cuda.is_available():
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    try:
        model = AutoModelForCausalLM.from_pretrained(model_id, **kwargs)
    except OSError as e:
        raise UserError(f"--student {model_id}: cannot load the model ({e})") from None
    emb = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > emb:
        model.resize_token_embeddings(len(tokenizer))
    return model


def _generation_config(model_id: str, eos_id: int, pad_id: int | None):
    from transformers import GenerationConfig

    try:
        gen = GenerationConfig.from_pretrained(model_id)
    except Exception:  # noqa: BLE001 - a model without generation_config.json
        gen = GenerationConfig()
    gen.eos_token_id = eos_id
    gen.pad_token_id = pad_id
    return gen


def merge_adapter(out: Path, model_id: str, tokenizer: Any, gen: Any, bf16: bool) -> Path:
    """Write `<out>/merged/`: the base (unquantised) with the adapter merged in, standalone."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_id, dtype=torch.bfloat16 if bf16 else torch.float32)
    if len(tokenizer) > base.get_input_embeddings().weight.shape[0]:
        base.resize_token_embeddings(len(tokenizer))
    merged = PeftModel.from_pretrained(base, str(out)).merge_and_unload()
    merged.config.eos_token_id = gen.eos_token_id
    merged.generation_config = gen
    target = out / "merged"
    tmp = out / ".merged.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def last_checkpoint(folder: Path) -> Path | None:
    """The highest-numbered complete checkpoint (trainer_state.json is written last)."""
    if not folder.is_dir():
        return None
    cands = []
    for p in folder.iterdir():
        if p.is_dir() and p.name.startswith("checkpoint-") and (p / "trainer_state.json").exists():
            try:
                cands.append((int(p.name.split("-")[1]), p))
            except ValueError:
                continue
    return max(cands)[1] if cands else None


def _prepare_output(out: Path, cfg: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """Refuse foreign folders and changed configs; clear with --overwrite. Returns the old manifest."""
    manifest = records.read_manifest(out)
    if out.exists() and any(out.iterdir()) and manifest is None:
        leftovers = {p.name for p in out.iterdir()} - {".launch-config.json"}
        if leftovers:
            raise UserError(
                f"{out}: folder is not empty and holds no distill manifest; choose another --output"
            )
    same = records.check_manifest(out, "train", cfg, overwrite=overwrite)
    if manifest is not None and (overwrite or not same):  # --overwrite: start afresh
        for p in out.iterdir():
            if p.name == ".launch-config.json":
                continue
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        return None
    return manifest


# ---------------------------------------------------------------------------- entry


def run(config: TrainConfig, callbacks: list[Any] | None = None) -> dict[str, Any]:
    """Train (or resume, or plan); returns the summary dict also stored in manifest.json."""
    if config.plan:
        return run_plan(config)
    if config.objective != "sft":
        raise UserError(f"--objective {config.objective}: run it with distill.onpolicy.run (the CLI does)")
    if config.show_example is not None:
        return show_example(config)
    _check_data(config.data)
    resolved, card, model_id = resolve(config)
    if card is not None and not Path(model_id).exists():  # the card's weights come from the Hub
        from distill.resolve import check_hub

        check_hub(model_id, "--student", local="a local model folder", card=card.name)
    if resolved.launcher == "accelerate" and not _launched():
        out = Path(resolved.output)
        if out.exists():
            _prepare_output(out, manifest_config(resolved), resolved.overwrite)
        return launch(dataclasses.replace(resolved, overwrite=False))
    return _train(resolved, card, model_id, callbacks or [])


def _train(
    r: TrainConfig, card: cards.StudentCard | None, model_id: str, callbacks: list[Any]
) -> dict[str, Any]:
    """The recipe: claim the output folder → tokenizer → data → model → trainer → train → save."""
    # bitsandbytes' CPU backend warns on import that it cannot fetch an optional kernel from the Hub
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    import transformers  # noqa: F401 - imported first, so that quiet_transformers finds it
    from accelerate import PartialState

    from distill.noise import quiet_transformers

    quiet_transformers()
    state = PartialState()
    out = Path(r.output)
    cfg = manifest_config(r)
    old = claim_output(state, out, cfg, r.overwrite)
    if old and old.get("status") == "done":
        return _finished_run(r, out, cfg, model_id, old, state.is_main_process)

    tokenizer, eos = _load_tokenizer(r, model_id)
    data = _build_data(r, tokenizer, state)
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        counts = dataclasses.asdict(data.stats)
        records.write_manifest(out, "train", cfg, inputs=[r.data], counts=counts, status="running")

    bf16 = _use_bf16(r)
    model = _load_model(model_id, r.method, bf16, tokenizer)
    ckpt = _gradient_checkpointing(r, model)
    packing = _packing(r, model)
    model, peft_config = _peft(r, model, ckpt)
    trainer, sampling = _build_trainer(r, data, model, tokenizer, peft_config, eos, bf16, ckpt, packing)
    counter = CountingCollator(trainer.data_collator)
    trainer.data_collator = counter
    resume, resume_step = resume_point(out)
    extra = ("ce_loss", "kd_loss", "kd_share") if r.kd_weight else ()
    for cb in _make_callbacks(out, counter, state.num_processes, resume_step, 0, extra) + callbacks:
        trainer.add_callback(cb)
    result, elapsed = train_timed(trainer, resume)

    gen = _generation_config(model_id, tokenizer.convert_tokens_to_ids(eos), tokenizer.pad_token_id)
    save_final(trainer, tokenizer, gen, out)
    summary: dict[str, Any] = {}
    if trainer.is_world_process_zero():
        run_facts = {"resumed_from_step": resume_step, "packing": packing, "sampling": sampling}
        run_facts.update(processes=state.num_processes, gradient_checkpointing=ckpt, eos_token=eos)
        summary = _summary(r, out, trainer, result, counter, elapsed, data, run_facts)
        if r.merge and r.method != "full":
            summary["merged"] = str(merge_adapter(out, model_id, tokenizer, gen, bf16))
        _finish_manifest(out, cfg, r, summary, data.stats)
        log.info(
            "trained %d steps: loss %.4f, %d tokens, padding %.1f%%, %d over-length dropped -> %s",
            summary["steps"],
            summary["final_loss"],
            summary["train_tokens"],
            100 * summary["padding_share"],
            summary["dropped_overlength"],
            out,
        )
    state.wait_for_everyone()
    return summary


# ---------------------------------------------------------------------------- recipe steps


def claim_output(state: Any, out: Path, cfg: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """The main process checks (or clears, with --overwrite) the output folder first; every process
    returns the manifest found there (None for a fresh start)."""
    old = None
    with state.main_process_first():
        if state.is_main_process:
            old = _prepare_output(out, cfg, overwrite)
    state.wait_for_everyone()
    if not state.is_main_process:
        old = records.read_manifest(out)
    return old


def _finished_run(
    r: TrainConfig, out: Path, cfg: dict[str, Any], model_id: str, old: dict[str, Any], main: bool
) -> dict[str, Any]:
    """A finished output: its summary, after writing `merged/` if --merge asks for it now."""
    from transformers import AutoTokenizer

    summary = dict(old.get("summary", {}))
    if r.merge and r.method != "full" and not (out / "merged").exists() and main:
        tok = AutoTokenizer.from_pretrained(out)
        gen = _generation_config(str(out), tok.convert_tokens_to_ids(tok.eos_token), tok.pad_token_id)
        summary["merged"] = str(merge_adapter(out, model_id, tok, gen, _use_bf16(r)))
        _finish_manifest(out, cfg, r, summary)
    log.info("%s: training already finished; nothing to do", out)
    return summary


def _load_tokenizer(r: TrainConfig, model_id: str) -> tuple[Any, str]:
    """The student's tokenizer with the chat template and end-of-turn token applied; (tokenizer, eos)."""
    from transformers import AutoTokenizer

    from distill import train_data

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_id)
    except OSError as e:
        raise UserError(f"--student {model_id}: cannot load the tokenizer ({e})") from None
    return tokenizer, train_data.apply_chat_settings(tokenizer, r.chat_template, r.eos_token)


@dataclasses.dataclass
class TrainData:
    """The tokenized training set, its counts, and (with --kd-weight) the aligned teacher logprobs."""

    dataset: Any  # datasets.Dataset of input_ids / completion_mask (+ kd_index with --kd-weight)
    stats: Any  # train_data.DataStats
    aligned: Any = None  # logit_kd.attach's per-example teacher top-K, indexed by kd_index
    kd_stats: dict[str, Any] | None = None


def _build_data(r: TrainConfig, tokenizer: Any, state: Any) -> TrainData:
    """Tokenize --data (main process first, the others read its cache) and attach teacher logprobs."""
    from distill import train_data

    main = state.is_main_process
    with state.main_process_first():
        dataset, stats = train_data.tokenize_dataset(
            r.data,
            tokenizer,
            with_reasoning=not r.no_reasoning,
            all_turns=r.all_turns,
            allow_unfiltered=r.allow_unfiltered,
            max_length=r.max_length,
            overlong=r.overlong,
            cache_dir=r.cache_dir,
            progress=main,
            read=r.read,
        )
    if main:
        for line in stats.lines():
            log.info(line)
    data = TrainData(dataset, stats)
    if r.kd_weight:  # teacher top-K logprobs stored beside the traces (distill generate --logprobs)
        from distill import logit_kd

        data.aligned, data.kd_stats = logit_kd.attach(
            dataset, r.data, tokenizer, not r.no_reasoning, r.all_turns
        )
        data.dataset = dataset.add_column("kd_index", list(range(len(dataset))))
        if main:
            kd = data.kd_stats
            log.info("kd: teacher logprobs on %d of %d trained tokens", kd["kd_tokens"], kd["trained_tokens"])
    if stats.dropped_overlength and main:
        log.warning(
            "dropped %d of %d examples longer than %d tokens",
            stats.dropped_overlength,
            stats.examples,
            r.max_length,
        )
    return data


def _gradient_checkpointing(r: TrainConfig, model: Any) -> bool:
    """--gradient-checkpointing, else on for models of 100M parameters or more; off under FSDP's own."""
    n_params = sum(p.numel() for p in model.parameters())
    ckpt = r.gradient_checkpointing if r.gradient_checkpointing is not None else n_params >= 100e6
    if os.environ.get("FSDP_ACTIVATION_CHECKPOINTING", "").lower() == "true":
        ckpt = False  # FSDP checkpoints activations itself
    return ckpt


def _packing(r: TrainConfig, model: Any) -> bool:
    """--packing, else on with FlashAttention; refused where packed examples would see each other."""
    attn = getattr(model.config, "_attn_implementation", None) or ""
    flash = "flash" in attn
    packing_ok = model.config.model_type in PACKING_MODEL_TYPES or flash
    packing = flash if r.packing is None else r.packing
    if r.kd_weight and packing:
        if r.packing:
            raise UserError("--kd-weight works on padded batches: drop --packing")
        packing = False
    if packing and not packing_ok:
        raise UserError(
            f"--packing: {model.config.model_type} with {attn} attention cannot keep packed examples apart; "
            "use --no-packing (length-grouped batches)"
        )
    return packing


def _peft(r: TrainConfig, model: Any, ckpt: bool) -> tuple[Any, Any]:
    """(model, LoraConfig or None): the adapter for lora/qlora; qlora's model prepared for k-bit training."""
    if r.method not in ("lora", "qlora"):
        return model, None
    from peft import LoraConfig

    targets: Any = r.lora_targets
    if targets in (["all-linear"], "all-linear"):
        targets = "all-linear"
    peft_config = LoraConfig(
        r=r.lora_r,
        lora_alpha=r.lora_alpha,
        lora_dropout=r.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    if r.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=ckpt)
    return model, peft_config


def _liger_available() -> bool:
    """Liger's fused kernels: used on a CUDA GPU when the package is installed."""
    import torch

    if not torch.cuda.is_available():
        return False
    try:
        import liger_kernel  # noqa: F401
    except ImportError:
        return False
    return True


def _build_trainer(
    r: TrainConfig,
    data: TrainData,
    model: Any,
    tokenizer: Any,
    peft_config: Any,
    eos: str,
    bf16: bool,
    ckpt: bool,
    packing: bool,
) -> tuple[Any, str]:
    """(trainer, sampling): TRL's SFTTrainer (or the KD trainer with --kd-weight) over the tokenized
    data; sampling is "group_by_length" or "random"."""
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    group = r.group_by_length
    if group is None:
        group = random_padding_share(data.dataset["input_ids"], r.batch_size, r.seed) > GROUP_BY_LENGTH_ABOVE
    sampling = "group_by_length" if group and not packing else "random"
    args = SFTConfig(
        output_dir=str(Path(r.output) / "checkpoints"),
        max_length=r.max_length,
        packing=packing,
        packing_strategy="bfd",
        train_sampling_strategy=sampling,
        eos_token=eos,
        **common_trainer_args(r, SFTConfig, bf16, ckpt),
        use_liger_kernel=_liger_available(),
        remove_unused_columns=True,
    )
    trainer_kwargs = dict(
        model=model,
        args=args,
        train_dataset=data.dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    if r.kd_weight:
        from distill import logit_kd

        trainer = logit_kd.make_trainer(r.kd_weight, **trainer_kwargs)
        trainer.data_collator = logit_kd.KDCollator(trainer.data_collator, data.aligned)
    else:
        trainer = SFTTrainer(**trainer_kwargs)
    trainer.remove_callback(PrinterCallback)  # our LogCallback prints one line per log to stderr
    return trainer, sampling


def resume_point(out: Path) -> tuple[Path | None, int]:
    """(the last checkpoint under `out/checkpoints` or None, its step or 0)."""
    resume = last_checkpoint(out / "checkpoints")
    if resume:
        log.info("resuming from %s", resume)
    return resume, int(resume.name.split("-")[1]) if resume else 0


def train_timed(trainer: Any, resume: Path | None) -> tuple[Any, float]:
    """Run `trainer.train` (from `resume` when given); (its TrainOutput, seconds)."""
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    return result, time.time() - t0


def save_final(trainer: Any, tokenizer: Any, gen: Any, out: Path) -> None:
    """Save the trained model (or adapter) to `out` with its tokenizer and generation config, whose
    end-of-sequence token the model config takes too (main process writes)."""
    if trainer.is_world_process_zero():
        trainer.model.generation_config = gen
        trainer.model.config.eos_token_id = gen.eos_token_id
    trainer.save_model(str(out))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(out)
        gen.save_pretrained(out)


def _summary(
    r: TrainConfig,
    out: Path,
    trainer: Any,
    result: Any,
    counter: CountingCollator,
    elapsed: float,
    data: TrainData,
    run_facts: dict[str, Any],
) -> dict[str, Any]:
    """The summary stored in manifest.json: steps, losses, tokens, data counts, paths."""
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    stats, world = data.stats, run_facts["processes"]
    summary = {
        "steps": trainer.state.global_step,
        "resumed_from_step": run_facts["resumed_from_step"],
        "final_loss": losses[-1] if losses else result.training_loss,
        "first_loss": losses[0] if losses else None,
        "train_loss": result.training_loss,
        "train_tokens": counter.real * world,
        "tokens_per_s": round(counter.real * world / max(elapsed, 1e-9), 1),
        "padding_share": round(counter.padding_share, 4),
        "packing": run_facts["packing"],
        "sampling": run_facts["sampling"],
        "processes": world,
        "gradient_checkpointing": run_facts["gradient_checkpointing"],
        "examples": stats.examples,
        "kept_examples": stats.kept,
        "dropped_unfinished": stats.dropped_unfinished,
        "dropped_guard": stats.dropped_guard,
        "think_block": stats.think_block,
        "dropped_overlength": stats.dropped_overlength,
        "truncated": stats.truncated,
        "tokenization_cached": stats.cached,
        "method": r.method,
        "eos_token": run_facts["eos_token"],
        "model": str(out),
        "checkpoints": str(out / "checkpoints"),
        "log": str(out / "train_log.csv"),
        "manifest": str(out / records.MANIFEST),
    }
    if r.kd_weight:
        from distill import logit_kd

        summary.update(data.kd_stats, **logit_kd.loss_scale(trainer.state.log_history, r.kd_weight))
    return summary


def _finish_manifest(
    out: Path, cfg: dict[str, Any], r: TrainConfig, summary: dict[str, Any], stats: Any = None
):
    old = records.read_manifest(out) or {}
    counts = dataclasses.asdict(stats) if stats is not None else old.get("counts", {})
    records.write_manifest(out, "train", cfg, inputs=[r.data], counts=counts, status="done", summary=summary)


def _use_bf16(r: TrainConfig) -> bool:
    import torch

    if r.bf16 is not None:
        return r.bf16
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def worker_main(module: str, run_config: Callable[[TrainConfig], Any], argv: list[str] | None = None) -> None:
    """`python -m <module> spec.json`: the worker `accelerate launch` starts on each process; reads
    the TrainConfig spec (JSON) and runs `run_config` on it, a UserError as one line and exit 2."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(f"usage: python -m {module} <config.json>", file=sys.stderr)
        raise SystemExit(2)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    spec = json.loads(Path(argv[0]).read_text())
    try:
        spec["read"] = ReadOptions(**spec.get("read", {}))
        run_config(TrainConfig(**spec))
    except UserError as e:
        print(f"distill: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> None:
    """`python -m distill.train spec.json`: the SFT worker."""
    worker_main("distill.train", run, argv)


if __name__ == "__main__":
    main()
