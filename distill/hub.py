"""The push stage: model card, dataset card and upload to the Hugging Face Hub.

    distill push -i runs/student --repo me/qwen-1.5b-r1-distill --traces runs/filtered \
                 --results runs/eval [--private] [--adapter-only]
    distill push ... --dry-run --to-dir staged/     # writes exactly what would be uploaded

The model card's YAML front matter carries license, base_model, datasets, tags, library_name,
pipeline_tag and a `model-index` with the eval results; its body tells the teacher, prompt sources,
sample counts, the filter funnel, the training method and hyperparameters, the eval table beside the
published R1-Distill scores, and tokens and estimated cost. Traces (`--traces`) go to a dataset repo
`<repo>-traces` as Parquet with a `messages` column and a dataset card. A LoRA output is pushed merged
unless `--adapter-only`. The token comes from `HF_TOKEN` or the login cache and is never printed or
written anywhere.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from distill.configs import PushConfig
from distill.errors import UserError

log = logging.getLogger("distill.push")

REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
SKIP_IN_MODEL = {
    "checkpoints",
    "merged",
    "runs",
    "train_log.csv",
    "optimizer.pt",
    "scheduler.pt",
    "rng_state.pth",
}
BENCH_DATASETS = {
    "aime24": "HuggingFaceH4/aime_2024",
    "aime25": "yentinglin/aime_2025",
    "amc23": "AI-MO/aimo-validation-amc",
    "math500": "HuggingFaceH4/MATH-500",
    "gpqa": "Idavidrein/gpqa",
}

# ---------------------------------------------------------------------------- validation


def check_repo_name(repo: str) -> None:
    if not REPO_RE.match(repo) or ".." in repo or "--" in repo or repo.endswith((".", "-", ".git")):
        raise UserError(
            f"--repo '{repo}' is not a valid Hub repo id: expected 'user/name' with letters, digits, '-', '_', '.'"
        )


def check_model_dir(path: Path) -> str:
    """Return 'full' or 'adapter'; raise when weights or tokenizer are missing."""
    if not path.is_dir():
        raise UserError(f"--input {path}: no such folder")
    has_full = any((path / f).exists() for f in WEIGHT_FILES) or any(path.glob("model-*.safetensors"))
    has_adapter = any((path / f).exists() for f in ADAPTER_FILES) and (path / "adapter_config.json").exists()
    if not has_full and not has_adapter:
        raise UserError(f"--input {path}: no model weights (model.safetensors / adapter_model.safetensors)")
    if not any((path / f).exists() for f in TOKENIZER_FILES):
        raise UserError(f"--input {path}: no tokenizer (tokenizer.json / tokenizer_config.json)")
    return "full" if has_full else "adapter"


def find_token() -> str | None:
    """The Hugging Face token from `HF_TOKEN` or the login cache, or None."""
    from huggingface_hub import get_token as hub_token

    return os.environ.get("HF_TOKEN") or hub_token()


def get_token() -> str:
    token = find_token()
    if not token:
        raise UserError(
            "no Hugging Face token: set HF_TOKEN or run `hf auth login` (or use --dry-run --to-dir)"
        )
    return token


def check_access(api: Any, token: str) -> None:
    """One `whoami` call before anything is staged or merged: a `UserError` of one line when the
    Hub cannot be reached or refuses the token. The token never appears in a message."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError

    try:
        api.whoami(token=token)
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            raise UserError(
                f"the Hugging Face Hub refused the token (HTTP {status}; from HF_TOKEN or the login "
                "cache): set a valid HF_TOKEN or run `hf auth login`"
            ) from None
        raise UserError(
            f"the Hugging Face Hub answered HTTP {status} to a token check; retry later"
        ) from None
    except Exception as e:  # noqa: BLE001 - refused, unknown host, timeout ...
        reason = str(e).replace(token, "***").splitlines()[0][:160] if str(e) else ""
        raise UserError(
            f"cannot reach the Hugging Face Hub at {constants.ENDPOINT} ({type(e).__name__}: {reason}); "
            "nothing was merged or uploaded: push again when online, or stage the upload with "
            "--dry-run --to-dir DIR"
        ) from None


# ---------------------------------------------------------------------------- provenance


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _stage_folder(inp: str) -> Path:
    """A manifest's input as the folder holding that stage's manifest (inputs may be shard files)."""
    p = Path(inp)
    return p.parent if p.suffix == ".jsonl" else p


