"""On-policy distillation (`distill train --objective opd`): the student samples, the teacher grades each token.

    distill train --objective opd --student runs/sft --teacher teachers/qwq-32b.yaml \\
        --prompts data/numina-math.yaml --method lora --max-steps 200 --output runs/opd
    distill train --objective opd --student runs/sft --teacher-url http://teacher:8000 \\
        --prompts problems.jsonl --output runs/opd                        # teacher on a vLLM server

From Python: `run(TrainConfig(objective="opd", student=..., teacher=..., prompts=..., output=...))`.

The student generates a completion for each prompt (the teacher card's prompt template, the
student's chat template), the teacher scores every completion token, and the loss is TRL's
generalised Jensen-Shannon divergence between the two next-token distributions on the student's
own samples (`trl.DistillationTrainer`, "On-Policy Distillation of Language Models", Agarwal et al.
2024, arXiv:2306.13649). `--beta` picks the divergence: 0 forward KL, 0.5 JSD, 1 reverse KL.
The default is 1 (reverse KL, TRL's default): on the student's own samples it is mode-seeking, so
the student is pushed off the tokens the teacher would not write instead of being asked to spread
mass over everything the teacher might write, which a small student cannot cover (the setting of
the on-policy distillation results for reasoning students, e.g. Qwen3 and Thinking Machines 2025).

A served teacher (`--teacher-url`, a `vllm serve` endpoint) goes through TRL's
`trl.experimental.server_distillation.ServerDistillationTrainer`: vLLM returns the teacher's
top-k logprobs of the sampled sequence (`prompt_logprobs`), so the loss is computed on a sparse
support (top-1 plus a tail bucket for beta > 0, top-k plus tail for beta = 0).

Guards, before any compute: the teacher's and student's tokenizers must hold the same vocabulary
(else a message saying what differs; TRL's cross-tokenizer route is `trl.experimental.gold`,
not wired here); the chat template and end-of-turn token are the ones SFT uses; the student must
already write the answer format (a few greedy samples must close the reasoning and stop; refused
when none does, unless --allow-unformatted; warned when some do not or when the student was not
trained by `distill train` first).

Output folder: as for SFT (model or adapter at the root, `checkpoints/`, `manifest.json`), and
`train_log.csv` with step, loss, `divergence` (the generalised JSD at --beta, nats per completion
token), student entropy, completion lengths, share of completions cut at max length.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill import records
from distill import train as sft
from distill.errors import UserError

log = logging.getLogger("distill.onpolicy")

DEFAULT_BETA = 1.0  # reverse KL (see the module docstring)
FORMAT_PROBES = 4  # greedy samples the format guard draws from the student
LOG_COLUMNS = [
    "step",
    "epoch",
    "loss",
    "divergence",
    "entropy",
    "completion_length",
    "clipped_ratio",
    "learning_rate",
    "grad_norm",
    "time_s",
]


# ---------------------------------------------------------------------------- guards


def vocab_difference(student_tok: Any, teacher_tok: Any) -> str | None:
    """None when both tokenizers map the same strings to the same ids; else what differs, in words."""
    s, t = student_tok.get_vocab(), teacher_tok.get_vocab()
    if s == t:
        return None
    only_s = sorted(set(s) - set(t), key=lambda k: s[k])
    only_t = sorted(set(t) - set(s), key=lambda k: t[k])
    moved = sorted((k for k in set(s) & set(t) if s[k] != t[k]), key=lambda k: s[k])
    parts = [f"student has {len(s)} tokens, teacher {len(t)}"]
    if only_s:
        parts.append(f"{len(only_s)} only in the student (e.g. {only_s[:3]})")
    if only_t:
        parts.append(f"{len(only_t)} only in the teacher (e.g. {only_t[:3]})")
    if moved:
        k = moved[0]
        parts.append(f"{len(moved)} shared tokens have other ids (e.g. {k!r}: {s[k]} vs {t[k]})")
    return "; ".join(parts)


def check_tokenizers(student_tok: Any, teacher_tok: Any) -> None:
    """Refuse (UserError) a teacher whose vocabulary is not the student's: the per-token loss needs one."""
    diff = vocab_difference(student_tok, teacher_tok)
    if diff:
        raise UserError(
            f"--teacher: the teacher's tokenizer is not the student's ({diff}); on-policy distillation "
            "compares next-token distributions over one vocabulary. Use a teacher of the same family "
            "(e.g. a Qwen2.5 student with a Qwen2.5/QwQ/R1-Distill-Qwen teacher); for different "
            "tokenizers TRL has an experimental cross-tokenizer trainer (trl.experimental.gold.GOLDTrainer), "
            "which distill does not run"
        )


