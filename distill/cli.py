"""The `distill` command line: one Typer command per pipeline stage.

    distill --help
    distill <stage> --help

Each command parses its options into the stage's config dataclass and calls the stage's entry
function. Heavy libraries (torch, transformers, trl, vllm) are imported inside the stages, so
`distill --help` answers at once. Errors a user can cause print one line and exit with status 2;
a stage whose work failed (`RunFailed`) prints one line and exits with 1; Ctrl-C says how to resume
and exits with 130.
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
    # click's plain help: full flag names and wrapped descriptions at any width (80 columns too),
    # and text such as `distill[ray]` shown as written, not read as markup
    rich_markup_mode=None,
)


def fail(message: str, code: int = 2) -> None:
    """Print one clear error line to stderr and exit with `code` (2: a usage error)."""
    print(f"distill: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def run_stage(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Call a stage entry function: a `UserError` becomes one line and its exit status (2, or 1 for
    `RunFailed`); Ctrl-C one line saying the stage resumes, and status 130."""
    try:
        return fn(*args, **kwargs)
    except UserError as e:
        fail(str(e), e.exit_code)
        raise  # unreachable
    except KeyboardInterrupt:
        print(
            "distill: interrupted — re-run the same command to resume (finished work is kept)",
            file=sys.stderr,
        )
        raise typer.Exit(130) from None


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
    from distill.noise import quiet_libraries

    quiet_libraries()


# ---------------------------------------------------------------------------- generate