def _data_root_of(p: Path) -> Path:
    """A filter output folder, given it or its kept/ folder."""
    return p.parent if p.name == "kept" else p


def _data_root(data: str | None) -> Path | None:
    if not data:
        return None
    p = Path(data)
    if not p.exists():
        raise UserError(f"--traces {p}: no such folder")
    return _data_root_of(p)


def _generate_manifest(filter_root: Path | None) -> dict[str, Any] | None:
    """The manifest of the generate run a filter output was made from (its inputs are shard files)."""
    filt = _read_json(filter_root / "manifest.json") if filter_root else None
    found = None
    for inp in (filt or {}).get("inputs", []):
        found = _read_json(_stage_folder(inp) / "manifest.json") or found
    return found


def gather(cfg: PushConfig) -> dict[str, Any]:
    """Collect what the card tells from the run's manifests: train, filter, generate, eval."""
    from distill.evaluate import load_results

    train = _read_json(Path(cfg.model) / "manifest.json")
    root = _data_root(cfg.data)
    if root is None and train:  # no --traces: follow the data the model was trained on
        root = next((_data_root_of(Path(i)) for i in train.get("inputs", []) if Path(i).exists()), None)
    return {
        "train": train,
        "funnel": _read_json(root / "funnel.json") if root else None,
        "generate": _generate_manifest(root),
        "eval": load_results(cfg.results) if cfg.results else None,
    }


# ---------------------------------------------------------------------------- cards


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def base_model_id(train: dict[str, Any]) -> str | None:
    """The Hub id of the model that was fine-tuned, for the card's `base_model`, or None.

    A student card gives its `model`; a local folder the Hub id in its config.json
    (`_name_or_path`) when it has one; a Hub id itself. Never a local path.
    """
    from distill.cards import is_card, load_student
    from distill.resolve import HUB_ID

    spec = train.get("base_model") or train.get("model") or train.get("student")
    if not spec:
        return None
    spec = str(spec)
    if Path(spec).is_dir():
        config = _read_json(Path(spec) / "config.json") or {}
        spec = str(config.get("_name_or_path") or "")
    elif is_card(spec, "students"):
        spec = load_student(spec).model
    return spec if HUB_ID.match(spec) and not Path(spec).exists() else None


def _objective_tags(train: dict[str, Any]) -> list[str]:
    if train.get("objective") == "opd":
        return ["on-policy-distillation"]
    return ["sft", *(["logit-distillation"] if train.get("kd_weight") else [])]


def objective_text(train: dict[str, Any], summary: dict[str, Any]) -> str:
    """One sentence on the training objective and teacher, from a train manifest's config and summary."""
    if train.get("objective") == "opd":
        teacher = train.get("teacher_url") or train.get("teacher") or "a teacher"
        served = " (served, top-k logprobs)" if train.get("teacher_url") else ""
        beta = summary.get("beta", train.get("beta", 1.0))
        return (
            f"on-policy distillation (TRL DistillationTrainer): the student sampled its own completions for "
            f"the prompts in {train.get('prompts')}, and the teacher **{teacher}**{served} graded every token; "
            f"loss: generalised JSD with beta {_fmt(beta)} ({summary.get('divergence', 'divergence')})."
        )
    if train.get("kd_weight"):
        return (
            "SFT on verified reasoning traces plus a sparse KL term to the teacher's stored top-K "
            f"log-probabilities (weight {_fmt(train['kd_weight'])})."
        )
    return "SFT on verified reasoning traces (cross-entropy on the teacher's sampled tokens)."