def check_served_tokenizer(url: str, tokenizer: Any, probe: str) -> None:
    """Tokenize `probe` on the vLLM server (`POST /tokenize`) and refuse ids other than the student's.

    A server without the endpoint is warned about: the guard cannot run, the loss would be silently wrong
    with another vocabulary."""
    import requests

    base = url.rstrip("/").removesuffix("/v1")
    try:
        model = requests.get(f"{base}/v1/models", timeout=30).json()["data"][0]["id"]
        resp = requests.post(
            f"{base}/tokenize",
            json={"model": model, "prompt": probe, "add_special_tokens": False},
            timeout=30,
        )
    except (requests.RequestException, KeyError, IndexError, ValueError) as e:
        raise UserError(f"--teacher-url {url}: cannot reach the teacher server ({e})") from None
    if resp.status_code != 200:
        log.warning("--teacher-url: the server has no /tokenize endpoint; the tokenizer guard could not run")
        return
    served = resp.json().get("tokens", [])
    mine = tokenizer(probe, add_special_tokens=False)["input_ids"]
    if served != mine:
        first = next(
            (i for i, (a, b) in enumerate(zip(served, mine, strict=False)) if a != b),
            min(len(served), len(mine)),
        )
        raise UserError(
            f"--teacher-url: the served teacher's tokenizer is not the student's: {probe!r} is {len(mine)} tokens "
            f"for the student and {len(served)} for the teacher, first differing at token {first}; on-policy "
            "distillation needs one vocabulary"
        )


@dataclass
class FormatCheck:
    """Greedy samples of the student: how many close the reasoning and end with the end-of-turn token."""

    samples: int
    closed: int  # wrote the closing think tag
    stopped: int  # ended with the end-of-turn token within the length limit
    example: str  # the first sample that failed, decoded (empty when none failed)

    @property
    def formatted(self) -> int:
        return min(self.closed, self.stopped)