@app.command()
def generate(
    teacher: Annotated[
        str,
        typer.Option(
            help="Teacher card (path or name in teachers/), or a local model folder (transformers)."
        ),
    ],
    prompts: Annotated[
        str,
        typer.Option(
            help="Prompts: data card or mixture card, local .jsonl/.json/.parquet/.csv, or HF dataset id."
        ),
    ],
    output: Annotated[
        str, typer.Option(help="Output folder for trace shards, failed.jsonl and manifest.json.")
    ],
    num_samples: Annotated[int, typer.Option(help="Samples per prompt.")] = 1,
    temperature: Annotated[
        float | None, typer.Option(help="Sampling temperature (default: the card's).")
    ] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling top_p (default: the card's).")] = None,
    top_k: Annotated[int | None, typer.Option(help="Top-k sampling (default: the card's; 0 = off).")] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Max new tokens per sample (default: the card's).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    logprobs: Annotated[
        int | None,
        typer.Option(
            "--logprobs",
            help="Also store the teacher's top-K log-probabilities of every completion token, in "
            "shard-*.jsonl.logprobs side files (~(4+6K)x4/3 bytes a token), for train --kd-weight.",
        ),
    ] = None,
    stop: Annotated[list[str] | None, typer.Option(help="Stop string (repeatable).")] = None,
    limit: Annotated[
        int | None, typer.Option(help="Use only the first N prompts (a mixture: N in total).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Delete existing output in --output and start afresh.")
    ] = False,
    split: Annotated[
        str | None, typer.Option(help="Dataset split (HF datasets; default: the card's or train).")
    ] = None,
    data_config: Annotated[
        str | None, typer.Option("--config", help="Dataset config name (HF datasets).")
    ] = None,
    problem_column: Annotated[str | None, typer.Option(help="Column holding the prompt text.")] = None,
    answer_column: Annotated[str | None, typer.Option(help="Column holding the gold answer.")] = None,
    id_column: Annotated[
        str | None, typer.Option(help="Column holding a stable prompt id (else a text hash).")
    ] = None,
    domain: Annotated[
        str | None, typer.Option(help="Domain of every prompt: math, code, science, general.")
    ] = None,
    domain_column: Annotated[str | None, typer.Option(help="Column holding each prompt's domain.")] = None,
    tests_column: Annotated[str | None, typer.Option(help="Column holding test cases (code).")] = None,
    backend: Annotated[
        str | None, typer.Option(help="Backend: transformers, openai or vllm (default: the card's).")
    ] = None,
    batch_size: Annotated[
        int, typer.Option(help="transformers: sequences (prompts × n) per generate call.")
    ] = 64,
    base_url: Annotated[
        list[str] | None, typer.Option(help="openai: server base URL, e.g. http://host:8000/v1 (repeatable).")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="openai: max requests in flight.")] = 64,
    timeout: Annotated[float, typer.Option(help="openai: seconds per request before retrying.")] = 600.0,
    max_retries: Annotated[int, typer.Option(help="openai: retries per request (429/5xx/timeouts).")] = 6,
    retry_backoff: Annotated[
        float, typer.Option(help="openai: base seconds of the exponential backoff.")
    ] = 1.0,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            help="openai: environment variable holding the API key (default: the card's; "
            "a plain http:// server gets none when the card's variable is unset)."
        ),
    ] = None,
    served_model_name: Annotated[
        str | None,
        typer.Option(
            help="openai: the model's name on the server (default: the card's served_model or "
            "model, whichever GET /v1/models lists; a server with one model: that one)."
        ),
    ] = None,
    min_success: Annotated[
        float,
        typer.Option(help="Exit 1 when fewer than this share of the prompts sampled in this run succeed."),
    ] = 0.5,
    tensor_parallel_size: Annotated[int, typer.Option(help="vllm: GPUs per model (tensor parallel).")] = 1,
    pipeline_parallel_size: Annotated[
        int, typer.Option(help="vllm: pipeline stages per model (GPUs per engine = tensor × pipeline).")
    ] = 1,
    max_model_len: Annotated[int | None, typer.Option(help="vllm: context length to allocate.")] = None,
    gpu_memory_utilization: Annotated[float, typer.Option(help="vllm: fraction of GPU memory to use.")] = 0.9,
    dtype: Annotated[
        str, typer.Option(help="transformers/vllm: weights dtype (auto, bfloat16, float32).")
    ] = "auto",
    threads: Annotated[
        int | None, typer.Option(help="transformers on CPU: torch threads (1 is fastest for tiny models).")
    ] = None,
    num_shards: Annotated[int, typer.Option(help="Split the prompts into N parts (job arrays).")] = 1,
    shard_index: Annotated[int, typer.Option(help="Which part this job samples (0..N-1).")] = 0,
    executor: Annotated[
        str,
        typer.Option(
            help="local (this process) or ray (one Ray actor per shard; pip install -e '.[ray]' in the checkout)."
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(help="ray: cluster to join ('auto' = the one `ray start` runs here; default: local)."),
    ] = None,
    replicas: Annotated[
        int, typer.Option(help="ray: backend replicas; replica k samples shard k of N (like --shard-index).")
    ] = 1,
    gpus_per_replica: Annotated[
        float | None,
        typer.Option(help="ray: GPUs per replica (default: tensor × pipeline parallel for vllm, else 0)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Sample reasoning traces from a teacher: prompts × n samples → trace shards (resumable)."""
    import logging

    from distill.generate import GenerateConfig, run

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    cfg = GenerateConfig(
        teacher=teacher,
        prompts=prompts,
        output=output,
        num_samples=num_samples,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        max_tokens=max_tokens,
        seed=seed,
        logprobs=logprobs,
        stop=list(stop or []),
        limit=limit,
        overwrite=overwrite,
        split=split,
        data_config=data_config,
        problem_column=problem_column,
        answer_column=answer_column,
        id_column=id_column,
        domain=domain,
        domain_column=domain_column,
        tests_column=tests_column,
        backend=backend,
        batch_size=batch_size,
        base_url=list(base_url or []),
        concurrency=concurrency,
        timeout=timeout,
        max_retries=max_retries,
        retry_backoff=retry_backoff,
        api_key_env=api_key_env,
        served_model_name=served_model_name,
        min_success=min_success,
        tensor_parallel_size=tensor_parallel_size,
        pipeline_parallel_size=pipeline_parallel_size,
        max_model_len=max_model_len,
        gpu_memory_utilization=gpu_memory_utilization,
        dtype=dtype,
        threads=threads,
        num_shards=num_shards,
        shard_index=shard_index,
        executor=executor,
        ray_address=ray_address,
        replicas=replicas,
        gpus_per_replica=gpus_per_replica,
        progress=progress,
    )
    run_stage(run, cfg)


# ---------------------------------------------------------------------------- reading traces

# how filter, select and train read their input (distill.ingest); one definition for all three
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        help="Input format: auto (detect from the first row), traces, messages (chat), sharegpt "
        "(conversations from/value), columns (problem + response columns).",
    ),
]
SplitOpt = Annotated[str, typer.Option("--split", help="Split of a Hub id or saved dataset folder.")]
ConfigOpt = Annotated[str | None, typer.Option("--config", help="Config name of a Hub dataset.")]
ProblemColOpt = Annotated[
    str | None,
    typer.Option("--problem-column", help="Column holding the prompt (default: problem, question ...)."),
]
ReasoningColOpt = Annotated[
    str | None,
    typer.Option(
        "--reasoning-column",
        help="Column holding the reasoning (default: reasoning, deepseek_reasoning ...).",
    ),
]
ContentColOpt = Annotated[
    str | None,
    typer.Option(
        "--content-column",
        help="Column holding the response after the reasoning, or a list of generations "
        "(default: content, generations, deepseek_solution, response ...).",
    ),
]
AnswerColOpt = Annotated[
    str | None,
    typer.Option("--answer-column", help="Column holding the gold answer (default: answer, gold ...)."),
]
IdColOpt = Annotated[
    str | None,
    typer.Option("--id-column", help="Column holding the prompt id (default: id, uuid; else a hash)."),
]
LabelColOpt = Annotated[
    str | None,
    typer.Option(
        "--label-column",
        help="Column holding the dataset's own correctness label (bool, or a list parallel to the "
        "generations; default: correctness_math_verify, correct, is_correct).",
    ),
]
DomainOpt = Annotated[
    str | None,
    typer.Option(
        "--domain", help="Domain of every trace (default: the data's, else math when a gold answer exists)."
    ),
]
ReassignOpt = Annotated[
    bool,
    typer.Option(
        "--reassign-ids", help="Key records by source file and line instead of their (duplicate) ids."
    ),
]


def _read_options(
    input_format: str,
    split: str,
    dataset_config: str | None,
    problem_column: str | None,
    reasoning_column: str | None,
    content_column: str | None,
    answer_column: str | None,
    id_column: str | None,
    label_column: str | None,
    domain: str | None,
    reassign_ids: bool,
):  # type: ignore[no-untyped-def]
    from distill.ingest import ReadOptions

    return ReadOptions(
        format=input_format,
        split=split,
        dataset_config=dataset_config,
        problem_column=problem_column,
        reasoning_column=reasoning_column,
        content_column=content_column,
        answer_column=answer_column,
        id_column=id_column,
        label_column=label_column,
        domain=domain,
        reassign_ids=reassign_ids,
    )


# ---------------------------------------------------------------------------- filter


def _split(values: list[str] | None) -> list[str]:
    """Accept repeated options and comma-separated lists alike."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


@app.command("filter")
def filter_cmd(
    input: Annotated[
        str,
        typer.Argument(
            help="Traces to filter: a folder of shard-*.jsonl, a .jsonl/.json/.parquet/.csv file, a folder "
            "of such files, a saved dataset folder or a Hub dataset id (see --format)."
        ),
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Output folder (kept/, rejected/, funnel.json).")
    ],
    checks: Annotated[
        list[str] | None,
        typer.Option(
            help="Checks to run, comma-separated (default: complete, format, length, language, "
            "readability, contamination, correct, duplicate, per_prompt — each only when configured)."
        ),
    ] = None,
    skip: Annotated[list[str] | None, typer.Option(help="Checks to leave out, comma-separated.")] = None,
    think_tags: Annotated[
        str, typer.Option(help="Opening and closing reasoning tags, comma-separated.")
    ] = "<think>,</think>",
    tokenizer: Annotated[
        str | None,
        typer.Option(help="Tokenizer (path, HF id or student card) for lengths; default: count words."),
    ] = None,
    min_tokens: Annotated[
        int | None, typer.Option(help="length: drop reasoning+answer shorter than this.")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="length: drop reasoning+answer longer than this.")
    ] = None,
    max_foreign_share: Annotated[
        float, typer.Option(help="language: max share of reasoning letters outside the prompt's script.")
    ] = 0.02,
    max_paragraph_words: Annotated[
        int,
        typer.Option(
            help="readability: most words in a row without a line break in the reasoning (0: rule off)."
        ),
    ] = 600,
    allow_code_fences: Annotated[
        bool, typer.Option(help="readability: allow ``` code blocks in non-code reasoning.")
    ] = False,
    keep_unverifiable: Annotated[
        bool, typer.Option(help="correct: keep samples whose gold or answer cannot be verified.")
    ] = False,
    verify_timeout: Annotated[float, typer.Option(help="correct: seconds per math-verify call.")] = 5.0,
    judge_url: Annotated[
        str | None, typer.Option(help="correct: OpenAI-compatible judge for unverifiable answers (base URL).")
    ] = None,
    judge_model: Annotated[str | None, typer.Option(help="correct: judge model name.")] = None,
    judge_api_key_env: Annotated[
        str | None, typer.Option(help="correct: environment variable with the judge's API key.")
    ] = None,
    code_cpu_s: Annotated[int, typer.Option(help="correct (code): CPU seconds per test.")] = 2,
    code_wall_s: Annotated[float, typer.Option(help="correct (code): wall-clock seconds per test.")] = 6.0,
    code_memory_mb: Annotated[
        int,
        typer.Option(
            help="correct (code): memory limit in MB for the whole run (all its processes together where cgroups allow, else per process)."
        ),
    ] = 1024,
    decontaminate: Annotated[
        list[str] | None,
        typer.Option(
            help="contamination: benchmark names (aime24,aime25,amc23,math500,gpqa), comma-separated."
        ),
    ] = None,
    decontaminate_file: Annotated[
        list[str] | None, typer.Option(help="contamination: local benchmark file(s) (.jsonl/.json/.parquet).")
    ] = None,
    benchmarks_dir: Annotated[
        str | None, typer.Option(help="contamination: folder with <name>.jsonl for offline benchmark names.")
    ] = None,
    ngram: Annotated[int, typer.Option(help="contamination: word n-gram size.")] = 8,
    near_dup_threshold: Annotated[
        float, typer.Option(help="duplicate: MinHash Jaccard threshold for near-duplicate prompts (0: off).")
    ] = 0.0,
    max_per_prompt: Annotated[
        int | None, typer.Option(help="per_prompt: keep at most this many passing samples per prompt.")
    ] = None,
    prefer: Annotated[
        str, typer.Option(help="per_prompt: which samples to keep: shortest or random.")
    ] = "shortest",
    seed: Annotated[int, typer.Option(help="per_prompt: seed for --prefer random.")] = 0,
    workers: Annotated[int, typer.Option(help="Worker processes (0: all cores).")] = 0,
    skip_bad_lines: Annotated[
        bool, typer.Option(help="Count malformed input lines in the funnel instead of stopping.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Replace existing output (also one made with the same config: redo it).")
    ] = False,
    trust_labels: Annotated[
        bool,
        typer.Option(
            help="correct: take the dataset's own label (--label-column) as the verdict, not the verifier."
        ),
    ] = False,
    input_format: FormatOpt = "auto",
    split: SplitOpt = "train",
    dataset_config: ConfigOpt = None,
    problem_column: ProblemColOpt = None,
    reasoning_column: ReasoningColOpt = None,
    content_column: ContentColOpt = None,
    answer_column: AnswerColOpt = None,
    id_column: IdColOpt = None,
    label_column: LabelColOpt = None,
    domain: DomainOpt = None,
    reassign_ids: ReassignOpt = False,
) -> None:
    """Verify, clean, decontaminate and dedupe traces; write kept/, rejected/ and funnel.json."""
    from distill.filter import FilterConfig, run

    cfg = FilterConfig(
        input=input,
        output=output,
        read=_read_options(
            input_format,
            split,
            dataset_config,
            problem_column,
            reasoning_column,
            content_column,
            answer_column,
            id_column,
            label_column,
            domain,
            reassign_ids,
        ),
        trust_labels=trust_labels,
        checks=_split(checks) or None,
        skip=_split(skip),
        think_tags=_split([think_tags]),
        tokenizer=tokenizer,
        min_tokens=min_tokens,
        max_tokens=max_tokens,
        max_foreign_share=max_foreign_share,
        max_paragraph_words=max_paragraph_words,
        allow_code_fences=allow_code_fences,
        keep_unverifiable=keep_unverifiable,
        verify_timeout=verify_timeout,
        judge_url=judge_url,
        judge_model=judge_model,
        judge_api_key_env=judge_api_key_env,
        code_cpu_s=code_cpu_s,
        code_wall_s=code_wall_s,
        code_memory_mb=code_memory_mb,
        decontaminate=_split(decontaminate),
        decontaminate_files=_split(decontaminate_file),
        benchmarks_dir=benchmarks_dir,
        ngram=ngram,
        near_dup_threshold=near_dup_threshold,
        max_per_prompt=max_per_prompt,
        prefer=prefer,
        seed=seed,
        workers=workers,
        skip_bad_lines=skip_bad_lines,
        overwrite=overwrite,
    )
    run_stage(run, cfg)


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
            help="Training data: a kept/ folder of trace shards, or any trace/chat dataset "
            "(.jsonl/.json/.parquet/.csv, a folder, a saved dataset, a Hub id; see --format).",
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
            "--no-reasoning",
            help="Train on answers only: every thought block and marker removed (<think>…</think>, a lone "
            "</think>, <|begin_of_thought|>…<|end_of_thought|>, <|begin_of_solution|>…<|end_of_solution|>).",
        ),
    ] = False,
    allow_unfiltered: Annotated[
        bool,
        typer.Option(
            "--allow-unfiltered",
            help="Train unfiltered traces (no 'verdict', e.g. generate output) even when some are unfinished; "
            "the unfinished ones (finish_reason length, reasoning never closed, empty answer) are dropped.",
        ),
    ] = False,
    show_example: Annotated[
        int | None,
        typer.Option(
            "--show-example",
            help="Print example N (from 0) as the student will see it, trained tokens between ⟦ and ⟧, "
            "with the template guard's verdict, and exit without training.",
        ),
    ] = None,
    all_turns: Annotated[
        bool,
        typer.Option(
            "--all-turns",
            help="Multi-turn data: train every assistant turn, not only the last (the chat template must "
            "render history unchanged).",
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
    group_by_length: Annotated[
        bool | None,
        typer.Option(
            "--group-by-length/--random-batches",
            help="Batch examples of similar length (default: only when random batches would be over 25% "
            "padding; grouping data whose length tracks its content slows learning).",
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
    input_format: FormatOpt = "auto",
    split: SplitOpt = "train",
    dataset_config: ConfigOpt = None,
    problem_column: ProblemColOpt = None,
    reasoning_column: ReasoningColOpt = None,
    content_column: ContentColOpt = None,
    answer_column: AnswerColOpt = None,
    id_column: IdColOpt = None,
    label_column: LabelColOpt = None,
    domain: DomainOpt = None,
    reassign_ids: ReassignOpt = False,
    objective: Annotated[
        str,
        typer.Option(
            "--objective",
            help="sft (default: imitate the traces in --data) or opd (on-policy distillation: the student "
            "samples on --prompts, the teacher grades every token).",
        ),
    ] = "sft",
    teacher: Annotated[
        str | None,
        typer.Option("--teacher", help="opd: teacher card or model folder/id, run locally (transformers)."),
    ] = None,
    teacher_url: Annotated[
        str | None,
        typer.Option(
            "--teacher-url",
            help="opd: a vLLM server (`vllm serve`) holding the teacher; it scores the student's samples "
            "(top-k logprobs). --teacher may still name the card for its prompt template.",
        ),
    ] = None,
    teacher_top_k: Annotated[
        int | None,
        typer.Option(
            "--teacher-top-k", help="opd with --teacher-url: teacher logprobs per token (1 when --beta > 0)."
        ),
    ] = None,
    prompts: Annotated[
        str | None,
        typer.Option(
            "--prompts", help="opd: prompts the student samples on (data card, file or dataset id)."
        ),
    ] = None,
    prompt_template: Annotated[
        str | None,
        typer.Option("--prompt-template", help="opd: template with {problem} (default: the teacher card's)."),
    ] = None,
    beta: Annotated[
        float | None,
        typer.Option(
            "--beta", help="opd: divergence, 0 forward KL, 0.5 JSD, 1 reverse KL (default 1: mode-seeking)."
        ),
    ] = None,
    max_new_tokens: Annotated[
        int | None,
        typer.Option("--max-new-tokens", help="opd: longest student sample (default --max-length)."),
    ] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", help="opd: sampling and loss temperature (default 1.0).")
    ] = None,
    kd_weight: Annotated[
        float,
        typer.Option(
            "--kd-weight",
            help="sft: add this weight x KL to the teacher's top-K logprobs stored by generate --logprobs "
            "(see kd_loss/kd_share in train_log.csv).",
        ),
    ] = 0.0,
    allow_unformatted: Annotated[
        bool,
        typer.Option(
            "--allow-unformatted",
            help="opd: train even when no greedy sample of the student closes its reasoning and stops.",
        ),
    ] = False,
) -> None:
    """Train a student (TRL): SFT on kept traces (LoRA, QLoRA or full), or on-policy distillation."""
    import logging

    from distill.train import TrainConfig, run

    if objective == "opd":
        from distill.onpolicy import run

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    config = TrainConfig(
        student=student,
        data=data,
        read=_read_options(
            input_format,
            split,
            dataset_config,
            problem_column,
            reasoning_column,
            content_column,
            answer_column,
            id_column,
            label_column,
            domain,
            reassign_ids,
        ),
        output=output,
        method=method,
        no_reasoning=no_reasoning,
        allow_unfiltered=allow_unfiltered,
        show_example=show_example,
        all_turns=all_turns,
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
        group_by_length=group_by_length,
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
        objective=objective,
        teacher=teacher,
        teacher_url=teacher_url,
        teacher_top_k=teacher_top_k,
        prompts=prompts,
        prompt_template=prompt_template,
        beta=beta,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        allow_unformatted=allow_unformatted,
        kd_weight=kd_weight,
    )
    summary = run_stage(run, config)
    if not plan and show_example is None and summary:  # the details are in the manifest
        where = summary.get("merged") or summary.get("model") or output
        print(
            f"distill train: {summary.get('steps', '?')} steps -> {where} (details: {summary.get('manifest')})"
        )


# ---------------------------------------------------------------------------- eval


@app.command("eval")
def eval_cmd(
    model: Annotated[
        str, typer.Option(help="Model to score: local folder, Hub id, or a student/teacher card.")
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Output folder (results.json, per-sample jsonl).")
    ],
    benchmark: Annotated[
        list[str] | None,
        typer.Option(help="Registry benchmarks, comma-separated: aime24, aime25, amc23, math500, gpqa."),
    ] = None,
    benchmark_file: Annotated[
        list[str] | None, typer.Option(help="Local benchmark .jsonl (id, problem, answer); repeatable.")
    ] = None,
    benchmarks_dir: Annotated[
        str | None, typer.Option(help="Folder with <name>.jsonl to use for registry names offline.")
    ] = None,
    num_samples: Annotated[
        int, typer.Option(help="Samples per problem (pass@1 averages them; cons@n votes).")
    ] = 4,
    backend: Annotated[
        str, typer.Option(help="Sampling backend: transformers, vllm or openai.")
    ] = "transformers",
    temperature: Annotated[
        float, typer.Option(help="Sampling temperature (R1 protocol: 0.6; 0 = greedy).")
    ] = 0.6,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling top-p (R1 protocol: 0.95).")] = 0.95,
    max_tokens: Annotated[int, typer.Option(help="Max new tokens per sample (R1 protocol: 32768).")] = 32768,
    seed: Annotated[int, typer.Option(help="Sampling seed (and the multiple-choice shuffle).")] = 0,
    batch_size: Annotated[int, typer.Option(help="transformers: sequences per generate call.")] = 64,
    threads: Annotated[
        int | None, typer.Option(help="transformers on CPU: torch threads (1 is fastest for tiny models).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Use only the first N problems of each benchmark.")
    ] = None,
    prompt_template: Annotated[
        str | None,
        typer.Option(help="Prompt template with {problem} (default: R1 math suffix / MC instruction)."),
    ] = None,
    student_card: Annotated[
        str | None, typer.Option(help="Student card whose published R1-Distill scores are shown beside ours.")
    ] = None,
    base_url: Annotated[list[str] | None, typer.Option(help="openai: server base URL (repeatable).")] = None,
    api_key_env: Annotated[str | None, typer.Option(help="openai: env variable holding the API key.")] = None,
    concurrency: Annotated[int, typer.Option(help="openai: max requests in flight.")] = 64,
    timeout: Annotated[float, typer.Option(help="openai: seconds per request before retrying.")] = 600.0,
    tensor_parallel_size: Annotated[int, typer.Option(help="vllm: GPUs per model.")] = 1,
    max_model_len: Annotated[int | None, typer.Option(help="vllm: context length to allocate.")] = None,
    gpu_memory_utilization: Annotated[float, typer.Option(help="vllm: fraction of GPU memory to use.")] = 0.9,
    overwrite: Annotated[bool, typer.Option(help="Replace output made with a different config.")] = False,
) -> None:
    """Score a model on AIME / MATH-500 / GPQA … with the R1 protocol: pass@1, cons@n, tokens."""
    from distill.evaluate import EvalConfig
    from distill.evaluate import run as run_eval

    cfg = EvalConfig(
        model=model,
        output=output,
        benchmarks=_split(benchmark),
        benchmark_files=list(benchmark_file or []),
        benchmarks_dir=benchmarks_dir,
        num_samples=num_samples,
        backend=backend,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        seed=seed,
        batch_size=batch_size,
        threads=threads,
        limit=limit,
        prompt_template=prompt_template,
        student_card=student_card,
        base_urls=list(base_url or []),
        api_key_env=api_key_env,
        concurrency=concurrency,
        timeout=timeout,
        tensor_parallel_size=tensor_parallel_size,
        max_model_len=max_model_len,
        gpu_memory_utilization=gpu_memory_utilization,
        overwrite=overwrite,
    )
    run_stage(run_eval, cfg)


# ---------------------------------------------------------------------------- push


@app.command()
def push(
    model: Annotated[str, typer.Option(help="Trained model folder (`distill train --output`).")],
    repo: Annotated[
        str, typer.Option(help="Hub repo id `user/name` for the model; traces go to `<repo>-traces`.")
    ],
    private: Annotated[bool, typer.Option(help="Create the repos as private.")] = False,
    data: Annotated[
        str | None,
        typer.Option(help="Filter output folder (or its kept/): pushed as Parquet + dataset card."),
    ] = None,
    results: Annotated[
        str | None, typer.Option(help="Eval output folder: metrics go into the model card.")
    ] = None,
    adapter_only: Annotated[bool, typer.Option(help="Push a LoRA adapter as is instead of merged.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Upload nothing; write the folders to --to-dir.")] = False,
    to_dir: Annotated[
        str | None, typer.Option(help="Write exactly the folders that would be uploaded here.")
    ] = None,
    license: Annotated[
        str | None, typer.Option(help="License for the cards (default: the student card's).")
    ] = None,
) -> None:
    """Push a model (+ traces) with model and dataset cards to the Hugging Face Hub."""
    from distill.hub import PushConfig
    from distill.hub import run as run_push

    cfg = PushConfig(
        model=model,
        repo=repo,
        private=private,
        data=data,
        results=results,
        adapter_only=adapter_only,
        dry_run=dry_run,
        to_dir=to_dir,
        license=license,
    )
    summary = run_stage(run_push, cfg)
    where = f"staged in {summary['staged']}" if not summary["uploaded"] else f"uploaded to {summary['repo']}"
    print(
        f"distill push: {summary['kind']} model {where}"
        + (f"; {summary['rows']} traces" if summary["rows"] else "")
    )


# ---------------------------------------------------------------------------- select


@app.command()
def select(
    input: Annotated[
        str,
        typer.Option(
            "--input",
            "-i",
            help="`distill filter` output folder (or its kept/ folder), or any trace dataset.",
        ),
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Folder for kept/, selection.json, manifest.")
    ],
    budget: Annotated[int, typer.Option(help="Traces in the subset.")] = 8000,
    strategy: Annotated[
        str,
        typer.Option(
            help="s1 (drop student-solved prompts; uniform domains; favour long reasoning), "
            "limo (teacher pass rate inside --band), random (seeded baseline)."
        ),
    ] = "s1",
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same subset.")] = 0,
    per_prompt: Annotated[int, typer.Option(help="Traces taken per chosen prompt.")] = 1,
    prefer: Annotated[
        str | None,
        typer.Option(
            help="Length: longest | shortest | mix (long and short alternately) | random traces of a "
            "prompt, and prompts ordered the same way (default: longest for s1/limo, random for random)."
        ),
    ] = None,
    student_results: Annotated[
        str | None,
        typer.Option(
            help="`distill eval` output run on the prompts: the student's pass rate per prompt "
            "(s1 drops what it solves; limo's band applies to it)."
        ),
    ] = None,
    solved_at: Annotated[
        float, typer.Option(help="s1: a student pass rate >= this counts as solved (prompt dropped).")
    ] = 0.5,
    difficulty: Annotated[
        str,
        typer.Option(
            help="limo: whose pass rate the band applies to: teacher | student | auto "
            "(student with --student-results)."
        ),
    ] = "auto",
    band: Annotated[
        str | None,
        typer.Option(
            help="limo: pass-rate band LO:HI, inclusive (default 1/32:3/32 of the teacher's samples, "
            "0:1/4 of the student's)."
        ),
    ] = None,
    balance: Annotated[
        str, typer.Option(help="Levels drawn uniformly, in order, comma-separated: domain, source, topic.")
    ] = "domain,source",
    topic_model: Annotated[
        str | None,
        typer.Option(help="Local sentence-embedding model folder: k-means topic clusters join --balance."),
    ] = None,
    topics: Annotated[int, typer.Option(help="Number of topic clusters (with --topic-model).")] = 16,
    embed_batch_size: Annotated[int, typer.Option(help="Prompts per embedding batch.")] = 32,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing output folder (also one made with the same config).")
    ] = False,
    input_format: FormatOpt = "auto",
    split: SplitOpt = "train",
    dataset_config: ConfigOpt = None,
    problem_column: ProblemColOpt = None,
    reasoning_column: ReasoningColOpt = None,
    content_column: ContentColOpt = None,
    answer_column: AnswerColOpt = None,
    id_column: IdColOpt = None,
    label_column: LabelColOpt = None,
    domain: DomainOpt = None,
    reassign_ids: ReassignOpt = False,
) -> None:
    """Pick a budgeted subset of filtered traces (s1 / LIMO style) that `distill train` takes as is."""
    from distill.select import SelectConfig
    from distill.select import run as run_select

    cfg = SelectConfig(
        input=input,
        output=output,
        read=_read_options(
            input_format,
            split,
            dataset_config,
            problem_column,
            reasoning_column,
            content_column,
            answer_column,
            id_column,
            label_column,
            domain,
            reassign_ids,
        ),
        budget=budget,
        strategy=strategy,
        seed=seed,
        per_prompt=per_prompt,
        prefer=prefer,
        student_results=student_results,
        solved_at=solved_at,
        difficulty=difficulty,
        band=band,
        balance=[b.strip() for b in balance.split(",") if b.strip()],
        topic_model=topic_model,
        topics=topics,
        embed_batch_size=embed_batch_size,
        overwrite=overwrite,
    )
    report = run_stage(run_select, cfg)
    sel = report["selected"]
    print(
        f"distill select: {sel['traces']} traces from {sel['prompts']} prompts "
        f"({report['strategy']}, budget {report['budget']}) -> {output}"
    )


# ---------------------------------------------------------------------------- sweep


@app.command()
def sweep(
    data: Annotated[str, typer.Option(help="`distill filter` output folder (or its kept/ folder).")],
    student: Annotated[str, typer.Option(help="Student card, local model folder or Hub id.")],
    output: Annotated[
        str,
        typer.Option("--output", "-o", help="Sweep folder: a subfolder per point, sweep.json, sweep.png."),
    ],
    budgets: Annotated[
        str, typer.Option(help="Trace budgets, comma-separated; 'all' = every kept trace (the reference).")
    ] = "250,1000,4000,all",
    strategies: Annotated[
        str, typer.Option(help="Selection strategies, comma-separated: limo, s1, random.")
    ] = "limo,s1,random",
    seeds: Annotated[str, typer.Option(help="Seeds, comma-separated: each point runs once per seed.")] = "0",
    benchmark: Annotated[
        list[str] | None, typer.Option(help="Registry benchmarks, comma-separated (as distill eval).")
    ] = None,
    benchmark_file: Annotated[
        list[str] | None, typer.Option(help="Local benchmark .jsonl (id, problem, answer); repeatable.")
    ] = None,
    benchmarks_dir: Annotated[
        str | None, typer.Option(help="Folder with <name>.jsonl to use for registry names offline.")
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            help="Equal compute: optimizer steps per point (default: one epoch of the largest budget)."
        ),
    ] = None,
    equal_epochs: Annotated[
        bool, typer.Option("--equal-epochs", help="Train every point --epochs epochs instead of equal steps.")
    ] = False,
    epochs: Annotated[
        float | None, typer.Option(help="Epochs per point with --equal-epochs (default: the card's).")
    ] = None,
    reference: Annotated[
        bool,
        typer.Option("--reference/--no-reference", help="Train the full-data student as the reference line."),
    ] = True,
    student_results: Annotated[
        str | None,
        typer.Option(
            help="`distill eval` output on the prompts: student-aware s1 / limo (as distill select)."
        ),
    ] = None,
    select_opt: Annotated[
        list[str] | None,
        typer.Option("--select", help="A distill select option for every point, KEY=VALUE (band=0.25:0.75)."),
    ] = None,
    train_opt: Annotated[
        list[str] | None,
        typer.Option(
            "--train", help="A distill train option for every point, KEY=VALUE (learning_rate=1e-5)."
        ),
    ] = None,
    eval_opt: Annotated[
        list[str] | None,
        typer.Option("--eval", help="A distill eval option for every point, KEY=VALUE (num_samples=4)."),
    ] = None,
    plan: Annotated[
        bool,
        typer.Option("--plan", help="Print the points, steps, tokens and training GPU hours; run nothing."),
    ] = False,
    gpu_tflops: Annotated[
        float, typer.Option(help="--plan: sustained bf16 TFLOP/s per GPU (H100 ~400 at 40% MFU).")
    ] = 400.0,
    overwrite: Annotated[
        bool, typer.Option(help="Redo every point, replacing outputs made with another config.")
    ] = False,
) -> None:
    """Accuracy against data budget: select → train → eval per (strategy, budget, seed), one chart."""
    import logging

    from distill.sweep import SweepConfig, parse_override
    from distill.sweep import run as run_sweep

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    def overrides(values: list[str] | None, flag: str) -> dict[str, Any]:
        return dict(run_stage(parse_override, v, flag) for v in values or [])

    def ints(text: str, flag: str) -> list[int]:
        try:
            return [int(x) for x in _split([text])]
        except ValueError:
            fail(f"{flag}: expected comma-separated integers, got '{text}'")
            raise  # unreachable

    select_overrides = overrides(select_opt, "--select")
    if student_results:
        select_overrides["student_results"] = student_results
    cfg = SweepConfig(
        data=data,
        student=student,
        output=output,
        budgets=_split([budgets]),
        strategies=_split([strategies]),
        seeds=ints(seeds, "--seeds"),
        benchmarks=_split(benchmark),
        benchmark_files=list(benchmark_file or []),
        benchmarks_dir=benchmarks_dir,
        steps=steps,
        equal_epochs=equal_epochs,
        epochs=epochs,
        reference=reference,
        select=select_overrides,
        train=overrides(train_opt, "--train"),
        eval=overrides(eval_opt, "--eval"),
        plan=plan,
        gpu_tflops=gpu_tflops,
        overwrite=overwrite,
    )
    result = run_stage(run_sweep, cfg)
    if plan:
        print(
            f"distill sweep --plan: {len(result['points'])} points, {result['gpu_hours']:.2f} GPU hours of training"
        )
    else:
        print(f"distill sweep: {len(result['points'])} points -> {output}/sweep.json, {result['chart']}")


# ---------------------------------------------------------------------------- report


@app.command()
def report(
    run_dir: Annotated[
        str, typer.Argument(help="Run folder: every stage output below it is found by its manifest.")
    ],
    output: Annotated[
        str | None, typer.Option(help="Where to write report.md and charts [default: RUN_DIR/report].")
    ] = None,
) -> None:
    """Render a run folder into report.md + PNG charts (funnel, lengths, loss, accuracy, tokens)."""
    from distill.report import ReportConfig
    from distill.report import run as run_report

    summary = run_stage(run_report, ReportConfig(run_dir=run_dir, output=output))
    print(f"distill report: {summary['report']} ({len(summary['charts'])} charts)")


# ---------------------------------------------------------------------------- demo


@app.command()
def demo(
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Run folder (default runs/demo, runs/demo-quick).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for data, models, sampling and training.")] = 0,
    quick: Annotated[
        bool,
        typer.Option(
            help="The same teacher; fewer prompts, student steps and eval problems (about 2 min on 2 cores)."
        ),
    ] = False,
    study: Annotated[
        bool,
        typer.Option(
            help="Then `distill sweep` on the kept traces: limo, s1, random at four budgets and two seeds, "
            "with the full-data student as reference, then SFT + logit KD and on-policy distillation beside it, "
            "into RUN/study, RUN/objectives and the report (~20 min on 2 cores)."
        ),
    ] = False,
) -> None:
    """Run a miniature R1 distillation end to end on CPU: teacher → traces → filter → students → eval → report."""
    from distill.demo import DemoConfig
    from distill.demo import run as run_demo

    output = output or ("runs/demo-quick" if quick else "runs/demo")
    run_stage(run_demo, DemoConfig(output=output, seed=seed, quick=quick, study=study), run_command)


def run_command(args: list[str]) -> None:
    """Run one `distill` command in-process, exactly as from a shell (`args` without `distill`).

    Raises `UserError` naming the command when it exits non-zero (its own error is printed first).
    """
    rc = app(args=args, prog_name="distill", standalone_mode=False)
    if rc not in (None, 0):
        raise UserError(f"distill {args[0]} exited with {rc}")