def model_card(cfg: PushConfig, info: dict[str, Any], data_repo: str | None, kind: str) -> str:
    """README.md for the model repo: YAML front matter (license, tags, base model, model-index),
    then what was distilled from what, the data and its filter funnel, training settings, scores, use."""
    train = (info.get("train") or {}).get("config", {})
    base = base_model_id(train)
    ev = info.get("eval")
    front = _model_front_matter(cfg, train, base, data_repo, kind, ev)
    lines = [
        f"# {cfg.repo.split('/')[-1]}",
        "",
        _intro(train, base, (info.get("generate") or {}).get("config", {})),
    ]
    if train:
        lines += ["", f"Objective: {objective_text(train, (info.get('train') or {}).get('summary', {}))}"]
    lines += ["", "## Data", ""]
    lines += _data_lines(info.get("generate"))
    lines += _funnel_lines(info.get("funnel"))
    if train:
        lines += _training_lines(train, (info.get("train") or {}).get("counts", {}))
    if ev:
        lines += _eval_lines(ev)
    lines += [
        "",
        "## Use",
        "",
        "Prompt with the chat template; for math end the prompt with "
        '"Please reason step by step, and put your final answer within \\boxed{}." '
        "Sample with temperature 0.6 and top-p 0.95.",
        "",
    ]
    return "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n\n" + "\n".join(lines)


def _model_front_matter(
    cfg: PushConfig,
    train: dict[str, Any],
    base: str | None,
    data_repo: str | None,
    kind: str,
    ev: dict[str, Any] | None,
) -> dict[str, Any]:
    """The model card's YAML metadata: license, library, tags, base model, dataset, model-index."""
    front: dict[str, Any] = {
        "license": cfg.license or train.get("license") or "apache-2.0",
        "library_name": "peft" if kind == "adapter" else "transformers",
        "pipeline_tag": "text-generation",
        "tags": [
            "distill",
            "reasoning",
            "r1-distill",
            *_objective_tags(train),
            *(["lora"] if train.get("method") in ("lora", "qlora") else []),
        ],
    }
    if base:
        front["base_model"] = base
    if data_repo:
        front["datasets"] = [data_repo]
    if ev:
        front["model-index"] = [{"name": cfg.repo.split("/")[-1], "results": _model_index_results(ev)}]
    return front


def _model_index_results(ev: dict[str, Any]) -> list[dict[str, Any]]:
    """model-index results (the Hub's leaderboard metadata): pass@1 and cons@n, %, per benchmark."""
    results = []
    for bench, r in ev["benchmarks"].items():
        metrics = [{"type": "pass@1", "name": "pass@1", "value": round(100 * r["pass@1"], 2)}]
        cons_key = next((k for k in r if k.startswith("cons@")), None)
        if cons_key:
            metrics.append({"type": cons_key, "name": cons_key, "value": round(100 * r[cons_key], 2)})
        results.append(
            {
                "task": {"type": "text-generation", "name": "Text Generation"},
                "dataset": {"name": bench, "type": BENCH_DATASETS.get(bench, bench)},
                "metrics": metrics,
            }
        )
    return results


def _intro(train: dict[str, Any], base: str | None, gen: dict[str, Any]) -> str:
    """The card's first sentence: what was distilled into what (the teacher for SFT on its traces)."""
    student = base or "a student base"
    if train.get("objective", "sft") != "sft":
        return f"A reasoning model distilled with [distill](https://pypi.org/project/distill/) into **{student}**."
    teacher = gen.get("teacher")
    name = (
        teacher.get("model")
        if isinstance(teacher, dict)
        else teacher or gen.get("model") or "a reasoning teacher"
    )
    return (
        f"A reasoning model distilled with [distill](https://pypi.org/project/distill/) from **{name}**"
        f" into **{student}**, following the DeepSeek-R1 distillation recipe (SFT on verified reasoning traces)."
    )


def _data_lines(generate: dict[str, Any] | None) -> list[str]:
    """The generate run's prompt sources, counts and estimated teacher cost (none without one)."""
    if not (generate or {}).get("config", {}):
        return []
    counts = generate.get("counts", {})
    lines = [f"- Prompt sources: {', '.join(map(str, generate.get('inputs', []))) or 'n/a'}"]
    for k in ("prompts", "samples", "prompt_tokens", "completion_tokens", "failed"):
        if k in counts:
            lines.append(f"- {k.replace('_', ' ')}: {counts[k]:,}")
    if "cost_usd" in counts:
        lines.append(f"- estimated teacher cost: ${counts['cost_usd']:,.2f}")
    return lines


def _funnel_lines(funnel: dict[str, Any] | None) -> list[str]:
    """The filter funnel as a table: traces dropped by each check and remaining after it."""
    if not funnel:
        return []
    lines = ["", "### Filter funnel", "", "| step | dropped | remaining |", "|---|---:|---:|"]
    lines.append(f"| input | | {funnel.get('input', '')} |")
    for c in funnel.get("checks", []):
        lines.append(f"| {c.get('name')} | {c.get('dropped', '')} | {c.get('remaining', '')} |")
    lines.append(f"| **kept** | | **{funnel.get('kept', '')}** |")
    return lines