def check_format(
    model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int, close_tag: str = "</think>"
) -> FormatCheck:
    """Greedy-decode `prompts` (chat-templated) with the student; count formatted completions."""
    import torch

    eos_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    tokenizer.padding_side = side
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model.generate(
            **{k: v.to(device) for k, v in enc.items()},
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=eos_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    model.train(was_training)
    closed = stopped = 0
    example = ""
    for row in out[:, enc["input_ids"].shape[1] :].tolist():
        ends = eos_id in row
        row = row[: row.index(eos_id) + 1] if ends else row
        text = tokenizer.decode(row, skip_special_tokens=False)
        closed += close_tag in text
        stopped += ends
        if not example and not (ends and close_tag in text):
            example = text
    return FormatCheck(len(prompts), closed, stopped, example)


def judge_format(
    check: FormatCheck, allow_unformatted: bool, close_tag: str, trained_by_distill: bool
) -> None:
    """Refuse a student none of whose samples is formatted (unless allowed); warn when some are not."""
    what = (
        f"{check.formatted} of {check.samples} greedy samples of the student close the reasoning with "
        f"{close_tag!r} and stop at the end-of-turn token"
    )
    if not trained_by_distill:
        log.warning(
            "--student was not trained by `distill train` (no train manifest): on-policy distillation from a "
            "student that never learned the answer format is known to fail; SFT it on teacher traces first"
        )
    if check.formatted == 0 and not allow_unformatted:
        raise UserError(
            f"--student does not write the answer format: {what} (e.g. {check.example[:160]!r}). "
            "On-policy distillation grades the student's own samples, and from a student that never closes "
            "its reasoning it is known to fail: SFT it first (`distill train --objective sft`), raise "
            "--max-new-tokens if its reasoning is longer, or pass --allow-unformatted"
        )
    if check.formatted < check.samples:
        log.warning("format guard: %s (e.g. %r)", what, check.example[:160])
    else:
        log.info("format guard: %s", what)


# ---------------------------------------------------------------------------- inputs


def resolve_teacher(r: sft.TrainConfig) -> tuple[Any, str | None]:
    """(teacher card, local model path or id; None for a served teacher)."""
    from distill.cards import TeacherCard
    from distill.sampling import resolve_teacher as teacher_card

    if r.teacher_url:
        card = teacher_card(r.teacher) if r.teacher else TeacherCard(name="served-teacher", model="served")
        return card, None
    if not r.teacher:
        raise UserError("--objective opd needs --teacher (a card or model folder) or --teacher-url")
    card = teacher_card(r.teacher)
    return card, card.model


def prompt_texts(r: sft.TrainConfig, templates: dict[str, str]) -> list[str]:
    """The prompt texts the student answers: the prompt source with the teacher card's template."""
    from distill.prompts import apply_template, load_prompts

    prompts = load_prompts(r.prompts, answer_column=None, seed=r.seed)
    if not prompts:
        raise UserError(f"--prompts {r.prompts}: no prompts")
    if r.prompt_template:
        templates = {p.domain: r.prompt_template for p in prompts}
    return [apply_template(p.problem, p.domain, templates) for p in prompts]


def load_student(model_id: str, method: str, bf16: bool, tokenizer: Any) -> Any:
    """The student model; an SFT LoRA output is loaded on its base (adapter kept trainable for LoRA,
    merged in for full)."""
    import torch
    from transformers import AutoModelForCausalLM

    adapter = Path(model_id) / "adapter_config.json"
    if not adapter.exists():
        if method == "qlora":
            raise UserError("--objective opd: --method qlora is not supported (use lora or full)")
        return sft._load_model(model_id, method, bf16, tokenizer)
    from peft import PeftModel

    base_id = json.loads(adapter.read_text()).get("base_model_name_or_path")
    dtype = torch.bfloat16 if bf16 else torch.float32
    try:
        base = AutoModelForCausalLM.from_pretrained(base_id, dtype=dtype)
    except OSError as e:
        raise UserError(
            f"--student {model_id}: cannot load the adapter's base model {base_id} ({e})"
        ) from None
    if len(tokenizer) > base.get_input_embeddings().weight.shape[0]:
        base.resize_token_embeddings(len(tokenizer))
    model = PeftModel.from_pretrained(base, model_id, is_trainable=method == "lora")
    return model if method == "lora" else model.merge_and_unload()


def match_vocab_size(student: Any, teacher: Any) -> None:
    """Same tokenizer but padded embedding tables of other sizes (Qwen2.5 1.5B vs 7B): pad the smaller."""
    s = student.get_input_embeddings().weight.shape[0]
    t = teacher.get_input_embeddings().weight.shape[0]
    if s < t:
        log.info("student embedding rows %d < teacher's %d: padding the student's", s, t)
        student.resize_token_embeddings(t)
    elif t < s:
        teacher.resize_token_embeddings(s)


# ---------------------------------------------------------------------------- logging


def _log_callback(out: Path, resume_step: int) -> Any:
    from transformers import TrainerCallback

    class LogCallback(TrainerCallback):
        """Divergence, entropy and completion lengths per logged step to stderr and `train_log.csv`."""

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.time()
            if not state.is_world_process_zero:
                return
            path = out / "train_log.csv"
            kept = []
            if path.exists() and resume_step > 0:
                with open(path, newline="") as f:
                    kept = [row for row in csv.DictReader(f) if int(float(row["step"])) <= resume_step]
            lines = [",".join(LOG_COLUMNS)] + [
                ",".join(str(row.get(c, "")) for c in LOG_COLUMNS) for row in kept
            ]
            records.atomic_write_text(path, "\n".join(lines) + "\n")

        def on_log(self, args, state, control, logs=None, **kw):
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return
            row = {
                "step": state.global_step,
                "epoch": round(state.epoch or 0.0, 4),
                "loss": logs["loss"],
                "divergence": logs["loss"],  # the loss is the divergence, nothing added
                "entropy": logs.get("entropy", ""),
                "completion_length": logs.get("completions/mean_length", ""),
                "clipped_ratio": logs.get("completions/clipped_ratio", ""),
                "learning_rate": logs.get("learning_rate", ""),
                "grad_norm": logs.get("grad_norm", ""),
                "time_s": round(time.time() - self.t0, 2),
            }
            with open(out / "train_log.csv", "a", newline="") as f:
                f.write(",".join(str(row[c]) for c in LOG_COLUMNS) + "\n")
            log.info(
                "step %d/%d divergence %.4f entropy %s completion %s tokens",
                state.global_step,
                state.max_steps,
                float(logs["loss"]),
                row["entropy"],
                row["completion_length"],
            )

    return LogCallback()


# ---------------------------------------------------------------------------- entry


def run(config: sft.TrainConfig, callbacks: list[Any] | None = None) -> dict[str, Any]:
    """On-policy distillation (or resume); returns the summary also stored in manifest.json."""
    config = dataclasses.replace(config, objective="opd")
    resolved, card, model_id = sft.resolve(config)
    validate(resolved)
    if resolved.launcher == "accelerate" and not sft._launched():
        out = Path(resolved.output)
        if out.exists():
            sft._prepare_output(out, sft.manifest_config(resolved), resolved.overwrite)
        return sft.launch(dataclasses.replace(resolved, overwrite=False), module="distill.onpolicy")
    return _train(resolved, model_id, callbacks or [])


def validate(r: sft.TrainConfig) -> None:
    """Option errors a user can make, before anything is loaded."""
    if not r.teacher and not r.teacher_url:
        raise UserError("--objective opd needs --teacher (a card or model folder) or --teacher-url")
    if r.beta is not None and not 0.0 <= r.beta <= 1.0:
        raise UserError(f"--beta {r.beta}: must be in [0, 1] (0 forward KL, 0.5 JSD, 1 reverse KL)")
    if r.teacher_url and not r.teacher_url.startswith(("http://", "https://")):
        raise UserError(f"--teacher-url {r.teacher_url}: expected http(s)://host:port of a vLLM server")
    if r.temperature is not None and r.temperature <= 0:
        raise UserError(f"--temperature {r.temperature}: must be > 0")
    if r.kd_weight:
        raise UserError("--kd-weight applies to --objective sft (stored teacher logprobs), not opd")


def _train(r: sft.TrainConfig, model_id: str, callbacks: list[Any]) -> dict[str, Any]:
    """The recipe: claim the output folder → teacher, prompts, tokenizers → student (format guard) →
    teacher model → trainer → train → save."""
    from accelerate import PartialState

    state = PartialState()
    out = Path(r.output)
    cfg = sft.manifest_config(r)
    old = sft.claim_output(state, out, cfg, r.overwrite)
    if old and old.get("status") == "done":
        log.info("%s: training already finished; nothing to do", out)
        return dict(old.get("summary", {}))

    teacher_card, teacher_id = resolve_teacher(r)
    texts = prompt_texts(r, teacher_card.templates)
    tokenizer, teacher_tok = _tokenizers(r, model_id, teacher_id, texts[0])
    eos = tokenizer.eos_token
    eos_id = tokenizer.convert_tokens_to_ids(eos)
    bf16 = sft._use_bf16(r)
    model = load_student(model_id, r.method, bf16, tokenizer)
    max_new = r.max_new_tokens or r.max_length
    check = _format_guard(r, model, tokenizer, texts, max_new, teacher_card, model_id)
    teacher = _load_teacher(teacher_id, bf16, teacher_tok, model)
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        counts = {"prompts": len(texts), "format_probes": check.samples, "format_ok": check.formatted}
        records.write_manifest(out, "train", cfg, inputs=_inputs(r), counts=counts, status="running")

    beta = DEFAULT_BETA if r.beta is None else r.beta
    trainer = _build_trainer(r, out, model, teacher, tokenizer, texts, max_new, beta, bf16)
    resume, resume_step = sft.resume_point(out)
    for cb in [_log_callback(out, resume_step), *callbacks]:
        trainer.add_callback(cb)
    result, elapsed = sft.train_timed(trainer, resume)

    gen = sft._generation_config(model_id, eos_id, tokenizer.pad_token_id)
    tokenizer.padding_side = "right"  # saved for inference; training generated from left-padded prompts
    sft.save_final(trainer, tokenizer, gen, out)
    summary: dict[str, Any] = {}
    if trainer.is_world_process_zero():
        run_facts = {"beta": beta, "resumed_from_step": resume_step, "prompts": len(texts), "eos_token": eos}
        run_facts.update(processes=state.num_processes, format_ok=f"{check.formatted}/{check.samples}")
        summary = _summary(r, out, trainer, result, elapsed, _teacher_label(r, teacher_card), run_facts)
        if r.merge and r.method != "full":
            base = _adapter_base(model_id)
            summary["merged"] = str(sft.merge_adapter(out, base, tokenizer, gen, bf16))
        counts = {"prompts": len(texts)}
        records.write_manifest(
            out, "train", cfg, inputs=_inputs(r), counts=counts, status="done", summary=summary
        )
        log.info(
            "on-policy distillation: %d steps, divergence %s -> %s",
            summary["steps"],
            summary["first_divergence"],
            summary["final_divergence"],
        )
    state.wait_for_everyone()
    return summary


def _build_trainer(
    r: sft.TrainConfig,
    out: Path,
    model: Any,
    teacher: Any,
    tokenizer: Any,
    texts: list[str],
    max_new: int,
    beta: float,
    bf16: bool,
) -> Any:
    """TRL's distillation trainer over the prompts (the student samples, the teacher grades), with a
    LoRA adapter for --method lora on a plain model; TRL's console printer removed."""
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback

    peft_config = _lora_config(r) if r.method == "lora" and not hasattr(model, "peft_config") else None
    n_params = sum(p.numel() for p in model.parameters())
    ckpt = r.gradient_checkpointing if r.gradient_checkpointing is not None else n_params >= 100e6
    common = _trainer_args(r, out, max_new, beta, bf16, ckpt)
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": t}] for t in texts]})
    trainer = _make_trainer(r, common, model, teacher, dataset, tokenizer, peft_config)
    trainer.remove_callback(PrinterCallback)
    return trainer


def _format_guard(
    r: sft.TrainConfig,
    model: Any,
    tokenizer: Any,
    texts: list[str],
    max_new: int,
    teacher_card: Any,
    model_id: str,
) -> FormatCheck:
    """Sample the student greedily on the first prompts and refuse one that never closes its
    reasoning (unless --allow-unformatted); returns the check's counts."""
    close_tag = teacher_card.think_tags[-1] if teacher_card.think_tags else "</think>"
    check = check_format(model, tokenizer, texts[:FORMAT_PROBES], max_new, close_tag)
    trained = (records.read_manifest(Path(model_id)) or {}).get("stage") == "train"
    judge_format(check, r.allow_unformatted, close_tag, trained)
    return check


def _load_teacher(teacher_id: str | None, bf16: bool, teacher_tok: Any, student: Any) -> Any:
    """The frozen local teacher, its vocabulary matched to the student's; None for a served teacher."""
    if teacher_id is None:
        return None
    teacher = sft._load_model(teacher_id, "full", bf16, teacher_tok)
    teacher.requires_grad_(False)
    match_vocab_size(student, teacher)
    return teacher


def _summary(
    r: sft.TrainConfig,
    out: Path,
    trainer: Any,
    result: Any,
    elapsed: float,
    teacher: str,
    run_facts: dict[str, Any],
) -> dict[str, Any]:
    """The summary stored in manifest.json: the divergence, its first and final values, steps, paths."""
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "objective": "opd",
        "divergence": divergence_name(run_facts["beta"]),
        "beta": run_facts["beta"],
        "teacher": teacher,
        "steps": trainer.state.global_step,
        "resumed_from_step": run_facts["resumed_from_step"],
        "first_divergence": losses[0] if losses else None,
        "final_divergence": losses[-1] if losses else result.training_loss,
        "final_loss": losses[-1] if losses else result.training_loss,
        "first_loss": losses[0] if losses else None,
        "train_loss": result.training_loss,
        "prompts": run_facts["prompts"],
        "seconds": round(elapsed, 1),
        "format_ok": run_facts["format_ok"],
        "processes": run_facts["processes"],
        "method": r.method,
        "eos_token": run_facts["eos_token"],
        "model": str(out),
        "checkpoints": str(out / "checkpoints"),
        "log": str(out / "train_log.csv"),
        "manifest": str(out / records.MANIFEST),
    }