def _training_lines(train: dict[str, Any], counts: dict[str, Any]) -> list[str]:
    """The training settings that were set, then the train stage's counts, as one table."""
    lines = ["", "## Training", "", "| setting | value |", "|---|---|"]
    for k in (
        "method", "learning_rate", "epochs", "max_steps", "batch_size", "grad_accum", "max_length",
        "lora_r", "lora_alpha", "packing", "lr_scheduler", "warmup_ratio", "seed",
    ):  # fmt: skip
        if k in train and train[k] is not None:
            lines.append(f"| {k} | {_fmt(train[k])} |")
    for k, v in counts.items():
        lines.append(f"| {k} | {_fmt(v)} |")
    return lines


def _eval_lines(ev: dict[str, Any]) -> list[str]:
    """The sampling protocol and a pass@1 / cons@n table (%), beside published R1-Distill scores."""
    pub = ev.get("published") or {}
    s = ev.get("sampling", {})
    lines = [
        "",
        "## Evaluation",
        "",
        f"R1 protocol: temperature {s.get('temperature')}, top-p {s.get('top_p')}, "
        f"{s.get('num_samples')} samples per problem, max {s.get('max_tokens')} tokens; "
        "pass@1 is mean correctness over samples, cons@n the majority-vote answer.",
        "",
        "| benchmark | pass@1 | cons@n | mean tokens | " + ("published R1-Distill |" if pub else ""),
        "|---|---:|---:|---:|" + ("---:|" if pub else ""),
    ]
    for bench, r in ev["benchmarks"].items():
        cons = next((v for k, v in r.items() if k.startswith("cons@")), 0.0)
        row = f"| {bench} | {100 * r['pass@1']:.1f} | {100 * cons:.1f} | {r['mean_response_tokens']:.0f} |"
        if pub:
            row += f" {pub[bench]:.1f} |" if bench in pub else " — |"
        lines.append(row)
    return lines


def dataset_card(cfg: PushConfig, info: dict[str, Any], data_repo: str, rows: int) -> str:
    front = {
        "license": cfg.license or "apache-2.0",
        "task_categories": ["text-generation"],
        "tags": ["distill", "reasoning", "r1-distill", "synthetic"],
        "configs": [
            {"config_name": "default", "data_files": [{"split": "train", "path": "data/train.parquet"}]}
        ],
    }
    lines = [
        f"# {data_repo.split('/')[-1]}",
        "",
        f"{rows:,} verified reasoning traces for SFT, written by `distill filter` (kept traces).",
        "Each row has a `messages` column (user prompt, assistant `<think>…</think>` reasoning then answer)",
        "plus `id`, `prompt_id`, `domain` and `source`.",
        "",
        "```python",
        "from datasets import load_dataset",
        f'ds = load_dataset("{data_repo}", split="train")',
        "```",
    ]
    funnel = info.get("funnel")
    if funnel:
        lines += ["", f"Filter funnel: {funnel.get('input')} traces in, {funnel.get('kept')} kept."]
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n\n" + "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- staging


def _merge_adapter(model_dir: Path, dest: Path) -> None:
    """Merge a LoRA adapter into its base and save a standalone model into `dest`."""
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    from distill.noise import quiet_transformers

    quiet_transformers()

    model = AutoPeftModelForCausalLM.from_pretrained(model_dir)
    model = model.merge_and_unload()
    model.save_pretrained(dest)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(dest)
    gen = model_dir / "generation_config.json"
    if gen.exists():
        shutil.copy2(gen, dest / "generation_config.json")


def stage_model(cfg: PushConfig, dest: Path) -> str:
    """Copy (or merge) the model into `dest`; returns the kind pushed: 'full' or 'adapter'."""
    src = Path(cfg.model)
    kind = check_model_dir(src)
    dest.mkdir(parents=True, exist_ok=True)
    if kind == "adapter" and not cfg.adapter_only:
        merged = src / "merged"
        if merged.is_dir() and check_model_dir(merged) == "full":
            src, kind = merged, "full"
        else:
            _merge_adapter(src, dest)
            return "full"
    for item in src.iterdir():
        if item.name in SKIP_IN_MODEL or item.name.startswith(".") or item.name == "README.md":
            continue
        if item.is_dir():
            continue
        shutil.copy2(item, dest / item.name)
    return kind


def stage_data(cfg: PushConfig, dest: Path) -> int:
    root = _data_root(cfg.data)
    assert root is not None
    kept = root / "kept" if (root / "kept").is_dir() else root
    parquet = kept / "data.parquet"
    (dest / "data").mkdir(parents=True, exist_ok=True)
    if parquet.exists():
        shutil.copy2(parquet, dest / "data" / "train.parquet")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from distill.records import read_records, sft_parquet_schema, to_messages

        rows = [
            {
                "id": r["id"],
                "prompt_id": r["prompt_id"],
                "domain": r.get("domain"),
                "source": r.get("source"),
                "messages": to_messages(r),
            }
            for r in read_records(kept)
        ]
        if not rows:
            raise UserError(f"--traces {kept}: no kept traces")
        pq.write_table(
            pa.Table.from_pylist(rows, schema=sft_parquet_schema()), dest / "data" / "train.parquet"
        )
    import pyarrow.parquet as pq

    return pq.ParquetFile(dest / "data" / "train.parquet").metadata.num_rows


# ---------------------------------------------------------------------------- stage


def run(cfg: PushConfig, api: Any = None) -> dict[str, Any]:
    """Stage the model (and data) folders, write cards, then upload (or only write with --dry-run).

    `api` is a `huggingface_hub.HfApi`-like object; by default one is made with the token.
    """
    check_repo_name(cfg.repo)
    check_model_dir(Path(cfg.model))
    if cfg.dry_run and not cfg.to_dir:
        raise UserError("--dry-run needs --to-dir DIR (the folder that would be uploaded)")
    token = None if cfg.dry_run else get_token()
    if cfg.dry_run and not find_token():
        log.warning("no Hugging Face token found (HF_TOKEN or `hf auth login`): a real push would fail")
    if not cfg.dry_run:
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi(token=token)
        check_access(api, token or "")  # before a LoRA is merged or anything is staged
    info = gather(cfg)
    data_repo = f"{cfg.repo}-traces" if cfg.data else None

    if cfg.to_dir:
        stage_root = Path(cfg.to_dir)
        if stage_root.exists() and any(stage_root.iterdir()):
            raise UserError(f"--to-dir {stage_root}: folder is not empty")
        stage_root.mkdir(parents=True, exist_ok=True)
        cleanup = None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="distill-push-")
        stage_root = Path(cleanup.name)
    try:
        model_stage = stage_root / "model"
        kind = stage_model(cfg, model_stage)
        (model_stage / "README.md").write_text(model_card(cfg, info, data_repo, kind))
        rows = 0
        data_stage = stage_root / "dataset"
        if cfg.data:
            rows = stage_data(cfg, data_stage)
            (data_stage / "README.md").write_text(dataset_card(cfg, info, data_repo or "", rows))
        summary = {
            "repo": cfg.repo,
            "data_repo": data_repo,
            "kind": kind,
            "rows": rows,
            "staged": str(stage_root) if cfg.to_dir else None,
            "uploaded": False,
        }
        if cfg.dry_run:
            return summary
        uploads = [(cfg.repo, "model", model_stage)]
        if cfg.data and data_repo:
            uploads.append((data_repo, "dataset", data_stage))
        for repo_id, repo_type, folder in uploads:
            try:
                api.create_repo(repo_id=repo_id, repo_type=repo_type, private=cfg.private, exist_ok=True)
                api.upload_folder(
                    repo_id=repo_id,
                    repo_type=repo_type,
                    folder_path=str(folder),
                    commit_message=cfg.commit_message,
                )
            except Exception as e:  # noqa: BLE001 - the Hub's and the network's errors alike
                reason = (str(e).replace(token or "\0", "***").splitlines() or [""])[0][:200]
                raise UserError(
                    f"upload of the {repo_type} to {repo_id} failed ({type(e).__name__}: {reason}); "
                    "push again (the run folders are unchanged)"
                ) from None
        summary["uploaded"] = True
        return summary
    finally:
        if cleanup is not None:
            cleanup.cleanup()