def _tokenizers(r: sft.TrainConfig, model_id: str, teacher_id: str | None, prompt: str) -> tuple[Any, Any]:
    """The student's tokenizer (chat template and eos as for SFT, left padding) and the teacher's
    (None when served), after the vocabulary guard."""
    from transformers import AutoTokenizer

    from distill import train_data

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_id)
    except OSError as e:
        raise UserError(f"--student {model_id}: cannot load the tokenizer ({e})") from None
    train_data.apply_chat_settings(tokenizer, r.chat_template, r.eos_token)
    tokenizer.padding_side = "left"  # TRL generates from left-padded prompts
    if teacher_id is None:
        probe = tokenizer.apply_chat_template(
            [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": "<think>\nok\n</think>\n\nok"},
            ],
            tokenize=False,
        )
        check_served_tokenizer(r.teacher_url, tokenizer, probe)
        return tokenizer, None
    try:
        teacher_tok = AutoTokenizer.from_pretrained(teacher_id)
    except OSError as e:
        raise UserError(f"--teacher {teacher_id}: cannot load the tokenizer ({e})") from None
    check_tokenizers(tokenizer, teacher_tok)
    return tokenizer, teacher_tok


def _trainer_args(
    r: sft.TrainConfig, out: Path, max_new: int, beta: float, bf16: bool, ckpt: bool
) -> dict[str, Any]:
    """DistillationConfig fields from the resolved options (the SFT stage's names and defaults)."""
    from transformers import TrainingArguments

    return dict(
        output_dir=str(out / "checkpoints"),
        max_completion_length=max_new,
        temperature=r.temperature if r.temperature is not None else 1.0,
        beta=beta,
        **sft.common_trainer_args(r, TrainingArguments, bf16, ckpt),
    )


def _lora_config(r: sft.TrainConfig) -> Any:
    """A new LoRA adapter (a student that is an SFT adapter keeps training its own instead)."""
    from peft import LoraConfig

    targets: Any = r.lora_targets
    return LoraConfig(
        r=r.lora_r,
        lora_alpha=r.lora_alpha,
        lora_dropout=r.lora_dropout,
        target_modules="all-linear" if targets in (["all-linear"], "all-linear") else targets,
        task_type="CAUSAL_LM",
    )


def _make_trainer(
    r: sft.TrainConfig,
    common: dict[str, Any],
    model: Any,
    teacher: Any,
    dataset: Any,
    tokenizer: Any,
    peft_config: Any,
) -> Any:
    """TRL's DistillationTrainer with a local teacher, or its experimental ServerDistillationTrainer for
    --teacher-url (a vLLM server returning the teacher's top-k logprobs of the student's samples)."""
    if r.teacher_url is None:
        from trl import DistillationConfig, DistillationTrainer

        return DistillationTrainer(
            model=model,
            teacher_model=teacher,
            args=DistillationConfig(**common),
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
        )
    try:
        from trl.experimental.server_distillation import ServerDistillationConfig, ServerDistillationTrainer
    except ImportError as e:  # pragma: no cover - depends on the installed TRL
        raise UserError(f"--teacher-url needs TRL's experimental server distillation ({e})") from None
    url = r.teacher_url.rstrip("/").removesuffix("/v1")
    beta = common["beta"]
    args = ServerDistillationConfig(
        **common, teacher_model_server_url=url, loss_top_k=r.teacher_top_k or (1 if beta > 0 else 20)
    )
    try:
        return ServerDistillationTrainer(
            model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
        )
    except ImportError as e:
        raise UserError(f"--teacher-url: TRL's vLLM client needs vllm installed here ({e})") from None


def divergence_name(beta: float) -> str:
    """The divergence TRL minimises at `beta`: forward KL (0), reverse KL (1), else generalised JSD."""
    if beta == 0:
        return "forward_kl"
    if beta == 1:
        return "reverse_kl"
    return f"jsd(beta={beta:g})"


def _teacher_label(r: sft.TrainConfig, card: Any) -> str:
    return r.teacher_url if r.teacher_url and not r.teacher else (r.teacher or card.model)


def _adapter_base(model_id: str) -> str:
    adapter = Path(model_id) / "adapter_config.json"
    if adapter.exists():
        return json.loads(adapter.read_text()).get("base_model_name_or_path") or model_id
    return model_id


def _inputs(r: sft.TrainConfig) -> list[str]:
    return [x for x in (r.prompts, r.student, r.teacher, r.teacher_url) if x]


def main(argv: list[str] | None = None) -> None:
    """`python -m distill.onpolicy spec.json`: the on-policy worker `accelerate launch` starts."""
    sft.worker_main("distill.onpolicy", run, argv)


if __name__ == "__main__":
    main()
